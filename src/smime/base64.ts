/** Base64 in lines of 76 characters ending in CRLF (RFC 2045 §6.8), whole or streamed. */

/** 57 bytes make one line of 76 characters. */
const LINE_BYTES = 57

/** `bytes` in base64, one line per 57 bytes, each line ending in CRLF. */
export function base64Lines(bytes: Buffer): Buffer {
  const text = bytes.toString('base64')
  const lines = Math.ceil(text.length / 76)
  const out = Buffer.allocUnsafe(text.length + 2 * lines)
  let at = 0
  for (let i = 0; i < text.length; i += 76) {
    at += out.write(text.slice(i, i + 76), at, 'latin1')
    at += out.write('\r\n', at, 'latin1')
  }
  return out
}

/** A stream in base64 lines; holds back at most 56 bytes between chunks. */
export async function* base64Stream(source: AsyncIterable<Buffer>): AsyncIterable<Buffer> {
  let rest: Buffer = Buffer.alloc(0)
  for await (const chunk of source) {
    const data = rest.length ? Buffer.concat([rest, chunk]) : chunk
    const whole = data.length - (data.length % LINE_BYTES)
    rest = Buffer.from(data.subarray(whole))
    if (whole) yield base64Lines(data.subarray(0, whole))
  }
  if (rest.length) yield base64Lines(rest)
}
