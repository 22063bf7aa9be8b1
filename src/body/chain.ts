/** Runs a stream through transforms with `stream.pipeline` semantics: errors travel both ways. */
import { PassThrough, pipeline, type Readable } from 'node:stream'
import type { BodyTransform } from '../types.js'

// Node's typings have no overload for a spread of mixed streams and generator functions.
const pipe = pipeline as unknown as (streams: readonly unknown[], callback: (err: Error | null) => void) => unknown

/** `source` through each transform in turn; destroying the result destroys the source. */
export function chain(source: Readable, transforms: readonly BodyTransform[]): Readable {
  if (!transforms.length) return source
  const out = new PassThrough()
  pipe([source, ...transforms, out], () => {})
  return out
}
