/**
 * The one stream every incoming message passes through before the chain sees it. In a single
 * pass it enforces the size limit (`552 5.3.4`), the bare line-ending policy (`550 5.5.2`, the
 * SMTP smuggling defence, or strict normalisation to CRLF), the header-size limit and a header
 * section that does not start with a continuation line (`550 5.6.0`), and it
 * separates the header section: `header` resolves with it, and the stream itself carries on with
 * the body. One stream instead of a guard plus a splitter keeps the per-message cost low.
 */
import { Transform, type TransformCallback } from 'node:stream'
import { type BareLineEndingPolicy, hasBareLineEnding, LF_BYTE, normalizeChunk } from '../../core/body/line-endings.js'
import { HeaderScanner, headerTooLarge } from '../../core/body/split-header.js'
import { reject, SmtpError } from '../../core/errors.js'

/** Limits and policy of an {@link IngressStream}. */
export interface IngressOptions {
  policy: BareLineEndingPolicy
  maxSize: number
  maxHeaderSize: number
}

/** The header section of an incoming message. */
export interface IngressHeader {
  head: Buffer
  separator: Buffer
}

const EMPTY: Buffer = Buffer.alloc(0)
const leadingContinuation = () => new SmtpError(550, '5.6.0', 'Message refused: the header section starts with a continuation line')

/** Checks and splits a message as it streams in; see the file header. */
export class IngressStream extends Transform {
  /** Resolves once the header section went by; rejects if the stream fails first. */
  readonly header: Promise<IngressHeader>
  /** The refusal for the client, once the stream refused the message. */
  failure: SmtpError | undefined
  readonly #options: IngressOptions
  #size = 0
  #prevCR = false
  #scanner: HeaderScanner | undefined = new HeaderScanner()
  #held: Buffer = EMPTY
  #resolve!: (header: IngressHeader) => void
  #reject!: (err: Error) => void

  constructor(options: IngressOptions) {
    // Socket reads arrive in chunks of up to 64 KiB; a smaller buffer would pause on each one.
    super({ highWaterMark: 64 * 1024 })
    this.#options = options
    this.header = new Promise((resolve, rejectHeader) => {
      this.#resolve = resolve
      this.#reject = rejectHeader
    })
    this.header.catch(() => {})
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#size += chunk.length
    if (this.#size > this.#options.maxSize) return this.#refuse(reject.tooBig(this.#options.maxSize), callback)
    if (!chunk.length) return callback()
    // A first line that continues a field that is not there: downstream would read the fields
    // below it as body, so the message would arrive without From, To or Subject.
    if (this.#size === chunk.length && (chunk[0] === 0x20 || chunk[0] === 0x09)) return this.#refuse(leadingContinuation(), callback)
    const bare = hasBareLineEnding(chunk, this.#prevCR)
    if (bare && this.#options.policy !== 'normalize') return this.#refuse(reject.bareLineEnding(), callback)
    const data = bare ? normalizeChunk(chunk, this.#prevCR) : chunk
    this.#prevCR = chunk[chunk.length - 1] === 0x0d
    if (!this.#scanner) return callback(null, data)
    this.#held = this.#held.length ? Buffer.concat([this.#held, data]) : data
    const found = this.#scanner.scan(this.#held)
    if (found) return callback(null, this.#release(found.headEnd, found.sepEnd))
    if (this.#held.length > this.#options.maxHeaderSize) return this.#refuse(headerTooLarge(this.#options.maxHeaderSize), callback)
    callback()
  }

  override _flush(callback: TransformCallback): void {
    if (this.#prevCR) {
      if (this.#options.policy !== 'normalize') return this.#refuse(reject.bareLineEnding(), callback)
      if (!this.#scanner) return callback(null, LF_BYTE)
      this.#held = Buffer.concat([this.#held, LF_BYTE])
    }
    if (!this.#scanner) return callback()
    const { headEnd, sepEnd } = this.#scanner.scan(this.#held) ?? this.#scanner.end(this.#held)
    callback(null, this.#release(headEnd, sepEnd))
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    // Only a stream that dies before the header section went by leaves `header` pending.
    if (this.#scanner) this.#reject(err ?? new Error('message stream closed before its header section'))
    callback(err)
  }

  /** Resolves the header section; returns the body bytes held with it. */
  #release(headEnd: number, sepEnd: number): Buffer | undefined {
    const held = this.#held
    this.#scanner = undefined
    this.#held = EMPTY
    this.#resolve({ head: held.subarray(0, headEnd), separator: held.subarray(headEnd, sepEnd) })
    return sepEnd < held.length ? held.subarray(sepEnd) : undefined
  }

  #refuse(err: SmtpError, callback: TransformCallback): void {
    this.failure ??= err
    callback(err)
  }
}
