/**
 * Click and open tracking for an HTML document: the `href` of each trackable `<a>` and `<area>`
 * is replaced by what the caller's `rewrite` returns, and an open pixel may be inserted before the
 * last `</body>`. These are the only bytes that change: the document is tokenized once
 * (htmlparser2), the new values are spliced in at the recorded offsets, and everything between
 * them is copied as it was, so line endings, long lines, odd markup and comments survive intact.
 *
 * Not touched: `<link>`, `<base>`, `<img src>`, anything inside comments (MSO conditional
 * comments and their VML buttons included), `<script>`, `<style>`, `<title>`, `<textarea>`; links
 * that {@link trackableUrl} leaves alone (other schemes, fragments, relative links without a
 * base, marked links); and whatever `skip` or `rewrite` declines.
 */
import { applyEdits, type ContentEdit } from './edits.js'
import { scanHtml } from './html-scan.js'
import { documentBase, trackableUrl } from './link-rules.js'

/**
 * A link offered to `rewrite`.
 *
 * @category Reporting
 */
export interface LinkInfo {
  /** The target: the decoded `href` (`&amp;` is `&`), resolved against `<base href>` if it was relative. */
  readonly url: string
  /** 0, 1, 2 … in document order, counting only the links offered to `rewrite`. */
  readonly index: number
  /** The link text (and image alt text), whitespace collapsed; absent for `<area>`, empty links and plain text. */
  readonly text?: string
}

/**
 * A link offered to `skip`, before it gets an index.
 *
 * @category Reporting
 */
export interface LinkCandidate {
  /** The target: the decoded `href` resolved against `<base href>`, or the URL as written in text. */
  readonly url: string
  /** `text` for a URL in a text/plain part. */
  readonly tag: 'a' | 'area' | 'text'
  /** The link text (and image alt text), whitespace collapsed; absent for `<area>`, empty links and plain text. */
  readonly text?: string
  /** The element's attributes, names in lower case, values decoded. */
  readonly attributes: Readonly<Record<string, string>>
}

/**
 * Options of {@link rewriteHtml}.
 *
 * @category Reporting
 */
export interface RewriteHtmlOptions {
  /** The new URL for a link, or `undefined` to leave it as it is. */
  rewrite(link: LinkInfo): string | undefined
  /** URL of a 1×1 GIF, inserted as an `<img>` just before the last `</body>` (at the end if there is none). */
  pixel?: string
  /** `true` to leave a link alone without giving it an index (e.g. by class or domain). */
  skip?(link: LinkCandidate): boolean
}

/**
 * A link whose `href` was replaced.
 *
 * @category Reporting
 */
export interface RewrittenLink {
  /** The link's index, as given to `rewrite`. */
  readonly index: number
  /** The element it was found in; `text` for a URL in a text/plain part. */
  readonly tag: 'a' | 'area' | 'text'
  /** What `rewrite` was given. */
  readonly url: string
  /** What `rewrite` returned, now the link's target. */
  readonly href: string
  /** The link text, as given to `rewrite`. */
  readonly text?: string
  /**
   * The replaced span of the input, the value's quotes included: `input.slice(start, end)` is
   * {@link original}. Offsets count UTF-16 units for {@link rewriteHtml}, bytes of the decoded
   * content for MIME parts.
   */
  readonly start: number
  /** Where the replaced span ends (exclusive), in the same units as `start`. */
  readonly end: number
  /** The replaced span as it stood in the input, quotes included. */
  readonly original: string
  /** What stands there in the output: the new value, attribute-escaped and quoted. */
  readonly replacement: string
}

/**
 * What {@link rewriteHtml} returns.
 *
 * @category Reporting
 */
export interface RewriteHtmlResult {
  /** The document with the new `href` values and the pixel spliced in, every other character as it was. */
  readonly html: string
  /** The links whose `href` was replaced, in document order. */
  readonly links: RewrittenLink[]
  /** Whether the open pixel was inserted. */
  readonly pixel: boolean
}

/** How a binary string (one char per byte) maps to text and back; `encode` is `undefined` when the charset lacks a character. */
export interface SourceCodec {
  decode(raw: string): string
  encode(text: string): string | undefined
}

/** What a rewrite changes, before it is applied (to a string, or to the bytes of a MIME part). */
export interface SourceRewrite {
  readonly links: RewrittenLink[]
  /** Every replacement and the pixel's insertion, in order. */
  readonly edits: ContentEdit[]
  /** Offset of the inserted pixel in the input, or -1. */
  readonly pixelAt: number
  /** A new URL had characters the charset lacks; they were written as character references. */
  readonly referenced: boolean
}

const TEXT: SourceCodec = { decode: (raw) => raw, encode: (text) => text }
const ESCAPES: Record<string, string> = { '&': '&amp;', '"': '&quot;', "'": '&#39;' }

/**
 * Rewrites the links of an HTML document and optionally adds an open pixel.
 *
 * @example
 * ```ts
 * const { html, links } = rewriteHtml(source, {
 *   rewrite: ({ url, index }) => `https://t.example.com/c/${signToken({ messageId, recipient, link: index, url }, keys)}`,
 *   pixel: `https://t.example.com/o/${signToken({ messageId, recipient }, keys)}`,
 * })
 * ```
 *
 * @category Reporting
 */
export function rewriteHtml(html: string, options: RewriteHtmlOptions): RewriteHtmlResult {
  const result = rewriteSource(html, options, TEXT)
  return { html: applyEdits(html, result.edits), links: result.links, pixel: result.pixelAt >= 0 }
}

/**
 * The open pixel's markup (no line break, so no line changes but the one it lands on).
 *
 * @example
 * ```ts
 * pixelTag('https://t.example.com/o/abc') // '<img src="https://t.example.com/o/abc" width="1" height="1" alt="" …>'
 * ```
 *
 * @category Reporting
 */
export function pixelTag(url: string): string {
  return `<img src="${escapeAttribute(url, '"')}" width="1" height="1" alt="" border="0" style="display:block;width:1px;height:1px;border:0;margin:0;padding:0">`
}

/**
 * The core of {@link rewriteHtml}, also for binary strings of MIME parts (see {@link SourceCodec}):
 * what to change, not yet applied.
 *
 * @example
 * ```ts
 * const binary = bytes.toString('latin1')
 * const { edits } = rewriteSource(binary, { rewrite }, charsetPlan('utf-8').codec)
 * const output = Buffer.from(applyEdits(binary, edits), 'latin1')
 * ```
 */
export function rewriteSource(source: string, options: RewriteHtmlOptions, codec: SourceCodec): SourceRewrite {
  const scan = scanHtml(source, codec === TEXT ? undefined : codec.decode)
  const base = documentBase(scan.base)
  const links: RewrittenLink[] = []
  let referenced = false
  const encode = (text: string) => {
    const bytes = codec.encode(text)
    if (bytes !== undefined) return bytes
    referenced = true
    return codec.encode(toReferences(text))!
  }
  let index = 0
  for (const found of scan.links) {
    const { url } = trackableUrl(found.value, found.attributes, base)
    if (url === undefined) continue
    const text = found.text
    if (options.skip?.({ url, tag: found.tag, attributes: found.attributes, ...(text ? { text } : {}) })) continue
    const link = { url, index: index++, ...(text ? { text } : {}) }
    const href = options.rewrite(link)
    if (typeof href !== 'string') continue
    const quote = found.quote === 'single' ? "'" : '"'
    const replacement = encode(`${quote}${escapeAttribute(href, quote)}${quote}`)
    links.push({ ...link, tag: found.tag, href, start: found.start, end: found.end, original: source.slice(found.start, found.end), replacement })
  }
  const pixelAt = options.pixel === undefined ? -1 : scan.bodyEnd >= 0 ? scan.bodyEnd : source.length
  const edits: ContentEdit[] = links.map((l) => ({ start: l.start, end: l.end, text: l.replacement }))
  if (pixelAt >= 0) {
    const at = links.findIndex((l) => l.start >= pixelAt)
    edits.splice(at < 0 ? edits.length : at, 0, { start: pixelAt, end: pixelAt, text: encode(pixelTag(options.pixel!)) })
  }
  return { links, edits, pixelAt, referenced }
}

/**
 * Escapes a value for an attribute quoted with `quote`: `&`, `"` and, in single quotes, `'`.
 *
 * @example
 * ```ts
 * escapeAttribute('https://a.example/?a=1&b="2"', '"') // 'https://a.example/?a=1&amp;b=&quot;2&quot;'
 * ```
 */
export function escapeAttribute(value: string, quote: '"' | "'"): string {
  return value.replace(quote === '"' ? /[&"]/g : /[&"']/g, (c) => ESCAPES[c]!)
}

/** Non-ASCII characters as numeric character references (valid in attribute values and text). */
function toReferences(text: string): string {
  return text.replace(/[^\x00-\x7f]/gu, (c) => `&#x${c.codePointAt(0)!.toString(16)};`)
}
