/**
 * Separates the header section from the body of a streamed message, reading no further than the
 * end of the header section. The section ends at the first empty line, or at the first line
 * that is neither a header field nor a continuation (then the message has no separator and that
 * line starts the body), as Postfix's cleanup does.
 */
import { PassThrough, pipeline, type Readable } from 'node:stream'
import { SmtpError } from '../errors.js'

/** A message split into its header section and a stream of the rest. */
export interface SplitMessage {
  /** The header fields, each with its line break. */
  head: Buffer
  /** The empty line that ended the section, or an empty buffer. */
  separator: Buffer
  /** Everything after the section, streamed. */
  body: Readable
}

const EMPTY = Buffer.alloc(0)

/** Resolves once the header section is read; rejects with `552 5.3.4` beyond `maxHeaderSize`. */
export function splitHeader(source: Readable, maxHeaderSize: number): Promise<SplitMessage> {
  return new Promise((resolve, reject) => {
    let buf: Buffer = EMPTY
    let lineStart = 0

    const finish = (headEnd: number, sepEnd: number, ended: boolean) => {
      source.off('readable', onReadable).off('end', onEnd).off('error', onError)
      const body = new PassThrough()
      const rest = buf.subarray(sepEnd)
      if (ended) body.end(rest)
      else {
        if (rest.length) body.write(rest)
        pipeline(source, body, () => {})
      }
      resolve({ head: buf.subarray(0, headEnd), separator: buf.subarray(headEnd, sepEnd), body })
    }

    /** Scans complete lines; returns true once the section ended. */
    const scan = (): boolean => {
      for (;;) {
        const nl = buf.indexOf(0x0a, lineStart)
        if (nl < 0) return false
        const length = nl + 1 - lineStart
        if (length === 1 || (length === 2 && buf[lineStart] === 0x0d)) {
          finish(lineStart, nl + 1, false)
          return true
        }
        const continuation = lineStart > 0 && (buf[lineStart] === 0x20 || buf[lineStart] === 0x09)
        if (!continuation && !isField(buf, lineStart, nl)) {
          finish(lineStart, lineStart, false)
          return true
        }
        lineStart = nl + 1
      }
    }

    const onReadable = () => {
      let chunk: Buffer | null
      while ((chunk = source.read() as Buffer | null) !== null) {
        buf = buf.length ? Buffer.concat([buf, chunk]) : chunk
        if (scan()) return
        if (buf.length > maxHeaderSize) {
          source.off('readable', onReadable).off('end', onEnd).off('error', onError)
          reject(new SmtpError(552, '5.3.4', 'Message header section too large', { reason: `over ${maxHeaderSize} bytes` }))
          return
        }
      }
    }
    const onEnd = () => {
      // A last line without a line break: part of the header section if it looks like a field.
      const tail = buf.length > lineStart && isField(buf, lineStart, buf.length)
      finish(tail ? buf.length : lineStart, tail ? buf.length : lineStart, true)
    }
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
