/**
 * The engine's transaction: the one object every ingress drives (the SMTP adapter, a pipeline
 * used as a transport, the queue worker, any ingress an application writes). It owns the
 * envelope and gives it one meaning in every hook, the relay verdict per recipient, limits,
 * dedupe, where each final recipient came from, the completion of the report, the DSN decision
 * and the announcement of every outcome as a delivery event.
 *
 * Lifecycle: `pipeline.begin(session, from)` runs the MAIL hooks; `addRecipient(to)` the RCPT
 * hooks for one recipient (throws the `SmtpError` that refuses it); `data(content)` runs the data
 * onion and the transport and resolves with the outcome (it never rejects: a refusal is in the
 * outcome); `abort(reason)` ends the transaction whatever it is doing: stages and the transport
 * see its signal, the wait for the chain ends at once, and nothing is forwarded afterwards.
 */
import { hostname as osHostname } from 'node:os'
import { Readable } from 'node:stream'
import type { DeliveryEvents, EventSession, MessageEventBase, MessageRefusedEvent } from '../delivery/events.js'
import type { NoticeSender } from '../delivery/notices.js'
import { sendFailureNotice } from '../delivery/notices.js'
import { completeReport, mapBack, refusalOf } from '../delivery/report.js'
import { addressKey, sameAddress } from './address.js'
import { HeaderBlock } from './body/header-block.js'
import { splitHeader } from './body/split-header.js'
import type { SpoolOptions } from './body/spool.js'
import type { StageTimings } from './compose.js'
import { RelayError, reject, SmtpError, toSmtpError } from './errors.js'
import { runMailFrom, runRcptTo } from './hooks.js'
import { MessageImpl } from './message.js'
import type { Address, DeliveryReport, Envelope, Message, MessageState, RejectedRecipient, Session, Stage, Transaction } from './types.js'

/**
 * Options of `Pipeline.begin()`: what the ingress asks of the transaction.
 *
 * @category Core
 */
export interface BeginOptions {
  /**
   * Refuse a recipient unless a stage that declares `grantsRelay` grants relay permission
   * (`554 5.7.1`): what an SMTP listener does. Default false: a pipeline used as a transport and
   * the queue worker deliver recipients that were accepted already.
   */
  readonly requireRelay?: boolean
  /** Final recipients at most; more get `452 4.5.3`. Default 1000. */
  readonly maxRecipients?: number
  /** Where `RCPT TO:<Postmaster>` (no domain) goes; relayed without a stage granting it. Default: no special case. */
  readonly postmaster?: string
  /** Spooling of bodies that stages read whole. */
  readonly spool?: SpoolOptions
  /** The reporting MTA named in DSNs. Default `os.hostname()`. */
  readonly hostname?: string
  /** Milliseconds the chain may take once the content has arrived; then it is aborted (`451 4.3.0`). Default: no limit. */
  readonly replyTimeout?: number
  /** The transaction id (a redelivery keeps the queue id). Default: a new one. */
  readonly id?: string
  /** The envelope as first received (a redelivery keeps the client's). Default: built from begin() and addRecipient(). */
  readonly original?: Envelope
  /** State to start from. */
  readonly state?: Partial<MessageState>
  /** Aborts the transaction when it aborts. */
  readonly signal?: AbortSignal
  /**
   * Announce the outcome: events, the log line, the DSN for recipients refused after DATA.
   * Default true; false for a transaction inside another (a nested pipeline), whose outcome the
   * outer one announces. Errors on our side are announced either way.
   */
  readonly announce?: boolean
}

/**
 * The content handed to `data()`.
 *
 * @category Core
 */
export type MessageContent =
  | {
      /** The header section, parsed (or a promise of it: a failure to read it refuses the message). */
      readonly headers: HeaderBlock | Promise<HeaderBlock>
      /** The body, streamed. */
      readonly body: Readable
      /** Bytes received, once known (for events and the log). */
      readonly size?: () => number
      /**
       * Settles once the content has arrived in full, with the refusal the source itself decided
       * (a size limit or a bare line ending found in the part the chain did not read), if any.
       * It must settle, also when the chain stops reading early (the body is then destroyed).
       */
      readonly done?: Promise<SmtpError | undefined>
    }
  /** A whole message (header section and body); the header section is split off here. */
  | {
      /** The message, header section first, as a stream or whole. */
      readonly raw: Readable | Buffer | string
    }
  /** The content of another message (a nested pipeline takes over its caller's). */
  | {
      /** The message whose headers and body this transaction takes over. */
      readonly message: Message
    }

/**
 * What became of a transaction's message.
 *
 * @category Core
 */
export interface TransactionOutcome {
  /** Recipients as added that were delivered (every final recipient each became was accepted). */
  readonly accepted: readonly Address[]
  /** Recipients as added that were not, with the error. */
  readonly rejected: readonly RejectedRecipient[]
  /** The report on the final recipients, when the chain produced one. */
  readonly report?: DeliveryReport
  /** The reply for the ingress's client, e.g. `250 2.0.0 Ok: queued as <id>`. */
  readonly reply: string
  /** The refusal of the message as a whole (no recipient accepted), when it was refused. */
  readonly error?: SmtpError
  /** True if the transaction was aborted before its outcome: nobody may be waiting for the reply. */
  readonly aborted: boolean
}

/**
 * A transaction as an ingress drives it; see the file header.
 *
 * @category Core
 */
export interface PipelineTransaction extends Transaction {
  /** Runs the RCPT hooks for one recipient; resolves with the final recipients it became. Throws the `SmtpError` refusing it. */
  addRecipient(to: Address): Promise<readonly Address[]>
  /** Runs the chain for the content; resolves with the outcome, never rejects. */
  data(content: MessageContent): Promise<TransactionOutcome>
  /** Ends the transaction (the client left, a limit expired); see the file header. */
  abort(reason?: unknown): void
}

/** What a transaction needs from its pipeline. */
export interface Chain {
  readonly mailStages: readonly Stage[]
  readonly rcptStages: readonly Stage[]
  deliver(msg: Message, timings: StageTimings): Promise<DeliveryReport>
  readonly events: DeliveryEvents
  readonly notices: NoticeSender
}

const POSTMASTER = /^postmaster$/i

/** Starts a transaction: runs the MAIL hooks. Throws the `SmtpError` refusing the sender. */
export async function beginTransaction(
  chain: Chain,
  session: Session,
  from: Address | null,
  options: BeginOptions = {},
  parent?: Message,
): Promise<PipelineTransaction> {
  const msg = new MessageImpl({ session, mailFrom: from, id: options.id, signal: options.signal, state: options.state })
  if (options.original) msg.setOriginal(options.original)
  // A nested transaction reports errors where its caller's message reports them.
  msg.events = (parent instanceof MessageImpl ? parent.events : undefined) ?? chain.events
  const tx = new EngineTransaction(chain, msg, options)
  try {
    await runMailFrom(chain.mailStages, msg, from)
  } catch (err) {
    throw tx.refused(err, 'MAIL', (error) => ({ type: 'sender-refused', from: from?.address ?? '<>', ...why(error) }))
  }
  return tx
}

/** The refusal fields of an event. */
function why(error: SmtpError) {
  return { reply: error.toReply(), ...(error.stage ? { stage: error.stage } : {}), ...(error.reason ? { reason: error.reason } : {}) }
}

class EngineTransaction implements PipelineTransaction {
  readonly #chain: Chain
  readonly #msg: MessageImpl
  readonly #options: BeginOptions
  readonly #announce: boolean
  readonly #events: DeliveryEvents
  /** For each final recipient (by addressKey), the recipient it was added as. */
  readonly #origins = new Map<string, Address>()
  #phase: 'envelope' | 'data' | 'done' = 'envelope'
  #eventSession: EventSession | undefined

  constructor(chain: Chain, msg: MessageImpl, options: BeginOptions) {
    this.#chain = chain
    this.#msg = msg
    this.#options = options
    this.#announce = options.announce !== false
    this.#events = msg.events ?? chain.events
  }

  get id() {
    return this.#msg.id
  }
  get session() {
    return this.#msg.session
  }
  get original() {
    return this.#msg.original
  }
  get envelope() {
    return this.#msg.envelope
  }
  get state() {
    return this.#msg.state
  }
  get signal() {
    return this.#msg.signal
  }

  abort(reason?: unknown): void {
    this.#msg.abort(reason ?? new Error('transaction aborted'))
  }

  async addRecipient(to: Address): Promise<readonly Address[]> {
    if (this.#phase !== 'envelope') throw new RelayError('ERR_RELAY_TRANSACTION_STATE', 'addRecipient() after data()')
    const msg = this.#msg
    const max = this.#options.maxRecipients ?? 1000
    try {
      if (msg.envelope.rcptTo.length >= max) throw reject.tooManyRecipients()
      // RFC 5321 §4.5.1: the relay answers for its own postmaster, whoever else may relay.
      const postmaster = this.#options.postmaster !== undefined && POSTMASTER.test(to.address)
      const result = await runRcptTo(this.#chain.rcptStages, msg, postmaster ? { ...to, address: this.#options.postmaster! } : to)
      if (this.#options.requireRelay && !result.relay && !postmaster)
        throw reject.noRelay(result.reasons.join('; ') || 'no stage granted relay permission')
      const added = result.recipients.filter((r) => !msg.envelope.rcptTo.some((e) => sameAddress(e, r)))
      if (msg.envelope.rcptTo.length + added.length > max) throw reject.tooManyRecipients()
      for (const r of added) this.#origins.set(addressKey(r.address), to)
      if (!this.#options.original) msg.addOriginalRecipient(to)
      msg.setEnvelope({ mailFrom: msg.envelope.mailFrom, rcptTo: [...msg.envelope.rcptTo, ...added] })
      return result.recipients
    } catch (err) {
      throw this.refused(err, 'RCPT', (error) => ({ type: 'recipient-refused', phase: 'rcpt', rcpt: to.address, ...why(error) }))
    }
  }

  /**
   * What to throw for a failure at MAIL or RCPT: the `SmtpError` refusing it, announced; anything
   * else is reported as an error on our side, and a `RelayError` (a stage broke its contract) is
   * thrown as it is, for the ingress to answer `451 4.3.0`.
   */
  refused(err: unknown, phase: 'MAIL' | 'RCPT', event: (error: SmtpError) => object): Error {
    const error = toSmtpError(err)
    if (!(err instanceof SmtpError)) this.#error(err, `unexpected error in ${phase} hooks`, error.stage)
    if (this.#announce) this.#events.emit({ ...this.#base(), ...event(error) } as Parameters<DeliveryEvents['emit']>[0])
    return err instanceof RelayError ? err : error
  }

  async data(content: MessageContent): Promise<TransactionOutcome> {
    if (this.#phase !== 'envelope') throw new RelayError('ERR_RELAY_TRANSACTION_STATE', 'data() called twice')
    if (!this.#msg.envelope.rcptTo.length) throw new RelayError('ERR_RELAY_TRANSACTION_STATE', 'data() without a recipient')
    this.#phase = 'data'
    const msg = this.#msg
    const started = performance.now()
    const timings: StageTimings = {}
    let report: DeliveryReport | undefined
    let failure: unknown
    let size = () => 0
    let done: Promise<SmtpError | undefined> = Promise.resolve(undefined)
    try {
      if ('message' in content) msg.takeContent(content.message)
      else if ('raw' in content) await this.#attachRaw(content.raw)
      else {
        if (content.size) size = content.size
        if (content.done) done = content.done
        msg.attachContent(await content.headers, content.body, this.#options.spool)
      }
      const delivered = await this.#untilAnswered(this.#chain.deliver(msg, timings), done)
      const completed = completeReport(delivered, msg.envelope.rcptTo)
      if (completed.missing.length) {
        const err = new RelayError('ERR_RELAY_INVALID_REPORT', `the transport's report lacks ${completed.missing.map((r) => r.address).join(', ')}`)
        this.#error(err, 'transport report lacks recipients')
      }
      report = completed.report
    } catch (err) {
      failure = err
    } finally {
      // Whatever the chain did not read is discarded, so the source can finish (the SMTP client's DATA).
      msg.discardUnread()
    }
    const verdict = await done
    const outcome = this.#decide(report, verdict ?? failure)
    await msg.dispose()
    this.#phase = 'done'
    if (this.#announce) this.#announceOutcome(outcome, size(), performance.now() - started, timings)
    return outcome
  }

  async #attachRaw(raw: Readable | Buffer | string): Promise<void> {
    const source = typeof raw === 'string' || Buffer.isBuffer(raw) ? Readable.from([Buffer.from(raw)]) : raw
    const split = await splitHeader(source, Infinity)
    this.#msg.attachContent(HeaderBlock.parse(split.head, split.separator), split.body, this.#options.spool)
  }

  /** The chain's report, unless the transaction is aborted first or overruns the reply time after `done`. */
  #untilAnswered(work: Promise<DeliveryReport>, done: Promise<unknown>): Promise<DeliveryReport> {
    work.catch(() => {}) // an abandoned chain may still fail later: not unhandled
    return new Promise((resolve, rejectWork) => {
      let settled = false
      let timer: NodeJS.Timeout | undefined
      const stopWaiting = this.#msg.onAbort(rejectWork)
      const limit = this.#options.replyTimeout
      if (limit !== undefined) {
        void done.then(() => {
          if (settled) return
          timer = setTimeout(() => {
            this.#error(new Error(`the chain did not answer within ${limit} ms of the end of the content`), 'chain did not answer in time')
            this.abort(reject.tempFail(undefined, 'the chain overran the reply timeout'))
          }, limit).unref()
        })
      }
      const end = () => {
        settled = true
        clearTimeout(timer)
        stopWaiting()
      }
      work.then(
        (report) => (end(), resolve(report)),
        (err: unknown) => (end(), rejectWork(err)),
      )
    })
  }

  /** The one place a message's outcome is decided. */
  #decide(report: DeliveryReport | undefined, failure: unknown): TransactionOutcome {
    const aborted = this.#msg.aborted
    if (report && failure === undefined) {
      const { accepted, rejected } = mapBack(report, this.#origins)
      if (accepted.length) {
        if (report.rejected.length && this.#announce) this.#notify(report.rejected)
        return { accepted, rejected, report, reply: `250 2.0.0 Ok: queued as ${this.id}`, aborted }
      }
      failure = refusalOf(report.rejected)
    }
    const error = toSmtpError(failure)
    if (!(failure instanceof SmtpError) && !aborted) this.#error(failure, 'unexpected error in chain', error.stage)
    const rejected = [...new Set(this.#origins.values())].map((rcpt) => ({ rcpt, error }))
    return { accepted: [], rejected, ...(report ? { report } : {}), reply: error.toReply(), error, aborted }
  }

  /** Some recipients failed after DATA while others were delivered: the sender hears of them in a DSN. */
  #notify(failed: readonly RejectedRecipient[]): void {
    const original = (rcpt: Address) => {
      const origin = this.#origins.get(addressKey(rcpt.address))
      return origin && origin !== rcpt && !sameAddress(origin, rcpt) ? { original: origin } : {}
    }
    sendFailureNotice(
      this.#chain.notices,
      this.#msg,
      failed.map((f) => ({ ...f, ...original(f.rcpt) })),
      { hostname: this.#options.hostname ?? osHostname(), session: this.#session(), spool: this.#options.spool ?? {} },
    )
  }

  #announceOutcome(outcome: TransactionOutcome, size: number, ms: number, stages: StageTimings): void {
    const events = this.#events
    if (!events.active) return
    const msg = this.#msg
    const report = outcome.report
    const time = Date.now()
    const session = this.#session()
    const error = outcome.error
    // Plain literals, not spreads: this runs for every message.
    const message: MessageEventFields = {
      time,
      id: this.id,
      session,
      from: msg.envelope.mailFrom?.address ?? '<>',
      to: msg.envelope.rcptTo.map((r) => r.address),
      size,
      reply: outcome.reply,
      accepted: report ? report.accepted.length : 0,
      rejected: report ? report.rejected.length : msg.envelope.rcptTo.length,
      ms,
      stages,
    }
    const messageId = msg.hasContent ? msg.headers.get('message-id') : undefined
    if (messageId) message.messageId = messageId
    if (error) {
      const refused: Mutable<MessageRefusedEvent> = { type: 'message-refused', ...message }
      if (error.stage) refused.stage = error.stage
      if (error.reason) refused.reason = error.reason
      if (outcome.aborted) refused.aborted = true
      events.emit(refused)
      return
    }
    if (report!.queued) {
      // Stored, not delivered: the queue announces each delivery when it happens.
      events.emit({ type: 'accepted', ...message, queued: true })
      return
    }
    events.emit({ type: 'accepted', ...message })
    const response = report!.response ?? ''
    for (const rcpt of report!.accepted) events.emit({ type: 'delivered', time, id: this.id, session, ...this.#recipient(rcpt), response })
    for (const { rcpt, error: refusal } of report!.rejected) {
      events.emit({ type: 'recipient-refused', phase: 'data', time, id: this.id, session, ...this.#recipient(rcpt), ...why(refusal) })
    }
  }

  /** A final recipient in events: the address the client gave, and what it became if different. */
  #recipient(rcpt: Address): { rcpt: string; final?: string } {
    const origin = this.#origins.get(addressKey(rcpt.address))
    return origin && !sameAddress(origin, rcpt) ? { rcpt: origin.address, final: rcpt.address } : { rcpt: rcpt.address }
  }

  #error(error: unknown, message: string, stage?: string): void {
    this.#events.emit({
      type: 'error',
      time: Date.now(),
      message,
      error,
      id: this.id,
      session: this.session.id,
      client: this.session.remoteAddress,
      ...(stage ? { stage } : {}),
    })
  }

  #base(): { time: number; id: string; session: EventSession } {
    return { time: Date.now(), id: this.id, session: this.#session() }
  }

  #session(): EventSession {
    // Built once per transaction: the session cannot change within one (AUTH comes before MAIL).
    if (!this.#eventSession) {
      const s = this.session
      this.#eventSession = s.user
        ? { id: s.id, client: s.remoteAddress, listener: s.listener, user: s.user }
        : { id: s.id, client: s.remoteAddress, listener: s.listener }
    }
    return this.#eventSession
  }
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] }
/** The fields of the message-level events, filled in once. */
type MessageEventFields = Mutable<MessageEventBase>
