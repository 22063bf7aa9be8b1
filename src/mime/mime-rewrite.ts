/**
 * Streaming MIME edits on `@zone-eu/mailsplit`'s Splitter: every part that is not edited, and
 * every boundary, preamble and epilogue, comes out as the exact bytes that went in (attachments
 * byte-identical); an edited part is decoded, passed through its transforms and re-encoded with
 * real backpressure (mailsplit's own Rewriter waits in 100 ms steps when the consumer is slow,
 * and ends re-encoded base64 with a bare LF). Optionally a part is added at the end of a root
 * multipart/mixed that had no part to edit.
 */
import { PassThrough, pipeline, type Readable, type Transform } from 'node:stream'
import type { MessageChunk, MimeNode, SplitterChunk } from '@zone-eu/mailsplit'
import type iconvLite from 'iconv-lite'
import { chain } from '../body/chain.js'
import { SmtpError } from '../errors.js'
import type { PartPlan } from './disclaimer-part.js'

/** What to do with a message. */
export interface MimeEdits {
  /** The plan for a leaf part, or `undefined` if the part is not a candidate at all. */
  plan(node: MimeNode): PartPlan | undefined
  /** A part (boundary line excluded) to add to a root multipart/mixed in which no part was a candidate. */
  fallbackPart?: Buffer
}

const LF = 0x0a
const CRLF = Buffer.from('\r\n')

/** A whole-message transform (for `msg.rewrite`) applying `edits`. */
export function mimeRewrite(edits: MimeEdits) {
  return async function* mimeRewriter(source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    const [{ Splitter }, { default: iconv }] = await Promise.all([import('@zone-eu/mailsplit'), import('iconv-lite')])
    const splitter = new Splitter()
    pipeline(source, splitter, () => {})
    const parts = splitter[Symbol.asyncIterator]() as AsyncIterator<SplitterChunk>
    let root: MimeNode | undefined
    let candidates = 0
    let added = false
    try {
      let next = await parts.next()
      while (!next.done) {
        const chunk = next.value
        if (chunk.type === 'node') {
          root ??= chunk
          const plan = chunk.multipart ? undefined : edits.plan(chunk)
          if (plan) candidates++
          if (plan && plan.kind !== 'skip') {
            const transforms = prepareNode(chunk, plan, iconv)
            yield chunk.getHeaders()
            next = yield* editBody(parts, chunk, transforms)
            continue
          }
          yield chunk.getHeaders()
        } else if (chunk.value?.length) {
          const at = !added && !candidates && edits.fallbackPart && root?.multipart === 'mixed' ? closingDelimiter(chunk, root) : -1
          if (at >= 0) {
            added = true
            yield Buffer.concat([chunk.value.subarray(0, at), Buffer.from(`--${root!._boundary}\r\n`), edits.fallbackPart!, CRLF, chunk.value.subarray(at)])
          } else yield chunk.value
        }
        next = await parts.next()
      }
    } catch (err) {
      if ((err as { code?: string }).code === 'EMAXLEN') {
        throw new SmtpError(554, '5.6.0', 'Message structure not supported', { reason: (err as Error).message, cause: err })
      }
      throw err
    } finally {
      splitter.destroy()
    }
  }
}

/** Sets the part's new headers (charset, transfer encoding) and returns its transforms. */
function prepareNode(node: MimeNode, plan: Exclude<PartPlan, { kind: 'skip' }>, iconv: typeof iconvLite): Transform[] {
  if (plan.kind === 'raw') return [plan.edit()]
  const transforms: Transform[] = [node.getDecoder()]
  if (plan.transcode) transforms.push(iconv.decodeStream(plan.transcode) as Transform, iconv.encodeStream('utf-8') as Transform)
  if (plan.toUtf8) node.setCharset('utf-8')
  transforms.push(plan.edit(), node.getEncoder(plan.encoding))
  return transforms
}

/**
 * Streams the body chunks of `node` through `transforms`, yielding their output; returns the
 * first chunk after the body. A root part (a single-part message) still ends with a line break.
 */
async function* editBody(parts: AsyncIterator<SplitterChunk>, node: MimeNode, transforms: Transform[]): AsyncGenerator<Buffer, IteratorResult<SplitterChunk>> {
  const input = new PassThrough()
  const output: Readable = chain(input, transforms)
  let after: IteratorResult<SplitterChunk> | undefined
  const feeding = (async () => {
    try {
      for (;;) {
        after = await parts.next()
        if (after.done || after.value.type !== 'body' || after.value.node !== node) break
        if (!input.write((after.value as MessageChunk).value) && !input.destroyed) await drained(input)
      }
      input.end()
    } catch (err) {
      input.destroy(err as Error)
    }
  })()
  let last = LF
  try {
    for await (const data of output as AsyncIterable<Buffer>) {
      if (data.length) last = data[data.length - 1]!
      yield data
    }
  } finally {
    input.destroy()
  }
  await feeding
  if (node.root && last !== LF) yield CRLF
  return after!
}

function drained(stream: PassThrough): Promise<void> {
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
