/**
 * smtp-server's callbacks, wired to a pipeline. This is the adapter that owns the wire format:
 * every refusal is an `SmtpError` written as `code enhanced text` (smtp-server's own enhanced
 * codes stay off, because it derives them from the basic code and would label a policy refusal
 * 550 as 5.1.1), relay permission is checked per recipient, and the transaction log line is
 * written once per message.
 */
import type { SMTPServerAddress, SMTPServerDataStream, SMTPServerSession } from 'smtp-server'
import { reject, SmtpError, toSmtpError } from '../errors.js'
import type { Logger } from '../logger.js'
import { MessageImpl } from '../message.js'
import { sameAddress } from '../pipeline.js'
import type { Address } from '../types.js'
import { checkedAddress } from './address.js'
import { receiveMessage, type DataContext } from './data.js'
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
}

/** What the handlers need besides the DATA context. */
export interface HandlerContext extends DataContext {
  maxRecipients: number
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

/** Builds the smtp-server handlers of one listener. */
export function createHandlers(listener: string, ctx: HandlerContext) {
  const conns = new Map<string, Conn>()
  const logger: Logger = ctx.logger

  const answer = (callback: Callback, work: () => Promise<string | void>, onError?: (err: SmtpError) => void) => {
    work().then(
      (message) => callback(null, message || undefined),
      (err: unknown) => {
        const error = toSmtpError(err)
        onError?.(error)
        callback(toServerError(error))
      },
    )
  }

  const connOf = (session: SMTPServerSession): Conn => {
    const conn = conns.get(session.id)
    if (!conn) throw reject.tempFail(undefined, 'unknown session')
    return conn
  }

  return {
    /** The session view of a connection of this listener, if it is one. */
    view: (sessionId: string) => conns.get(sessionId)?.view,

    /** Whether a connection has a message in DATA (close() lets those finish). */
    inData: (sessionId: string) => conns.get(sessionId)?.inData === true,

    onConnect(session: SMTPServerSession, callback: Callback) {
      const view = new SessionView(session, listener)
      conns.set(session.id, { view, tx: undefined, inFlight: undefined, origins: new Map(), inData: false })
      answer(
        callback,
        async () => {
          if (ctx.closing()) throw reject.unavailable('relay closing')
          await ctx.pipeline.connect(view)
          logger.debug({ session: session.id, client: session.remoteAddress, listener }, 'client connected')
        },
        (err) => logger.info({ session: session.id, client: session.remoteAddress, reply: err.toReply(), stage: err.stage, reason: err.reason }, 'connection refused'),
      )
    },

    onMailFrom(address: SMTPServerAddress, session: SMTPServerSession, callback: Callback) {
      answer(
        callback,
        async () => {
          const conn = connOf(session)
          if (ctx.closing()) throw reject.unavailable('relay closing')
          const from = address.address ? toAddress(address, session) : null
          const tx = new MessageImpl({ session: conn.view, mailFrom: from })
          conn.tx = undefined
          conn.origins = new Map()
          await ctx.pipeline.mailFrom(tx, from)
          conn.tx = tx
        },
        (err) => logger.info({ session: session.id, from: address.address || '<>', reply: err.toReply(), stage: err.stage, reason: err.reason }, 'sender refused'),
      )
    },

    onRcptTo(address: SMTPServerAddress, session: SMTPServerSession, callback: Callback) {
      answer(
        callback,
        async () => {
          const conn = connOf(session)
          const tx = conn.tx
          if (!tx) throw new SmtpError(503, '5.5.1', 'Error: need MAIL command')
          if (tx.envelope.rcptTo.length >= ctx.maxRecipients) throw reject.tooManyRecipients()
          const to = toAddress(address, session)
          const result = await ctx.pipeline.rcptTo(tx, to)
          if (!result.relay) throw reject.noRelay(result.reasons.join('; ') || 'no stage granted relay permission')
          const added = result.recipients.filter((r) => !tx.envelope.rcptTo.some((e) => sameAddress(e, r)))
          if (tx.envelope.rcptTo.length + added.length > ctx.maxRecipients) throw reject.tooManyRecipients()
          for (const r of added) conn.origins.set(r.address.toLowerCase(), to)
          tx.addOriginalRecipient(to)
          tx.setEnvelope({ mailFrom: tx.envelope.mailFrom, rcptTo: [...tx.envelope.rcptTo, ...added] })
          logger.debug({ id: tx.id, rcpt: to.address, to: result.recipients.map((r) => r.address), reasons: result.reasons }, 'recipient accepted')
        },
        (err) =>
          logger.info(
            { session: session.id, id: conns.get(session.id)?.tx?.id, rcpt: address.address, reply: err.toReply(), stage: err.stage, reason: err.reason },
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
      const work = receiveMessage(stream, tx, conn.view, conn.origins, ctx)
      ctx.track(tx.id, work.catch(() => {}))
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
      if (conn?.inData) conn.inFlight?.abort(new Error('client disconnected'))
    },
  }
}
