/**
 * The one implementation of `Transaction` and `Message`: a transaction object created at MAIL
 * FROM that gains its header section and body at DATA. The body is lazy: nothing is read until a
 * transport or a spooling stage reads it.
 */
import { randomBytes } from 'node:crypto'
import type { Readable } from 'node:stream'
import type { DeliveryEvents } from '../delivery/events.js'
import { chain } from './body/chain.js'
import { HeaderBlock } from './body/header-block.js'
import { splitHeader } from './body/split-header.js'
import { Spool, type SpoolOptions } from './body/spool.js'
import { RelayError } from './errors.js'
import type {
  Address,
  BodyTransform,
  Envelope,
  ForkOptions,
  Message,
  MessageBody,
  MessageState,
  Session,
  SpooledBody,
  SpoolReadOptions,
} from './types.js'

// Unique per process from the counter, across processes from the random prefix.
const PROCESS_TAG = randomBytes(3).toString('hex').toUpperCase()
let counter = 0

/** A sortable, unique id like a queue id: time, a per-process counter, a per-process random tag. */
export function createId(): string {
  counter = (counter + 1) % 0x8000
  return `${Date.now().toString(32).slice(-7).toUpperCase()}${counter.toString(32).toUpperCase().padStart(3, '0')}${PROCESS_TAG}`
}

/** What a message and its forks share: the spools to remove at the end, and the source to drain. */
interface Content {
  readonly spools: Spool[]
  /** Set by dispose(): a spool that completes later (an abandoned chain still reading) goes at once. */
  disposed: boolean
  /** Spooling runs under way: a run whose source failed removes its temp file as it ends. */
  readonly spooling: Set<Promise<unknown>>
  /** Streams over spools handed out to readers, destroyed if the transaction is aborted. */
  readonly readers: Set<Readable>
  /** The body stream the content arrived on, so it can be discarded once the chain is done. */
  source: Readable | undefined
}

class LazyBody implements MessageBody {
  /** The body: a stream, or a function that opens one on first read (forks read a spool). */
  #source: Readable | (() => Readable) | null
  #transforms: BodyTransform[] = []
  #spool: Spool | null = null
  #spooling: Promise<Spool> | null = null
  readonly #spoolOptions: SpoolOptions
  readonly #content: Content

  constructor(source: Readable | (() => Readable), spoolOptions: SpoolOptions, content: Content) {
    this.#source = source
    this.#spoolOptions = spoolOptions
    this.#content = content
  }

  get spoolOptions(): SpoolOptions {
    return this.#spoolOptions
  }

  transform(transform: BodyTransform): void {
    this.#transforms.push(transform)
  }

  spool(options?: SpoolReadOptions): Promise<SpooledBody> {
    const onChunk = options?.onChunk
    if (this.#transforms.length || !this.#spooling) {
      // Concurrent callers (route splitting) share one spooling run.
      this.#spooling = Spool.from(this.stream(), this.#spoolOptions, onChunk).then(async (spool) => {
        if (this.#content.disposed) {
          await spool.dispose()
          throw new RelayError('ERR_RELAY_BODY_CONSUMED', 'the transaction ended while its body was being spooled')
        }
        this.#content.spools.push(spool)
        this.#spool = spool
        return spool
      })
      const running = this.#spooling.catch(() => {})
      this.#content.spooling.add(running)
      void running.then(() => this.#content.spooling.delete(running))
      return this.#spooling
    }
    // The spool there is (or the one being made) is read back for this caller's onChunk.
    return onChunk ? this.#spooling.then((spool) => readBack(spool, onChunk)) : this.#spooling
  }

  stream(): Readable {
    let source: Readable
    if (this.#spool) source = this.#spool.open()
    else if (this.#source) {
      source = typeof this.#source === 'function' ? this.#source() : this.#source
      this.#source = null
    } else {
      throw new RelayError('ERR_RELAY_BODY_CONSUMED', 'the message body was already read; call body.spool() to read it twice')
    }
    const transforms = this.#transforms
    let out = source
    if (transforms.length) {
      this.#transforms = []
      // Transforms are single-use: after this read, a re-read needs a new spool.
      this.#spool = null
      this.#spooling = null
      out = chain(source, transforms)
    }
    // The content's own source is ended by an abort anyway; other streams are tracked for it.
    if (source !== this.#content.source) {
      const readers = this.#content.readers
      readers.add(out)
      out.once('close', () => readers.delete(out))
    }
    return out
  }
}

async function readBack(spool: SpooledBody, onChunk: (chunk: Buffer) => void): Promise<SpooledBody> {
  for await (const chunk of spool.open()) onChunk(chunk as Buffer)
  return spool
}

/** What a new transaction is made of. */
export interface TransactionInit {
  session: Session
  mailFrom: Envelope['mailFrom']
  id?: string
  /** Follow another transaction's signal (forks); default: a signal of its own, see `abort()`. */
  signal?: AbortSignal | undefined
  state?: Partial<MessageState> | undefined
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
  #content: Content = { spools: [], source: undefined, disposed: false, readers: new Set(), spooling: new Set() }
  #abortHandlers: Array<(reason: unknown) => void> = []
  /** @internal Where the engine running this message announces errors (nested pipelines report there too). */
  events: DeliveryEvents | undefined

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

  /** Why the transaction was aborted (here, or where a fork's or nested transaction's signal comes from); `undefined` if it was not. */
  get abortReason(): unknown {
    if (this.#abortReason !== undefined) return this.#abortReason
    return this.#signal?.aborted ? (this.#signal.reason ?? new Error('transaction aborted')) : undefined
  }

  get aborted(): boolean {
    return this.abortReason !== undefined
  }

  /**
   * Calls `handler` once the transaction is aborted (at once if it was). Cheaper than listening
   * to `signal`, which the engine uses on every message; returns the function that unregisters it.
   */
  onAbort(handler: (reason: unknown) => void): () => void {
    const reason = this.abortReason
    if (reason !== undefined) {
      handler(reason)
      return () => {}
    }
    this.#abortHandlers.push(handler)
    const external = this.#controller ? undefined : this.#signal
    const onSignal = () => this.abort(external!.reason)
    external?.addEventListener('abort', onSignal, { once: true })
    return () => {
      this.#abortHandlers = this.#abortHandlers.filter((h) => h !== handler)
      external?.removeEventListener('abort', onSignal)
    }
  }

  /**
   * Aborts the transaction (the ingress: the client left, or the reply time ran out): its signal
   * fires, the engine stops waiting, and every stream a reader got from the body is destroyed, so
   * a transport stops its transfer before the end (an SMTP upstream never sees the final dot).
   */
  abort(reason: unknown): void {
    if (this.#abortReason !== undefined) return
    this.#abortReason = reason ?? new Error('transaction aborted')
    this.#controller?.abort(this.#abortReason)
    const err = this.#abortReason instanceof Error ? this.#abortReason : new Error(String(this.#abortReason))
    for (const reader of [...this.#content.readers]) reader.destroy(err)
    const source = this.#content.source
    if (source && !source.readableEnded && !source.destroyed) source.destroy(err)
    for (const handler of this.#abortHandlers.splice(0)) handler(this.#abortReason)
  }

  get original(): Envelope {
    return this.#original
  }

  /** Sets the envelope as first received (a nested or redelivered transaction keeps the client's). */
  setOriginal(original: Envelope): void {
    this.#original = original
  }

  get envelope(): Envelope {
    return this.#envelope
  }

  /** Sets the current envelope (the engine only). */
  setEnvelope(envelope: Envelope): void {
    this.#envelope = envelope
  }

  /** Records a recipient as the client sent it (the engine only). */
  addOriginalRecipient(rcpt: Envelope['rcptTo'][number]): void {
    this.#original = { mailFrom: this.#original.mailFrom, rcptTo: [...this.#original.rcptTo, rcpt] }
  }

  /** Attaches the content: the transaction becomes a message. */
  attachContent(headers: HeaderBlock, body: Readable, spoolOptions: SpoolOptions = {}): this {
    this.#headers = headers
    this.#content.source = body
    this.#body = new LazyBody(body, spoolOptions, this.#content)
    return this
  }

  /**
   * Takes over the content of `from` (a nested pipeline's transaction): the same header block and
   * body, pending transforms and spools included. `from` must not be read again.
   */
  takeContent(from: Message): this {
    if (from instanceof MessageImpl && from.#body && from.#headers) {
      this.#headers = from.#headers
      this.#body = from.#body
      // Spools made from here on belong to `from`'s content and go when it is disposed.
      return this
    }
    return this.attachContent(from.headers, from.body.stream())
  }

  /** True once the content is attached (the data phase). */
  get hasContent(): boolean {
    return this.#headers !== null
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
    this.#body = new LazyBody(split.body, this.#body?.spoolOptions ?? {}, this.#content)
  }

  async fork(rcptTo: readonly Address[], options: ForkOptions = {}): Promise<Message> {
    if (!this.#body) throw new RelayError('ERR_RELAY_INVALID_STAGE', 'a message can be forked only in the data phase')
    if (!Array.isArray(rcptTo) || rcptTo.some((r) => typeof r?.address !== 'string')) {
      throw new RelayError('ERR_RELAY_INVALID_STAGE', 'fork() needs an array of addresses')
    }
    const copy = new MessageImpl({
      id: this.id,
      session: this.session,
      mailFrom: this.#original.mailFrom,
      signal: this.signal,
      state: options.state ?? this.state,
    })
    copy.events = this.events
    copy.#original = this.#original
    copy.#envelope = { mailFrom: options.mailFrom === undefined ? this.#envelope.mailFrom : options.mailFrom, rcptTo: [...rcptTo] }
    copy.#headers = this.headers.clone()
    copy.#content = this.#content
    let source: Readable | (() => Readable)
    if (options.takeBody) source = this.#body.stream()
    else {
      const spool = await this.#body.spool()
      source = () => spool.open()
    }
    copy.#body = new LazyBody(source, this.#body.spoolOptions, this.#content)
    return copy
  }

  /** Ends whatever of the original body stream nobody read (the chain is done with it). */
  discardUnread(): void {
    const source = this.#content.source
    if (source && !source.readableEnded && !source.destroyed) source.destroy()
  }

  /** Removes every spool of this message and its forks, and any that completes later. */
  async dispose(): Promise<void> {
    this.#content.disposed = true
    // A run cut short by an abort is removing its temp file: wait for that, so a transaction's
    // files are gone when its outcome is announced. A run whose source ignores the abort does
    // not hold the reply for long; its file goes when it completes (above) or at exit.
    const running = [...this.#content.spooling]
    if (running.length) await settledWithin(Promise.all(running), SPOOL_SETTLE_MS)
    await Promise.all(this.#content.spools.splice(0).map((s) => s.dispose()))
  }
}

/** How long dispose() waits for spooling runs under way to end. */
const SPOOL_SETTLE_MS = 1000

function settledWithin(work: Promise<unknown>, ms: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms).unref()
    void work.then(() => (clearTimeout(timer), resolve()))
  })
}

/** Why `msg` was aborted, or `undefined`: without creating its AbortSignal when it is ours. */
export function abortReasonOf(msg: Message): unknown {
  if (msg instanceof MessageImpl) return msg.abortReason
  return msg.signal.aborted ? (msg.signal.reason ?? new Error('transaction aborted')) : undefined
}
