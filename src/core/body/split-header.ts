/**
 * Finding the end of a message's header section. The section ends at the first empty line, or
 * at the first line that is neither a header field nor a continuation (then the message has no
 * separator and that line starts the body), as Postfix's cleanup does.
 */
import { Readable } from 'node:stream'
import { SmtpError } from '../errors.js'

/** Where the header section ends: `[0, headEnd)` fields, `[headEnd, sepEnd)` the empty line. */
export interface HeaderEnd {
  headEnd: number
  sepEnd: number
}

/** The reply for a header section over the limit. */
export function headerTooLarge(limit: number): SmtpError {
  return new SmtpError(552, '5.3.4', 'Message header section too large', { reason: `over ${limit} bytes` })
}

/** Scans a growing buffer (the message from its first byte) line by line, resuming where it stopped. */
export class HeaderScanner {
  #lineStart = 0

  /** The end of the section if `buf` already contains it. */
  scan(buf: Buffer): HeaderEnd | undefined {
    for (;;) {
      const start = this.#lineStart
      const nl = buf.indexOf(0x0a, start)
      if (nl < 0) return undefined
      const length = nl + 1 - start
      if (length === 1 || (length === 2 && buf[start] === 0x0d)) return { headEnd: start, sepEnd: nl + 1 }
      const continuation = start > 0 && (buf[start] === 0x20 || buf[start] === 0x09)
      if (!continuation && !isField(buf, start, nl)) return { headEnd: start, sepEnd: start }
      this.#lineStart = nl + 1
    }
  }

  /** The end of the section once the whole message is in `buf` and `scan` found none. */
  end(buf: Buffer): HeaderEnd {
    // A last line without a line break belongs to the section if it looks like a field.
    const start = this.#lineStart
    const tail = buf.length > start && isField(buf, start, buf.length)
    return tail ? { headEnd: buf.length, sepEnd: buf.length } : { headEnd: start, sepEnd: start }
  }
}

/** A message split into its header section and a stream of the rest. */
export interface SplitMessage {
  /** The header fields, each with its line break. */
  head: Buffer
  /** The empty line that ended the section, or an empty buffer. */
  separator: Buffer
  /** Everything after the section, streamed (the source itself unless it had ended). */
  body: Readable
}

/**
 * Reads `source` up to the end of its header section; the bytes read past it are pushed back
 * (`unshift`), so the body is the source stream itself. Rejects with `552 5.3.4` beyond
 * `maxHeaderSize`.
 */
export function splitHeader(source: Readable, maxHeaderSize: number): Promise<SplitMessage> {
  return new Promise((resolve, reject) => {
    const scanner = new HeaderScanner()
    let buf: Buffer = Buffer.alloc(0)

    const finish = ({ headEnd, sepEnd }: HeaderEnd, ended: boolean) => {
      source.off('readable', onReadable).off('end', onEnd).off('error', onError)
      const rest = buf.subarray(sepEnd)
      let body = source
      if (ended) body = Readable.from(rest.length ? [rest] : [], { objectMode: false })
      else if (rest.length) source.unshift(rest)
      resolve({ head: buf.subarray(0, headEnd), separator: buf.subarray(headEnd, sepEnd), body })
    }
    const onReadable = () => {
      let chunk: Buffer | null
      while ((chunk = source.read() as Buffer | null) !== null) {
        buf = buf.length ? Buffer.concat([buf, chunk]) : chunk
        const found = scanner.scan(buf)
        if (found) return finish(found, false)
        if (buf.length > maxHeaderSize) {
          source.off('readable', onReadable).off('end', onEnd).off('error', onError)
          return reject(headerTooLarge(maxHeaderSize))
        }
      }
    }
    const onEnd = () => finish(scanner.end(buf), true)
    const onError = (err: Error) => {
      source.off('readable', onReadable).off('end', onEnd)
      reject(err)
    }
    source.on('readable', onReadable).once('end', onEnd).once('error', onError)
  })
}

/** `name:` with a name of printable US-ASCII (RFC 5322 §2.2), white space allowed before the colon. */
function isField(buf: Buffer, start: number, end: number): boolean {
  let i = start
  while (i < end && buf[i]! > 0x20 && buf[i]! < 0x7f && buf[i] !== 0x3a) i++
  if (i === start) return false
  while (i < end && (buf[i] === 0x20 || buf[i] === 0x09)) i++
  return buf[i] === 0x3a
}
