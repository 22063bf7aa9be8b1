/**
 * The MIME entity an S/MIME layer signs or encrypts: the message's Content-* header fields and
 * its body. The top-level fields that are not about content (From, To, Subject, Date,
 * Message-ID, Received …) stay outside, where relays and mail clients read them.
 */
import { hasBareLineEnding, LF_BYTE, normalizeChunk } from '../core/body/line-endings.js'
import type { Message } from '../core/types.js'

const CRLF = Buffer.from('\r\n')

/** What an S/MIME layer makes of the entity: the new body, streamed. */
export type Wrap = (entity: AsyncIterable<Buffer>) => AsyncIterable<Buffer>

/**
 * Replaces the message's content by `wrap` of its entity: the Content-* fields leave the header
 * section and go, with the empty line that ends them, in front of the body, every line ending
 * made CRLF (the canonical form a verifier computes, RFC 8551 §3.1.1); `fields` (the layer's own
 * Content-Type …) take their place, after a `MIME-Version` if there was none.
 */
export function wrapEntity(msg: Message, fields: ReadonlyArray<readonly [string, string]>, wrap: Wrap): void {
  const content = msg.headers.fields().filter((f) => /^content-/i.test(f.name))
  const head = Buffer.concat([...content.map((f) => f.raw), CRLF])
  for (const name of new Set(content.map((f) => f.name.toLowerCase()))) msg.headers.remove(name)
  if (!msg.headers.has('mime-version')) msg.headers.append('MIME-Version', '1.0')
  for (const [name, value] of fields) msg.headers.append(name, value)
  // One transform for the whole layer: each stream stage costs more than the work on a small message.
  msg.body.transform((body) => wrap(canonical(head, body)))
}

/** `head`, then `body`, with every bare CR or LF made CRLF. */
async function* canonical(head: Buffer, body: AsyncIterable<Buffer>): AsyncIterable<Buffer> {
  let prevCR = false
  const step = (chunk: Buffer) => {
    const out = hasBareLineEnding(chunk, prevCR) ? normalizeChunk(chunk, prevCR) : chunk
    prevCR = chunk[chunk.length - 1] === 0x0d
    return out
  }
  yield step(head)
  for await (const chunk of body) if (chunk.length) yield step(chunk)
  if (prevCR) yield LF_BYTE
}
