/**
 * Link tracking for one MIME text part, given its raw body bytes (as between its header block and
 * the next boundary) and what its headers say: the body is decoded (quoted-printable, base64 or as
 * is), its links rewritten in its own charset ({@link rewriteHtml} for text/html, and for
 * text/plain {@link rewriteText}), and the result encoded again with the same transfer encoding:
 * quoted-printable in lines of at most 76 characters (only the lines that changed are encoded
 * anew, the others are kept as the sender encoded them), base64 in lines of 76, 7bit/8bit/binary
 * as is. A 7bit part that would no longer be 7-bit clean, or a 7bit/8bit part with a line over 998
 * octets after the rewrite, becomes quoted-printable, and the result says so: the caller must then
 * set `Content-Transfer-Encoding: quoted-printable` in the part's header. A part with no link to
 * rewrite (and no pixel) comes back as the same bytes.
 *
 * The caller decides which parts to give here: body text, not attachments, and nothing inside a
 * signed or encrypted structure (see the disclaimer stage for the rules this project uses).
 */

import { isAscii } from 'node:buffer'
import { charsetPlan, decodeWhole, encodeWhole } from './charset.js'
import { applyEdits } from './edits.js'
import { spliceQuotedPrintable } from './qp-splice.js'
import { type RewriteHtmlOptions, type RewrittenLink, rewriteSource } from './rewrite-html.js'
import { rewriteTextSource } from './rewrite-text.js'
import { decodeBase64, decodeQuotedPrintable, encodeBase64, encodeQuotedPrintable, type HardLines, lineFacts, MAX_LINE } from './transfer-encoding.js'

/**
 * A transfer encoding this module writes.
 *
 * @category Reporting
 */
export type TransferEncoding = '7bit' | '8bit' | 'binary' | 'quoted-printable' | 'base64'

/**
 * What the part's headers say.
 *
 * @category Reporting
 */
export interface MimePartInfo {
  /** `text/html` (the default) or `text/plain`. */
  readonly contentType?: string
  /** The Content-Transfer-Encoding; absent means 7bit. */
  readonly transferEncoding?: string | false
  /** The charset parameter; absent means US-ASCII. */
  readonly charset?: string | false
}

/**
 * What {@link rewriteMimePart} returns.
 *
 * @category Reporting
 */
export interface MimePartResult {
  /** The new raw body: re-encoded if anything changed, else the input itself. */
  readonly body: Buffer
  /** The transfer encoding of `body`, to declare in the part's header. */
  readonly transferEncoding: TransferEncoding
  /** `transferEncoding` differs from the part's (7bit/8bit became quoted-printable). */
  readonly encodingChanged: boolean
  /** Whether a link was rewritten or the pixel inserted (false: `body` is the input). */
  readonly changed: boolean
  /** The rewritten links; offsets are in the decoded content (bytes, or chars for UTF-16-like charsets). */
  readonly links: RewrittenLink[]
  /** Whether the open pixel was inserted (never in text/plain). */
  readonly pixel: boolean
  /** Why a part was left alone or re-encoded differently, for logs. */
  readonly notes: readonly string[]
}

const KNOWN = new Set<string>(['7bit', '8bit', 'binary', 'quoted-printable', 'base64'])

/**
 * Rewrites the links of one text/html or text/plain MIME part.
 *
 * @example
 * ```ts
 * const result = rewriteMimePart(rawBody, { contentType: 'text/html', transferEncoding: 'quoted-printable', charset: 'utf-8' }, {
 *   rewrite: ({ url, index }) => `https://t.example.com/c/${signToken({ messageId, recipient, link: index, url }, keys)}`,
 * })
 * if (result.encodingChanged) node.headers.update('Content-Transfer-Encoding', result.transferEncoding)
 * ```
 *
 * @category Reporting
 */
export function rewriteMimePart(body: Uint8Array, part: MimePartInfo, options: RewriteHtmlOptions): MimePartResult {
  const raw = Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength)
  const declared = (part.transferEncoding || '7bit').trim().toLowerCase()
  const html = (part.contentType || 'text/html').trim().toLowerCase() !== 'text/plain'
  const leave = (note: string): MimePartResult => ({
    body: raw,
    transferEncoding: KNOWN.has(declared) ? (declared as TransferEncoding) : '7bit',
    encodingChanged: false,
    changed: false,
    links: [],
    pixel: false,
    notes: [note],
  })
  if (!KNOWN.has(declared)) return leave(`transfer encoding ${declared} is not supported: part left as it is`)
  const encoding = declared as TransferEncoding
  const lines: HardLines = { decoded: [0], encoded: [0] }
  const content = encoding === 'quoted-printable' ? decodeQuotedPrintable(raw, lines) : encoding === 'base64' ? decodeBase64(raw) : raw
  const plan = charsetPlan(part.charset)
  if (plan.kind === 'unknown') return leave(`charset ${String(part.charset)} is unknown: part left as it is`)

  let source: string
  if (plan.kind === 'binary') source = content.toString('latin1')
  else {
    const text = decodeWhole(content, plan.charset)
    if (text === undefined) return leave(`charset ${plan.charset} does not round-trip: part left as it is`)
    source = text
  }
  // Pure ASCII needs no decoding of the stretches handed to rewrite (the common case, measured).
  const codec = plan.kind === 'binary' && isAscii(content) ? { decode: (raw: string) => raw, encode: plan.codec.encode } : plan.codec
  const rewritten = html ? rewriteSource(source, options, codec) : { ...rewriteTextSource(source, options, codec), pixelAt: -1 }
  const pixel = rewritten.pixelAt >= 0
  if (!rewritten.links.length && !pixel) {
    return { body: raw, transferEncoding: encoding, encodingChanged: false, changed: false, links: [], pixel: false, notes: [] }
  }
  const notes: string[] = []
  if (rewritten.referenced) {
    notes.push(
      `charset ${plan.kind === 'whole' ? plan.charset : String(part.charset || 'us-ascii')} lacks characters of a new URL: written as ${html ? 'character references' : 'its ASCII form'}`,
    )
  }
  if (encoding === 'quoted-printable' && plan.kind === 'binary') {
    // Offsets are bytes of the decoded content: re-encode only the lines that changed.
    const body = spliceQuotedPrintable(raw, content, lines, rewritten.edits)
    return { body, transferEncoding: encoding, encodingChanged: false, changed: true, links: rewritten.links, pixel, notes }
  }
  const edited = applyEdits(source, rewritten.edits)
  const output = plan.kind === 'binary' ? Buffer.from(edited, 'latin1') : encodeWhole(edited, plan.charset)
  const { body: encoded, transferEncoding } = encode(output, encoding, raw, notes)
  return { body: encoded, transferEncoding, encodingChanged: transferEncoding !== encoding, changed: true, links: rewritten.links, pixel, notes }
}

/** `content` in `encoding`, or in quoted-printable when `encoding` can no longer carry it. */
function encode(
  content: Buffer,
  encoding: TransferEncoding,
  original: Buffer,
  notes: string[],
): { body: Buffer; transferEncoding: TransferEncoding } {
  if (encoding === 'quoted-printable') return { body: encodeQuotedPrintable(content), transferEncoding: encoding }
  if (encoding === 'base64') {
    const body = encodeBase64(content)
    // Keep the line break that ended the original body (it precedes the boundary).
    return { body: endsWithLineBreak(original) ? Buffer.concat([body, Buffer.from('\r\n')]) : body, transferEncoding: encoding }
  }
  if (encoding === 'binary') return { body: content, transferEncoding: encoding }
  const facts = lineFacts(content)
  const reasons = [
    ...(encoding === '7bit' && facts.eightBit ? ['8-bit octets'] : []),
    ...(facts.nul ? ['NUL octets'] : []),
    ...(facts.longest > MAX_LINE ? [`a line of ${facts.longest} octets`] : []),
  ]
  if (!reasons.length) return { body: content, transferEncoding: encoding }
  notes.push(`${encoding} cannot carry ${reasons.join(' and ')}: re-encoded as quoted-printable`)
  return { body: encodeQuotedPrintable(content), transferEncoding: 'quoted-printable' }
}

function endsWithLineBreak(bytes: Buffer): boolean {
  return bytes.length > 0 && bytes[bytes.length - 1] === 0x0a
}
