/**
 * The one implementation of `Transaction` and `Message`: a transaction object created at MAIL
 * FROM that gains its header section and body at DATA. The body is lazy: nothing is read until a
 * transport or a spooling stage reads it.
 */
import { randomBytes } from 'node:crypto'
import type { Readable } from 'node:stream'
import { chain } from './body/chain.js'
import { HeaderBlock } from './body/header-block.js'
import { splitHeader } from './body/split-header.js'
import { Spool, type SpoolOptions } from './body/spool.js'
import { RelayError } from './errors.js'
import type { BodyTransform, Envelope, Message, MessageBody, MessageState, Session, SpooledBody } from './types.js'

// Unique per process from the counter, across processes from the random prefix.
const PROCESS_TAG = randomBytes(3).toString('hex').toUpperCase()
let counter = 0

/** A sortable, unique id like a queue id: time, a per-process counter, a per-process random tag. */
export function createId(): string {
  counter = (counter + 1) % 0x8000
  return `${Date.now().toString(32).slice(-7).toUpperCase()}${counter.toString(32).toUpperCase().padStart(3, '0')}${PROCESS_TAG}`
}

class LazyBody implements MessageBody {
  #source: Readable | null
  #transforms: BodyTransform[] = []
  #spool: Spool | null = null
  #spooling: Promise<Spool> | null = null
  readonly #spoolOptions: SpoolOptions
  readonly #spools: Spool[]

  constructor(source: Readable, spoolOptions: SpoolOptions, spools: Spool[]) {
    this.#source = source
    this.#spoolOptions = spoolOptions
    this.#spools = spools
  }

  transform(transform: BodyTransform): void {
    this.#transforms.push(transform)
  }

  spool(): Promise<SpooledBody> {
    if (this.#transforms.length || !this.#spooling) {
      // Concurrent callers (route splitting) share one spooling run.
      this.#spooling = Spool.from(this.stream(), this.#spoolOptions).then((spool) => {
        this.#spools.push(spool)
        this.#spool = spool
        return spool
      })
    }
    return this.#spooling
  }

  stream(): Readable {
    let source: Readable
    if (this.#spool) source = this.#spool.open()
    else if (this.#source) {
      source = this.#source
      this.#source = null
    } else {
      throw new RelayError('ERR_RELAY_BODY_CONSUMED', 'the message body was already read; call body.spool() to read it twice')
    }
    const transforms = this.#transforms
    if (!transforms.length) return source
    this.#transforms = []
    // Transforms are single-use: after this read, a re-read needs a new spool.
    this.#spool = null
    this.#spooling = null
    return chain(source, transforms)
  }
}

/** What a new transaction is made of. */
export interface TransactionInit {
  session: Session
  mailFrom: Envelope['mailFrom']
  id?: string
  /** Follow another transaction's signal (forks); default: a signal of its own, see `abort()`. */
  signal?: AbortSignal
  state?: Partial<MessageState>
}

/** @internal The implementation behind Transaction and Message. */
export class MessageImpl implements Message {
  readonly id: string
  readonly session: Session
  readonly state: Partial<MessageState>
  #signal: AbortSignal | undefined
  #controller: AbortController | undefined
  #abortReason: unknown
  #original: Envelope
  #envelope: Envelope
  #headers: HeaderBlock | null = null
  #body: LazyBody | null = null
  #spoolOptions: SpoolOptions = {}
  /** Spools of this message and its forks, disposed together. */
  readonly spools: Spool[] = []

  constructor(init: TransactionInit) {
    this.id = init.id ?? createId()
    this.session = init.session
    this.state = init.state ?? {}
    this.#signal = init.signal
    this.#original = { mailFrom: init.mailFrom, rcptTo: [] }
    this.#envelope = this.#original
  }

  /** Created on first use: most transactions never need one, and each costs an EventTarget. */
  get signal(): AbortSignal {
    if (!this.#signal) {
      this.#controller = new AbortController()
      if (this.#abortReason !== undefined) this.#controller.abort(this.#abortReason)
      this.#signal = this.#controller.signal
    }
    return this.#signal
  }

  /** Aborts the transaction's signal (relay only: the client left mid-transaction). */
  abort(reason: unknown): void {
    this.#abortReason = reason
    this.#controller?.abort(reason)
  }

  get original(): Envelope {
    return this.#original
  }

  get envelope(): Envelope {
    return this.#envelope
  }

  /** Sets the current envelope (pipeline only). */
  setEnvelope(envelope: Envelope): void {
    this.#envelope = envelope
  }

  /** Records a recipient as the client sent it (relay only). */
  addOriginalRecipient(rcpt: Envelope['rcptTo'][number]): void {
    this.#original = { mailFrom: this.#original.mailFrom, rcptTo: [...this.#original.rcptTo, rcpt] }
  }

  /** Attaches the content: the transaction becomes a message. */
  attachContent(headers: HeaderBlock, body: Readable, spoolOptions: SpoolOptions = {}): this {
    this.#headers = headers
    this.#spoolOptions = spoolOptions
    this.#body = new LazyBody(body, spoolOptions, this.spools)
    return this
  }

  get headers(): HeaderBlock {
    if (!this.#headers) throw new RelayError('ERR_RELAY_INVALID_STAGE', 'headers are not available before DATA')
    return this.#headers
  }

  get body(): MessageBody {
    if (!this.#body) throw new RelayError('ERR_RELAY_INVALID_STAGE', 'the body is not available before DATA')
    return this.#body
  }

  stream(): Readable {
    const head = this.headers.toBuffer()
    const body = this.body.stream()
    // Nothing has read the body stream yet: putting the header section in front of its buffer
    // costs no extra stream, and joining it with what is already buffered saves the next hop a
    // write (a small message then leaves in one piece, as it came).
    if (head.length) {
      const buffered = body.readableLength ? (body.read() as Buffer | null) : null
      body.unshift(buffered ? Buffer.concat([head, buffered]) : head)
    }
    return body
  }

  async rewrite(transform: BodyTransform): Promise<void> {
    const split = await splitHeader(chain(this.stream(), [transform]), Infinity)
    this.#headers = HeaderBlock.parse(split.head, split.separator)
    this.#body = new LazyBody(split.body, this.#spoolOptions, this.spools)
  }

  /**
   * A copy of this message for part of its recipients (route splitting, per-DSN groups): same
   * id, session and state, its own header block, and a body read from `body`.
   */
  fork(envelope: Envelope, body: Readable): MessageImpl {
    const copy = new MessageImpl({ id: this.id, session: this.session, mailFrom: this.#original.mailFrom, signal: this.signal, state: this.state })
    copy.#original = this.#original
    copy.#envelope = envelope
    copy.#headers = this.headers.clone()
    copy.#spoolOptions = this.#spoolOptions
    copy.#body = new LazyBody(body, this.#spoolOptions, this.spools)
    return copy
  }

  /** Removes every spool of this message. */
  async dispose(): Promise<void> {
    await Promise.all(this.spools.splice(0).map((s) => s.dispose()))
  }
}

/**
 * A copy of `msg` for a subset of its recipients. The body is spooled first when `shareBody` is
 * true, so that several copies can each read it; otherwise the copy takes the body over.
 */
export async function forkMessage(msg: Message, envelope: Envelope, shareBody: boolean): Promise<Message> {
  if (!(msg instanceof MessageImpl)) {
    throw new RelayError('ERR_RELAY_INVALID_STAGE', 'forkMessage needs a message created by relaychain')
  }
  const body = shareBody ? (await msg.body.spool()).open() : msg.body.stream()
  return msg.fork(envelope, body)
}
