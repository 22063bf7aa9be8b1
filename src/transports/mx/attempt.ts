/**
 * One delivery attempt: one session with one MX host at one address, for some recipients.
 *
 * Connect (or reuse a connection), check the session's TLS against the host's policy, send the
 * envelope and, once the server accepted DATA, the message. The result says what the walk
 * (deliver-domain.ts) does next:
 *
 * - `sent`: the server took the message for `accepted`; `rejected` are final for this delivery
 *   (5xx at RCPT, or a reply to the message itself); `deferred` got a 4xx at RCPT and may try the
 *   next host.
 * - `failed`: nothing was delivered here. `error` is why (the server's reply, `421` as `451`, or
 *   ours: `451 4.4.1` no answer, `451 4.7.5` TLS). `next` says whether another host may be tried
 *   (the message was not sent yet); `cleartext` asks for the same address again without STARTTLS
 *   (the handshake failed and no policy requires TLS).
 *
 * A `5xx` to MAIL refuses every recipient; a `4xx` to MAIL, to every RCPT or to DATA, a `421`
 * greeting, a refused or timed-out connection all leave the recipients for the next host. A
 * connection reused from the pool that turns out closed is replaced once, transparently.
 */
import type { SMTPConnectionSendInfo, SMTPEnvelope } from 'nodemailer/lib/smtp-connection'
import type { SmtpError } from '../../core/errors.js'
import type { Address, RejectedRecipient } from '../../core/types.js'
import { dsnOf, upstreamError } from '../smtp.js'
import type { ConnectionPool, ConnectionTarget, Lease, NodemailerError } from './connection-pool.js'
import type { AttemptContent } from './content.js'
import { mxReply } from './replies.js'
import { checkTls, type TlsState } from './tls-check.js'
import type { HostTls } from './tls-policy.js'
import type { TlsFailure } from './tls-report.js'

/** What one attempt is about. */
export interface AttemptInput {
  readonly pool: ConnectionPool
  readonly target: ConnectionTarget
  readonly tls: HostTls
  readonly from: Address | null
  readonly rcpts: readonly Address[]
  readonly content: AttemptContent
}

/** What came of it (see the file header). */
export type AttemptResult =
  | {
      readonly kind: 'sent'
      readonly accepted: readonly Address[]
      readonly rejected: readonly RejectedRecipient[]
      readonly deferred: readonly RejectedRecipient[]
      readonly response: string
      readonly state: TlsState
      readonly verified: boolean
      /** A TLS finding reported but not enforced (MTA-STS testing). */
      readonly tlsFailure?: TlsFailure
      /** The server announced DSN and got the message's DSN parameters: notices are its duty now. */
      readonly dsn?: boolean
    }
  | {
      readonly kind: 'failed'
      readonly error: SmtpError
      readonly next: boolean
      readonly cleartext?: boolean
      /** The SMTP handshake completed (it counts as a session of the walk). */
      readonly session: boolean
      readonly state?: TlsState
      readonly tlsFailure?: TlsFailure
      /** REQUIRETLS asked for, the server does not support it. */
      readonly noRequireTls?: boolean
    }

const TRANSIENT = new Set(['ECONNECTION', 'ETIMEDOUT', 'ESOCKET', 'EPROTOCOL'])
const where = (t: ConnectionTarget) => `${t.servername}[${t.ip}]:${t.port}`

/** The reply of a server error, or ours when there was none. */
function errorOf(err: NodemailerError, target: ConnectionTarget): SmtpError {
  if (typeof err.responseCode === 'number' && err.responseCode >= 400 && err.responseCode <= 599) return upstreamError(err, where(target))
  return mxReply.unreachable(`${where(target)}: ${err.code ?? 'error'} ${err.message}`, err)
}

/** Sorts recipients by the errors nodemailer reported for them: 4xx deferred, 5xx rejected. */
function split(rcpts: readonly Address[], errors: readonly NodemailerError[] | undefined, target: ConnectionTarget) {
  const rejected: RejectedRecipient[] = []
  const deferred: RejectedRecipient[] = []
  const accepted: Address[] = []
  for (const rcpt of rcpts) {
    const err = errors?.find((e) => e.recipient === rcpt.address)
    if (!err) accepted.push(rcpt)
    else (err.responseCode !== undefined && err.responseCode < 500 ? deferred : rejected).push({ rcpt, error: errorOf(err, target) })
  }
  return { accepted, rejected, deferred }
}

/**
 * Makes one attempt (see the file header). Rejects only when reading the message failed (the
 * transaction was aborted, the body broke): with that error.
 *
 * @example
 * ```ts
 * const result = await attempt({ pool, target, tls, from: msg.envelope.mailFrom, rcpts, content })
 * if (result.kind === 'failed' && result.next) tryNextHost()
 * ```
 */
export async function attempt(input: AttemptInput, fresh = false): Promise<AttemptResult> {
  const { pool, target, tls } = input
  let lease: Lease
  try {
    lease = await pool.acquire(target, fresh)
  } catch (raw) {
    const err = raw as NodemailerError
    if (err.tlsHandshake) {
      const reason = `${where(target)}: TLS handshake failed: ${err.message}`
      const tlsFailure: TlsFailure = {
        resultType: 'validation-failure',
        receivingMxHostname: target.servername,
        receivingIp: target.ip,
        reasonCode: 'tls-handshake-failure',
      }
      if (tls.require) return { kind: 'failed', error: mxReply.tlsFailure(reason, err), next: true, session: true, tlsFailure }
      return { kind: 'failed', error: mxReply.unreachable(reason, err), next: true, cleartext: true, session: true, tlsFailure }
    }
    return { kind: 'failed', error: errorOf(err, target), next: true, session: false }
  }

  const verdict = checkTls(lease.tls, tls, target.servername)
  const state = lease.tls
  const tlsFailure = verdict.failure && { ...verdict.failure, receivingIp: target.ip }
  if (!verdict.ok) {
    pool.release(lease, 'close')
    return { kind: 'failed', error: verdict.error, next: true, session: true, state, tlsFailure: tlsFailure! }
  }
  const from = input.from
  const envelope: SMTPEnvelope = {
    from: from?.address ?? '',
    to: input.rcpts.map((r) => r.address),
    ...(from?.args?.BODY === '8BITMIME' ? { use8BitMime: true } : {}),
    ...(tls.requireTlsExtension ? { requireTLSExtensionEnabled: true } : {}),
    ...dsnOf(from, input.rcpts[0]!),
  }
  const dsnParameters = envelope.dsn !== undefined
  const stream = input.content.open()
  let streamError: unknown
  stream.once('error', (err) => (streamError = err))
  let info: SMTPConnectionSendInfo
  try {
    info = await pool.send(lease, envelope, stream)
  } catch (raw) {
    const err = raw as NodemailerError
    const unread = !stream.readableDidRead
    if (streamError !== undefined) {
      pool.release(lease, 'close')
      throw streamError
    }
    if (err.code === 'EREQUIRETLS') {
      pool.release(lease, 'refused')
      const error = mxReply.requireTlsUnsupported(`${where(target)} does not support REQUIRETLS`)
      return { kind: 'failed', error, next: true, session: true, state, noRequireTls: true }
    }
    const code = err.responseCode
    const refusal = (err.code === 'EENVELOPE' || err.code === 'EMESSAGE') && code !== undefined && code !== 421
    if (refusal) pool.release(lease, 'refused')
    else pool.release(lease, 'close')
    if (!refusal && lease.reused && unread && TRANSIENT.has(err.code ?? '') && code === undefined) {
      stream.destroy()
      return attempt(input, true)
    }
    const base = { state, verified: verdict.verified, ...(tlsFailure ? { tlsFailure } : {}) }
    if (refusal && err.command === 'MAIL FROM') {
      if (code < 500) return { kind: 'failed', error: errorOf(err, target), next: true, session: true, state }
      const error = errorOf(err, target)
      return { kind: 'sent', ...base, accepted: [], rejected: input.rcpts.map((rcpt) => ({ rcpt, error })), deferred: [], response: '' }
    }
    if (refusal && err.rejectedErrors?.length) return { kind: 'sent', ...base, ...split(input.rcpts, err.rejectedErrors, target), response: '' }
    if (refusal && unread) {
      // DATA itself refused: nothing sent; a 4xx may go to the next host.
      if (code < 500) return { kind: 'failed', error: errorOf(err, target), next: true, session: true, state }
      const error = errorOf(err, target)
      return { kind: 'sent', ...base, accepted: [], rejected: input.rcpts.map((rcpt) => ({ rcpt, error })), deferred: [], response: '' }
    }
    if (refusal) {
      // The reply to the message: final for every recipient the server had taken at RCPT.
      const error = errorOf(err, target)
      const own = split(input.rcpts, rcptErrors(lease), target)
      return {
        kind: 'sent',
        ...base,
        accepted: [],
        rejected: [...own.rejected, ...own.accepted.map((rcpt) => ({ rcpt, error }))],
        deferred: own.deferred,
        response: '',
      }
    }
    // No reply, or 421: the session broke. Before the message, the next host may have it.
    const error = code === undefined ? mxReply.unreachable(`${where(target)}: ${err.code ?? 'error'} ${err.message}`, err) : errorOf(err, target)
    return { kind: 'failed', error, next: unread, session: true, state }
  }
  pool.release(lease, 'sent')
  return {
    kind: 'sent',
    ...split(input.rcpts, info.rejectedErrors as NodemailerError[] | undefined, target),
    response: String(info.response ?? ''),
    state,
    verified: verdict.verified,
    ...(tlsFailure ? { tlsFailure } : {}),
    // DSN duty passes on only to a server that announced DSN and got our parameters.
    ...(dsnParameters && (info as { ehlo?: string[] }).ehlo?.some((line) => /^DSN\b/i.test(line)) ? { dsn: true } : {}),
  }
}

/** The RCPT errors of the envelope in flight, which nodemailer keeps on the connection but leaves out of a message error. */
function rcptErrors(lease: Lease): NodemailerError[] | undefined {
  return (lease.connection as unknown as { _envelope?: { rejectedErrors?: NodemailerError[] } })._envelope?.rejectedErrors
}
