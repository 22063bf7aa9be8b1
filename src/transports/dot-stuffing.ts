/**
 * A faster data phase for nodemailer: its `DataStream` (every message the SMTP transport sends
 * passes through it) dot-stuffs lines and rewrites bare CR and LF to CRLF with a JavaScript loop
 * over every byte, which a CPU profile of a 5 MB relay shows as the largest single cost (about 45%
 * of the relay's CPU). Nearly every chunk has CRLF line endings only, and then the one thing to do
 * is to double each dot that starts a line: `Buffer.indexOf` finds those. A chunk with a bare CR
 * or LF (rare: our writers normalise them) still goes through nodemailer's own loop, so the
 * output is the same byte for byte (the tests compare both on random input).
 *
 * The replacement is installed on `DataStream.prototype` when the first SMTP transport is
 * created, and only if nodemailer's `_transform` is still exactly the code it was written against
 * (its whole source, as the smtp-server patches check theirs): with another nodemailer version, or one
 * a bundler rewrote, nothing is patched and nodemailer's own loop runs, slower but the same.
 */
import DataStream from 'nodemailer/lib/smtp-connection/data-stream.js'
import { hasBareLineEnding } from '../core/body/line-endings.js'
import { sourceHash } from '../shared/source-hash.js'

/** Whole-source hash of nodemailer 10.6.1's `DataStream.prototype._transform` (ESM and CommonJS builds alike). */
const TRANSFORM_SOURCE = ['e4bb0d3fc777fbcf']

const CR = 0x0d
const LF = 0x0a
const DOT = 0x2e
const DOT_BYTE = Buffer.from('.')
const LF_DOT = Buffer.from('\n.')

type Callback = (error?: Error | null) => void

interface DataStreamInternals {
  inByteCount: number
  outByteCount: number
  /** The last byte of the previous chunk; `false` before the first. */
  lastByte: number | false
  push(chunk: Buffer): boolean
}

type TransformMethod = (this: DataStreamInternals, chunk: Buffer | string, encoding: BufferEncoding, done: Callback) => void

let state: 'unknown' | 'installed' | 'skipped' = 'unknown'

/**
 * Installs the fast path once; returns whether it is installed (false: nodemailer's `_transform`
 * is not the code it was written against, and stays as it is).
 */
export function installFastDotStuffing(): boolean {
  if (state !== 'unknown') return state === 'installed'
  const proto = DataStream.prototype as unknown as { _transform: TransformMethod }
  const original = proto._transform
  if (!TRANSFORM_SOURCE.includes(sourceHash(original))) {
    state = 'skipped'
    return false
  }
  proto._transform = function _transform(this: DataStreamInternals, input: Buffer | string, encoding: BufferEncoding, done: Callback): void {
    if (!input?.length) return done()
    const chunk = typeof input === 'string' ? Buffer.from(input) : input
    const last = this.lastByte
    if (hasBareLineEnding(chunk, last === CR)) return original.call(this, chunk, encoding, done)
    this.inByteCount += chunk.length
    // Only dots at the start of a line remain to be doubled (a CR here is always followed by LF).
    let parts: Buffer[] | undefined
    let from = 0
    if (chunk[0] === DOT && (last === LF || last === false)) parts = [DOT_BYTE]
    for (let i = chunk.indexOf(LF_DOT); i >= 0; i = chunk.indexOf(LF_DOT, i + 2)) {
      parts ??= []
      parts.push(chunk.subarray(from, i + 1), DOT_BYTE)
      from = i + 1
    }
    let out = chunk
    if (parts) {
      parts.push(chunk.subarray(from))
      out = Buffer.concat(parts)
    }
    this.outByteCount += out.length
    this.push(out)
    this.lastByte = chunk[chunk.length - 1]!
    done()
  }
  state = 'installed'
  return true
}
