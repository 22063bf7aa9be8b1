/**
 * `mxTransport()`: direct MX delivery. The transport of an outgoing server that is itself the
 * last hop of its mail: it splits each message by recipient domain (one fork per domain, all
 * reading one spool of the body), and delivers each part to that domain's mail exchangers along
 * the MX walk (deliver-domain.ts), with MTA-STS, DANE, REQUIRETLS and opportunistic STARTTLS, as
 * many domains at once as the message has (at most `concurrency.perDomain` deliveries per domain
 * across messages). Recipients beyond `maxRecipients`, or with different DSN parameters, go in
 * further transactions.
 *
 * Its report has every recipient either accepted or refused with an `SmtpError` whose code says
 * whether to retry (see replies.ts): behind `durableQueue()`, a null MX or NXDOMAIN bounces at
 * the first attempt, a DNS timeout or an MX that does not answer is retried. `destinationOf` is
 * the recipient's domain, so the queue's per-destination concurrency and its throttle of dead
 * next hops work per domain. `dsn` is set when every server that took recipients announced DSN
 * and got the message's DSN parameters (the queue then sends no "relayed" notice).
 *
 * Every attempt is announced on the message's event stream (`delivery-attempt`: host, address,
 * TLS version, policy, reply); with `tlsReports`, every session is counted for TLS-RPT.
 */
import { domainKey } from '../../core/address.js'
import type { DeliveryReport, Message, RejectedRecipient, Transport } from '../../core/types.js'
import { groupByDsn } from '../smtp.js'
import { ConnectionPool } from './connection-pool.js'
import { type AttemptContent, readOnce, readSpool } from './content.js'
import { deliverDomain, type WalkContext } from './deliver-domain.js'
import { KeyedLimiter } from './limits.js'
import { MtaStsCache } from './mta-sts.js'
import { type MxTransportOptions, resolveOptions } from './options.js'

/**
 * The MX transport: a `Transport` with the caches it keeps.
 *
 * @category Transports
 */
export interface MxTransport extends Transport {
  /** The MTA-STS policies it keeps (undefined with `mtaSts: false`). */
  readonly mtaSts: MtaStsCache | undefined
  /** Closes every connection it keeps. */
  close(): Promise<void>
}

/** RFC 8460 §5.3: a TLS report is delivered despite TLS failures. */
function isTlsReport(msg: Message): boolean {
  return msg.headers.has('tls-report-domain') && /report-type="?tlsrpt"?/i.test(msg.headers.get('content-type') ?? '')
}

/**
 * Creates a transport that delivers straight to the recipients' MX hosts.
 *
 * @example
 * ```ts
 * const tlsReports = tlsReporter({ organizationName: 'Example Corp', contactInfo: 'postmaster@example.com', submitter: 'mail.example.com' })
 * const relay = createRelay({
 *   stages: [relayPolicy({ authenticated: true }), dkimSign({ keys })],
 *   transport: mxTransport({ dns: '127.0.0.1:53', name: 'mail.example.com', tlsReports }),
 * })
 * ```
 *
 * @category Transports
 */
export function mxTransport(options: MxTransportOptions = {}): MxTransport {
  const config = resolveOptions(options)
  const pool = new ConnectionPool({
    reuse: config.reuse,
    maxMessages: config.maxMessages,
    idleTimeout: config.idleTimeout,
    ca: config.ca,
    timeouts: config.timeouts,
  })
  const sts = config.mtaSts === false ? undefined : new MtaStsCache({ dns: config.dns, gate: config.gate }, { ca: config.extraCa, ...config.mtaSts })
  const ctx: WalkContext = { config, pool, hosts: new KeyedLimiter(config.perHost), sts }
  const domains = new KeyedLimiter(config.perDomain)

  return {
    name: 'mx',
    mtaSts: sts,
    destinationOf: (rcpt) => domainKey(rcpt.address),
    describe: () => `mx port ${config.port}${config.dane ? ', DANE' : ''}${sts ? ', MTA-STS' : ''}${config.tlsReports ? ', TLS-RPT' : ''}`,

    async send(msg) {
      const byDomain = new Map<string, Message['envelope']['rcptTo'][number][]>()
      for (const rcpt of msg.envelope.rcptTo) {
        const domain = domainKey(rcpt.address)
        const list = byDomain.get(domain)
        if (list) list.push(rcpt)
        else byDomain.set(domain, [rcpt])
      }
      const requireTlsMessage = msg.state.requireTls === true || msg.envelope.mailFrom?.args?.REQUIRETLS === true
      const tlsReport = isTlsReport(msg)
      const single = byDomain.size === 1 && msg.envelope.rcptTo.length === 1
      const spool = single ? undefined : await msg.body.spool()
      const parts = await Promise.all(
        [...byDomain].map(async ([domain, rcpts]) => {
          const part = byDomain.size === 1 ? msg : await msg.fork(rcpts)
          const content: AttemptContent = spool ? readSpool(msg, part.headers, spool) : readOnce(msg)
          return { domain, part, content, transactions: chunks(groupByDsn(rcpts), config.maxRecipients) }
        }),
      )
      const reports = await Promise.all(
        parts.map(({ domain, part, content, transactions }) =>
          domains.run(domain, () =>
            Promise.all(transactions.map((rcpts) => deliverDomain(ctx, { msg: part, domain, rcpts, content, requireTlsMessage, tlsReport }))),
          ),
        ),
      )
      const flat = reports.flat()
      return merge(flat)
    },

    async close() {
      await pool.close()
    },
  }
}

/** Groups of at most `max`, each within one DSN group. */
function chunks<T>(groups: readonly T[][], max: number): T[][] {
  return groups.flatMap((group) => Array.from({ length: Math.ceil(group.length / max) }, (_, i) => group.slice(i * max, (i + 1) * max)))
}

function merge(reports: readonly DeliveryReport[]): DeliveryReport {
  if (reports.length === 1) return reports[0]!
  return {
    accepted: reports.flatMap((r) => r.accepted),
    rejected: reports.flatMap((r): readonly RejectedRecipient[] => r.rejected),
    response: reports.map((r) => r.response).find(Boolean) ?? '',
    // Notices pass on only if every server that took recipients took over their DSN.
    ...(reports.some((r) => r.accepted.length) && reports.every((r) => !r.accepted.length || r.dsn) ? { dsn: true } : {}),
  }
}
