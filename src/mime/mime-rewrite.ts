/**
 * Streaming MIME edits on `@zone-eu/mailsplit`'s Splitter: every part that is not edited, and
 * every boundary, preamble and epilogue, comes out as the exact bytes that went in (attachments
 * byte-identical); an edited part is decoded, passed through its transforms and re-encoded with
 * real backpressure (mailsplit's own Rewriter waits in 100 ms steps when the consumer is slow,
 * and ends re-encoded base64 with a bare LF). Optionally a part is added at the end of a root
 * multipart/mixed that had no part to edit.
 */
import { PassThrough, type Readable, type Transform, type Writable } from 'node:stream'
import type { MessageChunk, MimeNode, SplitterChunk } from '@zone-eu/mailsplit'
import type iconvLite from 'iconv-lite'
import { SmtpError } from '../core/errors.js'
import { editorTransform, type PartEditor, type PartPlan } from './disclaimer-part.js'

/** What to do with a message. */
export interface MimeEdits {
  /** The plan for a leaf part, or `undefined` if the part is not a candidate at all. */
  plan(node: MimeNode): PartPlan | undefined
  /** A part (boundary line excluded) to add to a root multipart/mixed in which no part was a candidate. */
  fallbackPart?: Buffer
}

const LF = 0x0a
const CRLF = Buffer.from('\r\n')

let loading: Promise<[typeof import('@zone-eu/mailsplit'), typeof import('iconv-lite')]> | undefined
const libs = () => (loading ??= Promise.all([import('@zone-eu/mailsplit'), import('iconv-lite').then((m) => m.default)]))

/** A whole-message transform (for `msg.rewrite`) applying `edits`. */
export function mimeRewrite(edits: MimeEdits) {
  return async function* mimeRewriter(source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    const [{ Splitter }, iconv] = await libs()
    const splitter = new Splitter()
    // The splitter's typings narrow the stream events; it is a Writable all the same.
    void feed(source, splitter as unknown as Writable)
    const parts = splitter[Symbol.asyncIterator]() as AsyncIterator<SplitterChunk>
    let root: MimeNode | undefined
    let candidates = 0
    let added = false
    let finished = false
    try {
      let next = await parts.next()
      while (!next.done) {
        const chunk = next.value
        if (chunk.type === 'node') {
          root ??= chunk
          const plan = chunk.multipart ? undefined : edits.plan(chunk)
          if (plan) candidates++
          if (plan?.kind === 'raw') {
            yield chunk.getHeaders()
            next = yield* editRaw(parts, chunk, plan.edit(chunk.root))
            continue
          }
          if (plan?.kind === 'codec') {
            const transforms = codecTransforms(chunk, plan, iconv)
            yield chunk.getHeaders()
            next = yield* editEncoded(parts, chunk, transforms)
            continue
          }
          yield chunk.getHeaders()
        } else if (chunk.value?.length) {
          const at = !added && !candidates && edits.fallbackPart && root?.multipart === 'mixed' ? closingDelimiter(chunk, root) : -1
          if (at >= 0) {
            added = true
            yield Buffer.concat([
              chunk.value.subarray(0, at),
              Buffer.from(`--${root!._boundary}\r\n`),
              edits.fallbackPart!,
              CRLF,
              chunk.value.subarray(at),
            ])
          } else yield chunk.value
        }
        next = await parts.next()
      }
      finished = true
    } catch (err) {
      if ((err as { code?: string }).code === 'EMAXLEN') {
        throw new SmtpError(554, '5.6.0', 'Message structure not supported', { reason: (err as Error).message, cause: err })
      }
      throw err
    } finally {
      if (!finished) splitter.destroy()
    }
  }
}

/** Writes `source` into `target` with backpressure (cheaper than a `pipeline()` per message). */
function feed(source: AsyncIterable<Buffer>, target: Writable): Promise<void> {
  return (async () => {
    for await (const chunk of source) {
      if (target.destroyed) return // the reader is gone: stop reading
      if (!target.write(chunk)) await drained(target)
    }
    target.end()
  })().catch((err: Error) => void target.destroy(err))
}

/** The body chunks of `node`, and whatever comes after them. */
async function* bodyOf(parts: AsyncIterator<SplitterChunk>, node: MimeNode, after: { next?: IteratorResult<SplitterChunk> }): AsyncGenerator<Buffer> {
  for (;;) {
    const next = await parts.next()
    if (next.done || next.value.type !== 'body' || next.value.node !== node) {
      after.next = next
      return
    }
    yield (next.value as MessageChunk).value
  }
}

/** A part whose transfer encoding stays: its bytes go through the editor as they are, no stream needed. */
async function* editRaw(
  parts: AsyncIterator<SplitterChunk>,
  node: MimeNode,
  editor: PartEditor,
): AsyncGenerator<Buffer, IteratorResult<SplitterChunk>> {
  const after: { next?: IteratorResult<SplitterChunk> } = {}
  for await (const chunk of bodyOf(parts, node, after)) {
    const out = editor.write(chunk)
    if (out.length) yield out
  }
  const rest = editor.end()
  if (rest.length) yield rest
  return after.next!
}

/** Sets the part's new headers (charset, transfer encoding) and returns its transforms. */
function codecTransforms(node: MimeNode, plan: Extract<PartPlan, { kind: 'codec' }>, iconv: typeof iconvLite): Transform[] {
  const transforms: Transform[] = [node.getDecoder()]
  if (plan.transcode) transforms.push(iconv.decodeStream(plan.transcode) as Transform, iconv.encodeStream('utf-8') as Transform)
  if (plan.toUtf8) node.setCharset('utf-8')
  transforms.push(editorTransform(plan.edit()), node.getEncoder(plan.encoding))
  return transforms
}

/**
 * Streams the body chunks of `node` through decoding, editing and encoding transforms, with
 * backpressure; returns the first chunk after the body. A root part (a single-part message)
 * still ends with a line break.
 */
async function* editEncoded(
  parts: AsyncIterator<SplitterChunk>,
  node: MimeNode,
  transforms: Transform[],
): AsyncGenerator<Buffer, IteratorResult<SplitterChunk>> {
  const input = new PassThrough()
  const streams = [input, ...transforms]
  // Piped, each error ending the output: cheaper than a pipeline() per part.
  const output = transforms[transforms.length - 1]!
  transforms.reduce<Readable>((from, to) => from.on('error', (err: Error) => output.destroy(err)).pipe(to), input)
  const after: { next?: IteratorResult<SplitterChunk> } = {}
  const feeding = feed(bodyOf(parts, node, after), input)
  let last = LF
  let finished = false
  try {
    for await (const data of output as AsyncIterable<Buffer>) {
      if (data.length) last = data[data.length - 1]!
      yield data
    }
    finished = true
  } finally {
    if (!finished) for (const stream of streams) stream.destroy()
  }
  await feeding
  if (node.root && last !== LF) yield CRLF
  return after.next!
}

function drained(stream: Writable): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      stream.off('drain', done).off('close', done)
      resolve()
    }
    stream.on('drain', done).on('close', done)
  })
}

/** Where the root's closing delimiter line starts in a data chunk, or -1. */
function closingDelimiter(chunk: MessageChunk, root: MimeNode): number {
  if (!root._boundary) return -1
  const delimiter = Buffer.from(`--${root._boundary}--`)
  for (let at = chunk.value.indexOf(delimiter); at >= 0; at = chunk.value.indexOf(delimiter, at + 1)) {
    if (at === 0 || chunk.value[at - 1] === LF) return at
  }
  return -1
}
