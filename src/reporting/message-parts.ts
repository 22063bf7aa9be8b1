/**
 * Reading a report (bounce or complaint) into its leaf parts with `@zone-eu/mailsplit`'s
 * streaming Splitter: each leaf comes back with its header fields, its body with the transfer
 * encoding undone, and its text in its declared charset (libmime's decoder, which also knows the
 * ISO-2022-JP that iconv-lite lacks). Embedded messages (message/rfc822) stay single leaves; a
 * caller that needs one's inside reads it with `readReport` again.
 *
 * A report is small, but the returned message inside it may not be: only the first
 * `MAX_REPORT_BYTES` are read (the report parts come first, the original comes last), and at
 * most `MAX_PART_BYTES` of each part are kept, so memory and time stay bounded.
 */
import { type MimeNode, Splitter, type SplitterChunk } from '@zone-eu/mailsplit'
import libmime from 'libmime'
import charsets from 'libmime/lib/charset.js'
import type { HeaderBlock } from '../core/body/header-block.js'
import { headerSection } from './header-section.js'

/**
 * How much of a report is read; the rest (the tail of a returned message) is ignored.
 *
 * @category Reporting
 */
export const MAX_REPORT_BYTES = 2 * 1024 * 1024
/** How much of one part's encoded body is kept. */
export const MAX_PART_BYTES = 512 * 1024

/** One leaf part of a report. */
export interface ReportPart {
  /** Lower-case media type; `text/plain` when the part declares none. */
  readonly type: string
  readonly charset: string | undefined
  /** The part's own header fields (Content-Type and friends). */
  readonly headers: HeaderBlock
  /** The body with its transfer encoding (base64, quoted-printable) undone. */
  readonly body: Buffer
  /** The body as text in its declared charset (UTF-8 when none); `''` for parts that are not text/* or message/*. */
  readonly text: string
}

/** A report read into its parts. */
export interface Report {
  /** The header section of the whole message. */
  readonly headers: HeaderBlock
  /** Lower-case media type of the whole message. */
  readonly type: string
  /** The `report-type` parameter of a multipart/report, lower-case. */
  readonly reportType: string | undefined
  /** Leaf parts in document order; a single-part message has one. */
  readonly parts: readonly ReportPart[]
}

interface Leaf {
  node: MimeNode
  chunks: Buffer[]
  size: number
}

/**
 * Reads `raw` into its parts. LF-only files are fine (mailsplit splits on LF); a leading mbox
 * `From ` line is skipped. Rejects only if the splitter gives up (too many parts, a header
 * section over 256 KiB).
 *
 * @example
 * ```ts
 * const report = await readReport(raw)
 * report.reportType                       // 'delivery-status'
 * report.parts.map((p) => p.type)         // ['text/plain', 'message/delivery-status', 'message/rfc822']
 * ```
 */
export async function readReport(raw: Buffer | string): Promise<Report> {
  const input = withoutMboxLine(typeof raw === 'string' ? Buffer.from(raw, 'utf8') : raw).subarray(0, MAX_REPORT_BYTES)
  const splitter = new Splitter({ ignoreEmbedded: true, maxHeadSize: 256 * 1024, maxChildNodes: 512 })
  const leaves: Leaf[] = []
  let root: MimeNode | undefined
  splitter.end(input)
  for await (const chunk of splitter as AsyncIterable<SplitterChunk>) {
    if (chunk.type === 'node') {
      root ??= chunk
      if (!chunk.multipart || !chunk._boundary) leaves.push({ node: chunk, chunks: [], size: 0 })
    } else if (chunk.type === 'body' || !chunk.node._boundary) {
      // A multipart without a usable boundary (a broken fold, say) is read as one text leaf.
      const leaf = leaves[leaves.length - 1]
      if (leaf?.node === chunk.node && leaf.size < MAX_PART_BYTES && chunk.value) {
        leaf.chunks.push(chunk.value)
        leaf.size += chunk.value.length
      }
    }
  }
  if (!root) throw new Error('no MIME structure')
  const headers = headerOf(root)
  const contentType = libmime.parseHeaderValue(headers.get('content-type') ?? 'text/plain')
  return {
    headers,
    type: (root.contentType || 'text/plain').toLowerCase(),
    reportType: contentType.params['report-type']?.toLowerCase(),
    parts: await Promise.all(leaves.map(toPart)),
  }
}

/** The header section of a node, as the relay's HeaderBlock. */
function headerOf(node: MimeNode): HeaderBlock {
  return headerSection(node.getHeaders())
}

async function toPart(leaf: Leaf): Promise<ReportPart> {
  const { node } = leaf
  const body = await decodeTransfer(node, Buffer.concat(leaf.chunks, leaf.size))
  const charset = node.charset || undefined
  const type = node.multipart || !node.contentType ? 'text/plain' : node.contentType.toLowerCase()
  return {
    type,
    charset,
    headers: headerOf(node),
    body,
    text: /^(?:text|message)\//.test(type) ? charsets.decode(body, charset ?? 'utf-8') : '',
  }
}

/** Undoes base64 or quoted-printable with the node's own decoder; other encodings are identity. */
async function decodeTransfer(node: MimeNode, encoded: Buffer): Promise<Buffer> {
  if (!node.encoding || !['base64', 'quoted-printable'].includes(node.encoding)) return encoded
  const decoder = node.getDecoder()
  const out: Buffer[] = []
  decoder.on('data', (chunk: Buffer) => out.push(chunk))
  await new Promise<void>((resolve, reject) => {
    decoder.once('end', resolve)
    decoder.once('error', reject)
    decoder.end(encoded)
  })
  return Buffer.concat(out)
}

/** Drops an mbox `From sender date` line in front of the header (common in saved bounces). */
function withoutMboxLine(raw: Buffer): Buffer {
  if (raw.subarray(0, 5).toString('latin1') !== 'From ') return raw
  const nl = raw.indexOf(0x0a)
  return nl < 0 ? raw : raw.subarray(nl + 1)
}
