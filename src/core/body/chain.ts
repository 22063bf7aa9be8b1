/**
 * Runs a stream through transforms, errors travelling both ways (a failing source fails the
 * result; destroying the result stops the source). Done by hand rather than with
 * `stream.pipeline()`, which costs an AbortController and its error object per call: on small
 * messages that was most of a body transform's price.
 */
import { Readable, type Transform } from 'node:stream'
import type { BodyTransform } from '../types.js'

/**
 * `source` through each transform in turn; destroying the result destroys the source. For
 * transports and stages that read a message through a transform of their own.
 *
 * @example
 * ```ts
 * for await (const chunk of chain(msg.stream(), [toCrlf()])) await file.write(chunk)
 * ```
 *
 * @category Core
 */
export function chain(source: Readable, transforms: readonly BodyTransform[]): Readable {
  let current = source
  for (const transform of transforms) {
    // A generator reads `current` itself: its errors surface in the loop, and returning early
    // (the result destroyed) ends the loop, which destroys `current`.
    current = typeof transform === 'function' ? Readable.from(transform(current), { objectMode: false }) : link(current, transform)
  }
  return current
}

function link(from: Readable, to: Transform): Readable {
  from.once('error', (err) => to.destroy(err))
  to.once('close', () => {
    if (!from.readableEnded) from.destroy()
  })
  return from.pipe(to)
}
