import { once } from 'node:events'
import DataStream from 'nodemailer/lib/smtp-connection/data-stream.js'
import { describe, expect, it } from 'vitest'
import { installFastDotStuffing } from '../../src/transports/dot-stuffing.js'

type TransformMethod = (chunk: Buffer, encoding: BufferEncoding, done: () => void) => void
const proto = DataStream.prototype as unknown as { _transform: TransformMethod }

/** What a DataStream with `transform` writes for `chunks`, and its byte counters. */
async function encode(transform: TransformMethod, chunks: readonly Buffer[]) {
  const saved = proto._transform
  proto._transform = transform
  try {
    const stream = new DataStream()
    const out: Buffer[] = []
    stream.on('data', (d: Buffer) => out.push(d))
    for (const chunk of chunks) stream.write(chunk)
    stream.end()
    await once(stream, 'end')
    return { bytes: Buffer.concat(out).toString('latin1'), inBytes: stream.inByteCount, outBytes: stream.outByteCount }
  } finally {
    proto._transform = saved
  }
}

describe('fast dot-stuffing for nodemailer', () => {
  // Taken before installing: nodemailer's own loop, the reference.
  const original = proto._transform

  it('installs on the nodemailer version relaychain declares', () => {
    expect(installFastDotStuffing()).toBe(true)
    expect(proto._transform).not.toBe(original)
  })

  it('writes exactly what nodemailer writes, bare CR and LF and dots at line starts included, however the input is cut', async () => {
    installFastDotStuffing()
    const fast = proto._transform
    const pieces = ['\r', '\n', '\r\n', '\r\n', '.', '..', 'a', 'xyz', '\r\n.', '\r\n.\r\n', '\n.', '\r.']
    let seed = 3
    const random = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff
    for (let n = 0; n < 2000; n++) {
      const body = Buffer.from(Array.from({ length: Math.floor(random() * 25) }, () => pieces[Math.floor(random() * pieces.length)]).join(''))
      const chunks: Buffer[] = []
      for (let at = 0; at < body.length; ) {
        const size = 1 + Math.floor(random() * (n % 2 ? 5 : 60))
        chunks.push(body.subarray(at, at + size))
        at += size
      }
      expect([body.toString('latin1'), await encode(fast, chunks)]).toEqual([body.toString('latin1'), await encode(original, chunks)])
    }
  })

  it('doubles every dot that starts a line of a large CRLF body, and ends it with CRLF.CRLF', async () => {
    installFastDotStuffing()
    const body = Buffer.from(`.first\r\n${'x'.repeat(76)}\r\n.dot\r\n..two\r\n`.repeat(5000))
    const chunks = Array.from({ length: Math.ceil(body.length / 65536) }, (_, i) => body.subarray(i * 65536, (i + 1) * 65536))
    const fast = await encode(proto._transform, chunks)
    expect(fast).toEqual(await encode(original, chunks))
    expect(fast.bytes.endsWith('\r\n...two\r\n.\r\n')).toBe(true)
  })
})
