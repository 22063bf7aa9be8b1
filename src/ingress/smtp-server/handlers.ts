/**
 * smtp-server's callbacks, translated into the engine's transaction: MAIL begins one, RCPT adds a
 * recipient, DATA hands over the content, a closed connection aborts it. The engine decides and
 * announces outcomes; this adapter owns only the wire: every refusal is written as
 * `code enhanced text` (smtp-server's own enhanced codes stay off, because it derives them from
 * the basic code and would label a policy refusal 550 as 5.1.1).
 *
 * Every answer is bounded: hooks that do not settle within `replyTimeout` are abandoned with
 * `451 4.3.0` (`421 4.3.2` at connect), and a client that leaves ends whatever its connection was
 * waiting for at once.
 */
import type { SMTPServerAddress, SMTPServerDataStream, SMTPServerSession } from 'smtp-server'
import type { SMTPConnection } from 'smtp-server/lib/smtp-connection.js'
import { reject, SmtpError, toSmtpError } from '../../core/errors.js'
import type { Pipeline } from '../../core/pipeline.js'
import type { BeginOptions, PipelineTransaction } from '../../core/transaction.js'
import type { Address } from '../../core/types.js'
import type { Logger } from '../../shared/logger.js'
import { checkedAddress } from './address-check.js'
import { type DataContext, receiveMessage } from './data.js'
import { SessionView } from './session.js'

type Callback = (err?: Error | null, message?: string) => void

/** The state of one connection. */
interface Conn {
  view: SessionView
  /** The transaction between MAIL and the end of DATA. */
  tx: PipelineTransaction | undefined
  inData: boolean
  /** Set when the client went away: whatever its connection waits for is abandoned. */
  left: Error | undefined
  /** What the connection waits for now, to abandon when the client leaves. */
  waiting: Set<(reason: Error) => void>
}

/** What the handlers need from the relay. */
export interface HandlerContext extends DataContext {
  pipeline: Pipeline
  logger: Logger
  /** Reports an error on our side (logged at error, passed to the relay's `onError`). */
  unexpected(err: unknown, fields: Record<string, unknown>, message: string): void
  /** See `RelayLimits.replyTimeout`. */
  replyTimeout: number
  /** What every transaction of this relay asks of the engine. */
  begin: BeginOptions
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

/** Socket errors that only say the client went away. */
const GONE = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNABORTED', 'EHOSTUNREACH', 'ENETUNREACH'])

/**
 * Settles with `work`, or rejects once the client leaves or `ms` pass (with `timeout()`). The
 * abandoned work is left to finish on its own; its outcome is ignored, never unhandled.
 */
function bounded<T>(work: Promise<T>, ms: number, conn: Conn | undefined, timeout: () => SmtpError): Promise<T> {
  if (conn?.left) {
    work.catch(() => {})
    return Promise.reject(conn.left)
  }
  return new Promise<T>((resolve, rejectWork) => {
    const timer = setTimeout(() => rejectWork(timeout()), ms).unref()
    conn?.waiting.add(rejectWork)
    const end = () => {
      clearTimeout(timer)
      conn?.waiting.delete(rejectWork)
    }
    work.then(
      (value) => (end(), resolve(value)),
      (err: unknown) => (end(), rejectWork(err)),
    )
  })
}

/** Builds the smtp-server handlers of one listener. */
export function createHandlers(listener: string, ctx: HandlerContext) {
  const conns = new Map<string, Conn>()
  const logger: Logger = ctx.logger

  /**
   * Answers one command from `work`, bounded by `replyTimeout` (a stuck stage is reported and the
   * client told to retry) and abandoned if the client leaves. The engine has announced (and, if it
   * was not a refusal, reported) whatever MAIL and RCPT failed with.
   */
  const answer = (
    conn: Conn | undefined,
    phase: 'connect' | 'MAIL' | 'RCPT',
    callback: Callback,
    work: () => Promise<unknown>,
    timeout: () => SmtpError,
  ) => {
    const overrun = () => {
      ctx.unexpected(
        new Error(`the ${phase} hooks did not answer within ${ctx.replyTimeout} ms`),
        { listener, session: conn?.view.id },
        'chain did not answer in time',
      )
      return timeout()
    }
    let running: Promise<unknown>
    try {
      running = work()
    } catch (err) {
      running = Promise.reject(err)
    }
    bounded(running, ctx.replyTimeout, conn, overrun).then(
      () => callback(null),
      (err: unknown) => {
        if (!conn?.left) callback(toServerError(toSmtpError(err)))
      },
    )
  }

  /** The connect hooks for a connection's client; rejects with the refusal (`421` for a temporary one: the connection closes). */
  const connectHooks = async (view: SessionView) => {
    const fields = { session: view.id, client: view.remoteAddress }
    if (ctx.closing()) throw reject.unavailable('relay closing')
    try {
      await ctx.pipeline.connect(view)
    } catch (err) {
      let error = toSmtpError(err)
      if (!(err instanceof SmtpError)) ctx.unexpected(err, { listener, ...fields, stage: error.stage }, 'unexpected error in connect hooks')
      // Before the greeting a temporary refusal is 421 (RFC 5321 §3.1); the connection closes.
      if (error.temporary && error.code !== 421) error = Object.assign(reject.unavailable(error.reason), { stage: error.stage })
      logger.info({ ...fields, reply: error.toReply(), stage: error.stage, reason: error.reason }, 'connection refused')
      throw error
    }
    logger.debug({ ...fields, listener }, 'client connected')
  }
  const connectOverrun = (conn: Conn | undefined) => () => {
    ctx.unexpected(
      new Error(`the connect hooks did not answer within ${ctx.replyTimeout} ms`),
      { listener, session: conn?.view.id },
      'chain did not answer in time',
    )
    return reject.unavailable('connect hooks overran the reply timeout')
  }

  return {
    /** The session view of a connection of this listener, if it is one. */
    view: (sessionId: string) => conns.get(sessionId)?.view,

    /** Whether a connection has a message in DATA (close() lets those finish). */
    inData: (sessionId: string) => conns.get(sessionId)?.inData === true,

    onConnect(session: SMTPServerSession, callback: Callback) {
      const view = new SessionView(session, listener)
      const conn: Conn = { view, tx: undefined, inData: false, left: undefined, waiting: new Set() }
      conns.set(session.id, conn)
      answer(
        conn,
        'connect',
        callback,
        () => connectHooks(view),
        () => reject.unavailable('connect hooks overran the reply timeout'),
      )
    },

    /**
     * A trusted host named the client with XCLIENT: the connect hooks run again, for it. Rejects
     * with the refusal (the connection then closes).
     */
    async onXclient(session: SMTPServerSession): Promise<void> {
      const conn = conns.get(session.id)
      if (!conn) throw reject.unavailable('unknown session')
      logger.info(
        { session: session.id, listener, client: session.remoteAddress, via: session.xClient?.get('ADDR:DEFAULT') },
        'XCLIENT: client named',
      )
      await bounded(connectHooks(conn.view), ctx.replyTimeout, conn, connectOverrun(conn)).catch((err: unknown) => {
        throw toSmtpError(err)
      })
    },

    onMailFrom(address: SMTPServerAddress, session: SMTPServerSession, callback: Callback) {
      const conn = conns.get(session.id)
      const begin = async () => {
        if (!conn) throw reject.tempFail(undefined, 'unknown session')
        if (ctx.closing()) throw reject.unavailable('relay closing')
        conn.tx = undefined
        conn.tx = await ctx.pipeline.begin(conn.view, address.address ? toAddress(address, session) : null, ctx.begin)
      }
      answer(conn, 'MAIL', callback, begin, () => reject.tempFail(undefined, 'MAIL hooks overran the reply timeout'))
    },

    onRcptTo(address: SMTPServerAddress, session: SMTPServerSession, callback: Callback) {
      const conn = conns.get(session.id)
      const add = async () => {
        if (!conn?.tx) throw new SmtpError(503, '5.5.1', 'Error: need MAIL command')
        await conn.tx.addRecipient(toAddress(address, session))
      }
      answer(conn, 'RCPT', callback, add, () => reject.tempFail(undefined, 'RCPT hooks overran the reply timeout'))
    },

    onData(stream: SMTPServerDataStream, session: SMTPServerSession, callback: Callback) {
      const conn = conns.get(session.id)
      const tx = conn?.tx
      if (!conn || !tx?.envelope.rcptTo.length) {
        stream.resume()
        return callback(toServerError(new SmtpError(503, '5.5.1', 'Error: need RCPT command')))
      }
      conn.inData = true
      const work = receiveMessage(stream, tx, conn.view, ctx)
      ctx.track(
        tx.id,
        work.catch(() => {}),
      )
      const done = () => {
        conn.inData = false
        if (conn.tx === tx) conn.tx = undefined
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
      conn.left = gone
      for (const abandon of conn.waiting) abandon(gone)
      conn.waiting.clear()
      conn.tx?.abort(gone)
    },

    /** A socket or TLS error of a connection of this listener: logged once, the connection ends. */
    onConnectionError(connection: SMTPConnection, err: NodeJS.ErrnoException) {
      const fields = {
        session: connection.id,
        client: connection.remoteAddress,
        listener,
        id: conns.get(connection.id)?.tx?.id,
        err: err.code ?? err.message,
      }
      const tls = /tls|ssl/i.test(`${err.code ?? ''} ${err.message}`)
      logger.info(fields, tls ? 'TLS error, connection closed' : GONE.has(err.code ?? '') ? 'client connection lost' : 'client connection error')
    },
  }
}
