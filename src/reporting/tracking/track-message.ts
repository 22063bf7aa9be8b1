/**
 * Tracking for a whole message, as a body transform for `msg.rewrite()`: the message streams
 * through `@zone-eu/mailsplit`'s Splitter, every boundary, header block and part that is not body
 * text comes out as the exact bytes that went in, and each body text part (text/html, and
 * text/plain when asked; not an attachment; only inside multipart/mixed, /alternative and
 * /related, so never inside a signed or encrypted structure or an attached message) is held
 * whole, up to `maxPartSize`, and given to {@link rewriteMimePart}. Link indices run on across the
 * parts of a message; the open pixel goes into the first HTML part only. A part that had to
 * become quoted-printable gets its Content-Transfer-Encoding header changed; for a single-part
 * message that header is the message's own, which `msg.rewrite()` re-reads.
 *
 * Memory: one body text part at a time (a larger one passes through untouched), never the
 * attachments.
 */
import type { Writable } from 'node:stream'
import type { MessageChunk, MimeNode, SplitterChunk } from '@zone-eu/mailsplit'
import type { RewriteHtmlOptions } from './rewrite-html.js'
import { type MimePartResult, rewriteMimePart } from './rewrite-part.js'

/**
 * Options of {@link trackMessage}.
 *
 * @category Reporting
 */
export interface TrackMessageOptions extends RewriteHtmlOptions {
  /** Track `https?://` URLs in text/plain body parts too. Default false. */
  readonly text?: boolean
  /** Largest body text part held for rewriting, in bytes; larger ones pass untouched. Default 4 MiB. */
  readonly maxPartSize?: number
  /** Told about every body text part given to {@link rewriteMimePart} (links with message-wide indices). */
  readonly onPart?: (result: MimePartResult, node: MimeNode) => void
}

const CONTAINERS = new Set(['mixed', 'alternative', 'related'])

/**
 * Creates the whole-message transform.
 *
 * @example
 * ```ts
 * await msg.rewrite(trackMessage({
 *   rewrite: ({ url, index }) => `https://t.example.com/c/${signToken({ messageId: msg.id, recipient, link: index, url }, keys)}`,
 *   pixel: `https://t.example.com/o/${signToken({ messageId: msg.id, recipient }, keys)}`,
 *   onPart: (part) => part.notes.forEach((note) => log.info(note)),
 * }))
 * ```
 *
 * @category Reporting
 */
export function trackMessage(options: TrackMessageOptions) {
  const limit = options.maxPartSize ?? 4 * 1024 * 1024
  return async function* tracker(source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    const { Splitter } = await import('@zone-eu/mailsplit')
    const splitter = new Splitter()
    // The splitter's typings narrow its stream events; it is a Writable all the same.
    const feeding = feed(source, splitter as unknown as Writable)
    const chunks = splitter[Symbol.asyncIterator]() as AsyncIterator<SplitterChunk>
    let offered = 0
    let pixel = options.pixel
    let finished = false
    try {
      let next = await chunks.next()
      while (!next.done) {
        const chunk = next.value
        next = await chunks.next()
        if (chunk.type !== 'node') {
          if (chunk.value?.length) yield chunk.value
          continue
        }
        if (!isBodyText(chunk, options.text === true)) {
          yield chunk.getHeaders()
          continue
        }
        const body: Buffer[] = []
        let size = 0
        let passing = false
        for (; !next.done && next.value.type === 'body' && next.value.node === chunk; next = await chunks.next()) {
          const value = (next.value as MessageChunk).value
          if (passing) {
            yield value
            continue
          }
          body.push(value)
          size += value.length
          if (size > limit) {
            passing = true
            yield chunk.getHeaders()
            yield* body
          }
        }
        if (passing) continue
        const base = offered
        const result = rewriteMimePart(
          Buffer.concat(body),
          { contentType: chunk.contentType || 'text/plain', transferEncoding: chunk.encoding, charset: chunk.charset },
          {
            ...options,
            ...(pixel !== undefined && chunk.contentType === 'text/html' ? { pixel } : { pixel: undefined }),
            rewrite: (link) => options.rewrite({ ...link, index: offered++ }),
          },
        )
        if (result.pixel) pixel = undefined
        if (result.encodingChanged && chunk.headers) chunk.headers.update('Content-Transfer-Encoding', result.transferEncoding)
        options.onPart?.({ ...result, links: result.links.map((l) => ({ ...l, index: base + l.index })) }, chunk)
        yield chunk.getHeaders()
        if (result.body.length) yield result.body
      }
      finished = true
    } finally {
      if (!finished) splitter.destroy()
    }
    await feeding
  }
}

/** A body text part: text/html (or text/plain), not an attachment, only inside mixed/alternative/related. */
function isBodyText(node: MimeNode, text: boolean): boolean {
  if (node.multipart || node.disposition === 'attachment' || node.filename) return false
  if (node.contentType !== 'text/html' && !(text && node.contentType === 'text/plain' && !node.delSp)) return false
  for (let parent = node.parentNode; parent; parent = parent.parentNode) if (!CONTAINERS.has(parent.multipart || '')) return false
  return true
}

/** Writes `source` into `target`, waiting when it is full; an error destroys `target`. */
async function feed(source: AsyncIterable<Buffer>, target: Writable): Promise<void> {
  try {
    for await (const chunk of source) {
      if (target.destroyed) return
      if (!target.write(chunk)) {
        await new Promise<void>((resolve) => {
          const done = () => {
            target.off('drain', done).off('close', done)
            resolve()
          }
          target.on('drain', done).on('close', done)
        })
      }
    }
    target.end()
  } catch (err) {
    target.destroy(err as Error)
  }
}
