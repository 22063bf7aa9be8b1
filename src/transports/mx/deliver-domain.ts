/**
 * Delivering one transaction's recipients (all of one domain) along the MX walk: host after
 * host in MX order, address after address, until every recipient is accepted or refused for
 * good, the walk has tried `maxAddresses` addresses or held `maxSessions` SMTP sessions, or the
 * hosts run out. What the recipients still waiting get at the end is the last reason: the
 * deferral a server gave them at RCPT, else the last failure of the walk (`550 5.7.30` only if
 * every host that was reached lacked REQUIRETLS).
 *
 * Per host, before any connection: its addresses (loopback, private and reserved ones dropped
 * unless allowed), DANE (its TLSA records if the chain of answers is DNSSEC-validated), the
 * domain's MTA-STS policy, the transport's `requireTls` and the message's REQUIRETLS, decided
 * into one TLS policy (tls-policy.ts); a host the policy rules out is skipped. Each attempt holds a
 * slot of its address (per-host concurrency), is announced as a `delivery-attempt` event and,
 * when TLS-RPT is on, counted under its policy. A failed STARTTLS handshake under a policy that
 * does not require TLS is followed by one attempt in cleartext at the same address.
 */

import { isIPv6 } from 'node:net'
import { addressKey } from '../../core/address.js'
import { reject, type SmtpError } from '../../core/errors.js'
import { abortReasonOf } from '../../core/message.js'
import type { Address, DeliveryReport, Message, RejectedRecipient } from '../../core/types.js'
import { announce } from '../../delivery/events.js'
import { type AttemptResult, attempt } from './attempt.js'
import type { ConnectionPool, ConnectionTarget } from './connection-pool.js'
import type { AttemptContent } from './content.js'
import { lookupDane } from './dane-lookup.js'
import type { KeyedLimiter } from './limits.js'
import type { MtaStsCache, StsLookup } from './mta-sts.js'
import { lookupMx, type MxRoute, resolveHost } from './mx-walk.js'
import type { MxConfig } from './options.js'
import { mxReply } from './replies.js'
import { decideHostTls, type HostTls } from './tls-policy.js'
import type { ReportedPolicy, TlsFailure } from './tls-report.js'

/** What the walk shares across deliveries. */
export interface WalkContext {
  readonly config: MxConfig
  readonly pool: ConnectionPool
  /** Connections in use per `ip:port`. */
  readonly hosts: KeyedLimiter
  readonly sts: MtaStsCache | undefined
}

/** One transaction's worth of recipients of one domain. */
export interface DomainPart {
  /** The message (or its fork for this domain): its envelope sender, events, abort. */
  readonly msg: Message
  readonly domain: string
  readonly rcpts: readonly Address[]
  readonly content: AttemptContent
  /** REQUIRETLS asked for (RFC 8689). */
  readonly requireTlsMessage: boolean
  /** A TLS report (RFC 8460 §5.3): delivered despite TLS failures, not counted. */
  readonly tlsReport: boolean
}

const OPPORTUNISTIC: HostTls = {
  name: 'opportunistic',
  require: false,
  verify: 'none',
  enforce: false,
  requireTlsExtension: false,
  report: { type: 'no-policy-found', strings: [] },
}

/**
 * Walks the MX hosts of `part.domain` for its recipients (see the file header). Never throws for
 * a delivery failure (it is in the report); rethrows an abort or a broken message body.
 *
 * @example
 * ```ts
 * const report = await deliverDomain(context, { msg, domain: 'example.org', rcpts, content: readOnce(msg), requireTlsMessage: false, tlsReport: false })
 * ```
 */
export async function deliverDomain(ctx: WalkContext, part: DomainPart): Promise<DeliveryReport> {
  const { config } = ctx
  const { domain, msg } = part
  const refuseAll = (error: SmtpError): DeliveryReport => ({ accepted: [], rejected: part.rcpts.map((rcpt) => ({ rcpt, error })) })
  let route: MxRoute
  try {
    route = await lookupMx(config.dns, domain, config.random)
  } catch (err) {
    return refuseAll(err as SmtpError)
  }
  const sts: StsLookup = ctx.sts && !part.tlsReport ? await ctx.sts.lookup(domain) : {}
  const count = (policy: ReportedPolicy, failure?: TlsFailure) => {
    if (!part.tlsReport) config.tlsReports?.record({ domain, policy, ...(failure ? { failure } : {}) })
  }
  if (sts.failure) count({ type: 'sts', strings: [] }, { resultType: sts.failure.type, reasonCode: sts.failure.reason })

  let pending = [...part.rcpts]
  const accepted: Address[] = []
  const rejected: RejectedRecipient[] = []
  const deferredBy = new Map<string, SmtpError>()
  let lastError: SmtpError | undefined
  let lastResponse = ''
  let addresses = 0
  let sessions = 0
  let reached = 0
  let withoutRequireTls = 0
  // Every server that accepted recipients took over their notices (DSN), or not all did.
  let dsn = true
  const finish = (): DeliveryReport => {
    const fallback =
      reached > 0 && withoutRequireTls === reached
        ? mxReply.requireTlsUnsupported(`no MX host of ${domain} supports REQUIRETLS`)
        : (lastError ?? mxReply.unreachable(`no MX host of ${domain} could be tried`))
    for (const rcpt of pending) rejected.push({ rcpt, error: deferredBy.get(addressKey(rcpt.address)) ?? fallback })
    return { accepted, rejected, response: lastResponse, ...(accepted.length && dsn ? { dsn: true } : {}) }
  }

  for (const host of route.hosts) {
    if (!pending.length || addresses >= config.maxAddresses || sessions >= config.maxSessions) break
    const found = await resolveHost(config.dns, host.name, config.ipv6)
    if (!found.addresses.length) {
      const why = `${host.name}: ${found.error?.message ?? 'no address records'}`
      lastError = found.error?.temporary ? mxReply.dnsFailure(why, found.error) : mxReply.noHost(why)
      continue
    }
    const local = config.localAddress(domain, msg)
    const family = local ? (isIPv6(local) ? 6 : 4) : undefined
    const usable = found.addresses.filter((ip) => config.gate(ip) && (family === undefined || (isIPv6(ip) ? 6 : 4) === family))
    if (!usable.length) {
      lastError = mxReply.forbiddenAddress(
        `${host.name}: ${found.addresses.join(', ')} not allowed (loopback, private or reserved, or not of the source address's family)`,
      )
      continue
    }
    let tls = OPPORTUNISTIC
    if (!part.tlsReport) {
      const dane = config.dane ? await lookupDane(config.dns, host.name, config.port, route.secure && found.secure) : ({ kind: 'none' } as const)
      const decision = decideHostTls({
        host: host.name,
        dane,
        sts: sts.policy,
        stsAllows: sts.policy ? ctx.sts!.allows(sts.policy, host.name) : false,
        requireTls: config.requireTls(domain),
        requireTlsMessage: part.requireTlsMessage,
        mxSecure: route.secure,
      })
      if ('skip' in decision) {
        lastError = decision.skip
        count(decision.report, decision.failure)
        continue
      }
      tls = decision.tls
      if (tls.reported) count(tls.report, tls.reported)
    }

    for (const ip of usable) {
      if (!pending.length || addresses >= config.maxAddresses || sessions >= config.maxSessions) break
      const reason = abortReasonOf(msg)
      if (reason !== undefined) throw reason
      addresses++
      const target: ConnectionTarget = { ip, port: config.port, servername: host.name, name: config.name, localAddress: local, tls: 'starttls' }
      const rcpts = pending
      let result = await held(ctx, target, () => once(ctx, part, host.name, target, tls, rcpts))
      countSession(result, tls, host.name, ip, local, count)
      if (result.kind === 'failed' && result.cleartext && part.content.available()) {
        const clear = { ...target, tls: 'none' as const }
        result = await held(ctx, clear, () => once(ctx, part, host.name, clear, tls, rcpts))
      }
      if (result.kind === 'failed' ? result.session : true) sessions++
      if (result.kind === 'failed') {
        if (result.state || result.session) reached++
        if (result.noRequireTls) withoutRequireTls++
        else lastError = result.error
        if (!result.next) {
          for (const rcpt of pending) rejected.push({ rcpt, error: result.error })
          pending = []
        }
        continue
      }
      reached++
      accepted.push(...result.accepted)
      rejected.push(...result.rejected)
      if (result.accepted.length) {
        lastResponse = result.response
        if (!result.dsn) dsn = false
      }
      for (const { rcpt, error } of result.deferred) deferredBy.set(addressKey(rcpt.address), error)
      pending = result.deferred.map((d) => d.rcpt)
      if (pending.length && !part.content.available()) {
        rejected.push(...result.deferred)
        pending = []
      }
      if (result.deferred.length) lastError = result.deferred[0]!.error
    }
  }
  return finish()
}

/** Runs `work` holding a connection slot of the target's address. */
function held<T>(ctx: WalkContext, target: ConnectionTarget, work: () => Promise<T>): Promise<T> {
  return ctx.hosts.run(`${target.ip}:${target.port}`, work)
}

/** One attempt, announced. */
async function once(ctx: WalkContext, part: DomainPart, host: string, target: ConnectionTarget, tls: HostTls, rcpts: readonly Address[]) {
  const started = performance.now()
  const result = await attempt({ pool: ctx.pool, target, tls, from: part.msg.envelope.mailFrom, rcpts, content: part.content })
  const sent = result.kind === 'sent'
  const error = sent ? (result.rejected[0] ?? result.deferred[0])?.error : result.error
  const state = result.state
  announce(part.msg, {
    type: 'delivery-attempt',
    transport: 'mx',
    destination: part.domain,
    recipients: rcpts.map((r) => r.address),
    accepted: sent ? result.accepted.map((r) => r.address) : [],
    host,
    ip: target.ip,
    port: target.port,
    ...(state?.secure && state.version ? { tls: state.version } : {}),
    verified: sent ? result.verified : false,
    policy: tls.name,
    outcome: sent && result.accepted.length ? 'delivered' : error && !error.temporary ? 'failed' : 'deferred',
    reply: sent && result.accepted.length ? result.response : (error ?? reject.tempFail()).toReply(),
    ...(error?.reason ? { reason: error.reason } : {}),
    ms: Math.round(performance.now() - started),
  })
  return result
}

/** Counts an attempt for TLS-RPT: a success once TLS passed its policy, a failure with its result type. */
function countSession(
  result: AttemptResult,
  tls: HostTls,
  host: string,
  ip: string,
  local: string | undefined,
  count: (policy: ReportedPolicy, failure?: TlsFailure) => void,
): void {
  const where = { receivingMxHostname: host, receivingIp: ip, ...(local ? { sendingMtaIp: local } : {}) }
  if (result.tlsFailure) return count(tls.report, { ...result.tlsFailure, ...where })
  const state = result.state
  if (!state) return // no session: nothing about TLS was learnt
  if (!state.secure) return count(tls.report, { resultType: 'starttls-not-supported', ...where })
  count(tls.report)
}
