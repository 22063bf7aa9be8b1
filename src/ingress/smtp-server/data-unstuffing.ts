/**
 * smtp-server's DATA reader without its per-byte loop. `SMTPStream.prototype._feedDataStream`
 * looks at every byte of every message for a dot at the start of a line (the end of DATA, or a
 * stuffed dot to remove): at 5 MB that loop is the largest single cost left in the relay's
 * profile (about 13% of its CPU). The copy installed here is the same method, line for line,
 * except that `Buffer.indexOf` finds the next line break followed by a dot: the same positions
 * in the same order, so the same bytes end DATA, are unstuffed and are passed on (the smuggling
 * guards around it are untouched; the tests compare both on random input, cut at random).
 *
 * As every smtp-server patch, it is installed only over the exact source it was copied from
 * (see `guard.ts`); another smtp-server version fails closed with ERR_RELAY_INCOMPATIBLE_SERVER.
 */
import { SMTPStream } from 'smtp-server/lib/smtp-stream.js'
import { checkSource } from './guard.js'

/** Whole-source hash of smtp-server 3.21.6's `_feedDataStream` (the same in its ESM and CommonJS builds). */
const FEED_SOURCE = ['03bcdae1bb5bf09b']

const END_SEQUENCE = Buffer.from('\r\n.\r\n')
const DOT_LINE = Buffer.from('.\r\n')
const LF_DOT = Buffer.from('\n.')

type Done = (err?: Error) => void

interface StreamInternals {
  _dataStream: (NodeJS.WritableStream & { writable: boolean; destroyed: boolean }) | null
  _lastBytes: Buffer | false
  _atDataStart: boolean
  _countDataBytes(length: number): void
  _endDataMode(buf: Buffer | false, rest: Buffer, done: Done): void
  _feedDataStream(chunk: Buffer, done: Done): void
}

let installed = false

/** Installs the copy once; throws `ERR_RELAY_INCOMPATIBLE_SERVER` if smtp-server's method is not the code it was copied from. */
export function installFastUnstuffing(): void {
  if (installed) return
  const proto = SMTPStream.prototype as unknown as StreamInternals
  checkSource('SMTPStream.prototype._feedDataStream', proto._feedDataStream, FEED_SOURCE)
  proto._feedDataStream = feedDataStream
  installed = true
}

/** smtp-server 3.21.6's `_feedDataStream`, its seek loop done with indexOf (see the file header). */
function feedDataStream(this: StreamInternals, input: Buffer, done: Done): void {
  // only called in data mode, which always has a stream
  const dataStream = this._dataStream!
  let chunk = input
  let len: number
  let buf: Buffer
  if (this._lastBytes !== false && this._lastBytes.length) {
    chunk = Buffer.concat([this._lastBytes, chunk], this._lastBytes.length + chunk.length)
    this._lastBytes = false
  }
  len = chunk.length
  // The data does not start with the end terminator (see smtp-server: the escape dot of a first
  // line that is a single dot may have been removed from an earlier chunk already).
  if (this._atDataStart && len >= 3 && Buffer.compare(chunk.subarray(0, 3), DOT_LINE) === 0) {
    this._endDataMode(false, chunk.subarray(3), done)
    return
  }
  // an escape dot as the first symbol
  if (this._atDataStart && len >= 2 && chunk[0] === 0x2e && chunk[1] === 0x2e) {
    chunk = chunk.subarray(1)
    len--
    this._atDataStart = false
  }
  // seek for the stream ending: each dot at i in [2, len - 2) that follows a line break
  for (let lf = chunk.indexOf(LF_DOT, 1); lf >= 0 && lf + 1 < len - 2; lf = chunk.indexOf(LF_DOT, lf + 1)) {
    const i = lf + 1
    // if the dot matches end terminator
    if (Buffer.compare(chunk.subarray(i - 2, i + 3), END_SEQUENCE) === 0) {
      // everything before the terminator is message content, including the CRLF that ends the last line
      buf = chunk.subarray(0, i)
      this._countDataBytes(buf.length)
      this._endDataMode(buf, chunk.subarray(i + 3), done)
      return
    }
    // check if the dot is an escape char and remove it
    if (chunk[i + 1] === 0x2e) {
      buf = chunk.subarray(0, i)
      this._lastBytes = false
      this._countDataBytes(buf.length)
      // emit what we already have and continue without the dot
      if (dataStream.writable) dataStream.write(buf)
      const rest = chunk.subarray(i + 1)
      setImmediate(() => this._feedDataStream(rest, done))
      return
    }
  }
  // keep the last bytes
  this._lastBytes = chunk.length < 4 ? chunk : chunk.subarray(chunk.length - 4)
  // if current chunk is longer than the remainder bytes we keep for later emit the available bytes
  if (this._lastBytes.length < chunk.length) {
    buf = chunk.subarray(0, chunk.length - this._lastBytes.length)
    this._countDataBytes(buf.length)
    // write to stream but stop if need to wait for drain
    if (dataStream.writable) {
      const handled = dataStream.write(buf)
      if (!handled && !dataStream.destroyed) {
        // a stream that the application destroys never drains, it only closes
        const onDrain = () => {
          dataStream.removeListener('drain', onDrain)
          dataStream.removeListener('close', onDrain)
          done()
        }
        dataStream.once('drain', onDrain)
        dataStream.once('close', onDrain)
      } else {
        return done()
      }
    } else {
      return done()
    }
  } else {
    // nothing to emit, continue with the input stream
    return done()
  }
}
