/**
 * smtp-server's callbacks, wired to a pipeline. This is the adapter that owns the wire format:
 * every refusal is an `SmtpError` written as `code enhanced text` (smtp-server's own enhanced
 * codes stay off, because it derives them from the basic code and would label a policy refusal
 * 550 as 5.1.1), relay permission is checked per recipient, and the transaction log line is
 * written once per message.
 *
 * Every answer is bounded: a hook that does not settle within `replyTimeout` is abandoned with
 * `451 4.3.0`, and a client that leaves ends whatever its connection was waiting for at once
 * (the transaction's signal is aborted, its temp files go).
 */
import type { SMTPServerAddress, SMTPServerDataStream, SMTPServerSession } from 'smtp-server'
import type { SMTPConnection } from 'smtp-server/lib/smtp-connection.js'
import { reject, SmtpError, toSmtpError } from '../../core/errors.js'
import { MessageImpl } from '../../core/message.js'
import { sameAddress } from '../../core/pipeline.js'
import type { Address } from '../../core/types.js'
import type { Logger } from '../../shared/logger.js'
import { checkedAddress } from './address-check.js'
import { type DataContext, receiveMessage } from './data.js'
import { SessionView } from './session.js'

type Callback = (err?: Error | null, message?: string) => void

/** The state of one connection. */
interface Conn {
  view: SessionView
  /** The transaction between MAIL and DATA. */
  tx: MessageImpl | undefined
  /** The transaction in DATA, aborted if the client leaves. */
  inFlight: MessageImpl | undefined
  /** For each accepted final recipient (lower case), the RCPT it came from. */
  origins: Map<string, Address>
  inData: boolean
  /** Aborted when the client goes away: whatever its connection waits for is abandoned. */
  left: AbortController
}

/** What the handlers need besides the DATA context. */
export interface HandlerContext extends DataContext {
  maxRecipients: number
  /** See `RelayLimits.replyTimeout`. */
  replyTimeout: number
  /** Where `RCPT TO:<Postmaster>` goes. */
  postmaster: string
  /** True once close() started: new transactions get 421. */
  closing(): boolean
  /** Registers in-flight DATA work so close() can wait for it. */
  track(id: string, work: Promise<unknown>): void
}

/** The smtp-server error object for an `SmtpError` (code in `responseCode`, enhanced code in text). */
export function toServerError(err: SmtpError): Error & { responseCode: number } {
  return Object.assign(new Error(`${err.enhanced} ${err.response}`), { responseCode: err.code })
}

/** The address as the address hook checked and normalised it, with smtp-server's parameters. */
function toAddress(address: SMTPServerAddress, session: SMTPServerSession): Address {
  const checked = checkedAddress(session, address.address)
  return address.args ? { address: checked, args: address.args } : { address: checked }
}

const POSTMASTER = /^postmaster$/i
/** Socket errors that only say the client went away. */
const GONE = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNABORTED', 'EHOSTUNREACH', 'ENETUNREACH'])

/**
 * Settles with `work`, or rejects once `signal` aborts or `ms` pass (with `timeout()`). The
 * abandoned work is left to finish on its own; its outcome is ignored, never unhandled.
 */
function bounded<T>(work: Promise<T>, ms: number, signal: AbortSignal, timeout: () => SmtpError): Promise<T> {
  work.catch(() => {})
  if (signal.aborted) return Promise.reject(signal.reason)
  return new Promise<T>((resolve, rejectWork) => {
    const timer = setTimeout(() => rejectWork(timeout()), ms).unref()
    const onAbort = () => rejectWork(signal.reason)
    signal.addEventListener('abort', onAbort, { once: true })
    work.then(resolve, rejectWork).finally(() => {
      clearTimeout(timer)
      signal.removeEventListener('abort', onAbort)
    })
  })
}

/** Builds the smtp-server handlers of one listener. */
export function createHandlers(listener: string, ctx: HandlerContext) {
  const conns = new Map<string, Conn>()
  const logger: Logger = ctx.logger

  /**
   * Answers one command from `work`. The answer is bounded by `replyTimeout` (a stuck stage is
   * reported and the client told to retry), abandoned if the client leaves, and anything but an
   * `SmtpError` from the chain is reported as an error on our side.
   */
  const answer = (
    conn: Conn | undefined,
    phase: 'connect' | 'MAIL' | 'RCPT',
    fields: Record<string, unknown>,
    callback: Callback,
    work: () => Promise<string | void>,
    refused: (err: SmtpError) => void,
  ) => {
    const left = conn?.left.signal ?? new AbortController().signal
    const overrun = () => {
      ctx.unexpected(
        new Error(`the ${phase} hooks did not answer within ${ctx.replyTimeout} ms`),
        { listener, ...fields },
        'chain did not answer in time',
      )
      return reject.tempFail(undefined, `${phase} hooks overran the reply timeout`)
    }
    bounded(Promise.resolve().then(work), ctx.replyTimeout, left, overrun).then(
      (message) => callback(null, message || undefined),
      (err: unknown) => {
        if (left.aborted) return // nobody left to answer
        let error = toSmtpError(err)
        if (!(err instanceof SmtpError)) ctx.unexpected(err, { listener, ...fields, stage: error.stage }, `unexpected error in ${phase} hooks`)
        // Before the greeting a temporary refusal is 421 (RFC 5321 §3.1); the connection closes.
        if (phase === 'connect' && error.temporary && error.code !== 421)
          error = Object.assign(reject.unavailable(error.reason), { stage: error.stage })
        refused(error)
        callback(toServerError(error))
      },
    )
  }

  return {
    /** The session view of a connection of this listener, if it is one. */
    view: (sessionId: string) => conns.get(sessionId)?.view,

    /** Whether a connection has a message in DATA (close() lets those finish). */
    inData: (sessionId: string) => conns.get(sessionId)?.inData === true,

    onConnect(session: SMTPServerSession, callback: Callback) {
      const view = new SessionView(session, listener)
      const conn: Conn = { view, tx: undefined, inFlight: undefined, origins: new Map(), inData: false, left: new AbortController() }
      conns.set(session.id, conn)
      const fields = { session: session.id, client: session.remoteAddress }
      answer(
        conn,
        'connect',
        fields,
        callback,
        async () => {
          if (ctx.closing()) throw reject.unavailable('relay closing')
          await ctx.pipeline.connect(view)
          logger.debug({ ...fields, listener }, 'client connected')
        },
        (err) => logger.info({ ...fields, reply: err.toReply(), stage: err.stage, reason: err.reason }, 'connection refused'),
      )
    },

    onMailFrom(address: SMTPServerAddress, session: SMTPServerSession, callback: Callback) {
      const conn = conns.get(session.id)
      answer(
        conn,
        'MAIL',
        { session: session.id },
        callback,
        async () => {
          if (!conn) throw reject.tempFail(undefined, 'unknown session')
          if (ctx.closing()) throw reject.unavailable('relay closing')
          const from = address.address ? toAddress(address, session) : null
          const tx = new MessageImpl({ session: conn.view, mailFrom: from })
          conn.tx = undefined
          conn.origins = new Map()
          await ctx.pipeline.mailFrom(tx, from)
          conn.tx = tx
        },
        (err) =>
          logger.info(
            { session: session.id, from: address.address || '<>', reply: err.toReply(), stage: err.stage, reason: err.reason },
            'sender refused',
          ),
      )
    },

    onRcptTo(address: SMTPServerAddress, session: SMTPServerSession, callback: Callback) {
      const conn = conns.get(session.id)
      answer(
        conn,
        'RCPT',
        { session: session.id, id: conn?.tx?.id },
        callback,
        async () => {
          const tx = conn?.tx
          if (!conn || !tx) throw new SmtpError(503, '5.5.1', 'Error: need MAIL command')
          if (tx.envelope.rcptTo.length >= ctx.maxRecipients) throw reject.tooManyRecipients()
          const to = toAddress(address, session)
          // RFC 5321 §4.5.1: the relay answers for its own postmaster, whoever else may relay.
          const postmaster = POSTMASTER.test(to.address)
          const result = await ctx.pipeline.rcptTo(tx, postmaster ? { ...to, address: ctx.postmaster } : to)
          if (!result.relay && !postmaster) throw reject.noRelay(result.reasons.join('; ') || 'no stage granted relay permission')
          const added = result.recipients.filter((r) => !tx.envelope.rcptTo.some((e) => sameAddress(e, r)))
          if (tx.envelope.rcptTo.length + added.length > ctx.maxRecipients) throw reject.tooManyRecipients()
          for (const r of added) conn.origins.set(r.address.toLowerCase(), to)
          tx.addOriginalRecipient(to)
          tx.setEnvelope({ mailFrom: tx.envelope.mailFrom, rcptTo: [...tx.envelope.rcptTo, ...added] })
          logger.debug({ id: tx.id, rcpt: to.address, to: result.recipients.map((r) => r.address), reasons: result.reasons }, 'recipient accepted')
        },
        (err) =>
          logger.info(
            { session: session.id, id: conn?.tx?.id, rcpt: address.address, reply: err.toReply(), stage: err.stage, reason: err.reason },
            'recipient refused',
          ),
      )
    },

    onData(stream: SMTPServerDataStream, session: SMTPServerSession, callback: Callback) {
      const conn = conns.get(session.id)
      const tx = conn?.tx
      if (!conn || !tx) {
        stream.resume()
        return callback(toServerError(new SmtpError(503, '5.5.1', 'Error: need RCPT command')))
      }
      conn.tx = undefined
      conn.inFlight = tx
      conn.inData = true
      const work = receiveMessage(stream, tx, conn.view, conn.origins, { ...ctx, left: conn.left.signal })
      ctx.track(
        tx.id,
        work.catch(() => {}),
      )
      const done = () => {
        conn.inData = false
        conn.inFlight = undefined
      }
      work.then(
        (message) => (done(), callback(null, message)),
        (err: unknown) => (done(), callback(toServerError(toSmtpError(err)))),
      )
    },

    onClose(session: SMTPServerSession) {
      const conn = conns.get(session.id)
      conns.delete(session.id)
      if (!conn) return
      const gone = new Error('client disconnected')
      conn.left.abort(gone)
      conn.inFlight?.abort(gone)
      conn.tx?.abort(gone)
    },

    /** A socket or TLS error of a connection of this listener: logged once, the connection ends. */
    onConnectionError(connection: SMTPConnection, err: NodeJS.ErrnoException) {
      const conn = conns.get(connection.id)
      const fields = {
        session: connection.id,
        client: connection.remoteAddress,
        listener,
        id: (conn?.inFlight ?? conn?.tx)?.id,
        err: err.code ?? err.message,
      }
      const tls = /tls|ssl/i.test(`${err.code ?? ''} ${err.message}`)
      logger.info(fields, tls ? 'TLS error, connection closed' : GONE.has(err.code ?? '') ? 'client connection lost' : 'client connection error')
    },
  }
}
