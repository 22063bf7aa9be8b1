/**
 * Click tracking for text/plain content: each `http://` or `https://` URL written in the text is
 * replaced by what `rewrite` returns, every other byte stays. A URL ends at whitespace, a quote
 * or an angle bracket (`<https://…>` is the RFC 3986 way to delimit one); trailing punctuation
 * (`.`, `,`, `;`, `:`, `!`, `?`, quotes, and a closing bracket that has no opening one in the URL)
 * belongs to the sentence, not to the URL. A URL followed directly by a non-ASCII character is left
 * alone: where it ends cannot be told for sure, and a tracked link to half a URL would be worse
 * than an untracked one.
 */
import { applyEdits, type ContentEdit } from './edits.js'
import type { LinkInfo, RewriteHtmlOptions, RewrittenLink, SourceCodec } from './rewrite-html.js'

/**
 * Options of {@link rewriteText}: as for HTML, without the pixel.
 *
 * @category Reporting
 */
export type RewriteTextOptions = Pick<RewriteHtmlOptions, 'rewrite' | 'skip'>

/**
 * What {@link rewriteText} returns.
 *
 * @category Reporting
 */
export interface RewriteTextResult {
  /** The text with the rewritten URLs spliced in, every other character as it was. */
  readonly text: string
  /** The URLs that were replaced, in order (`tag` is `text`). */
  readonly links: RewrittenLink[]
}

const URL_RUN = /\bhttps?:\/\/[!#-&(-;=?-_a-~]+/gi // printable ASCII but space, quotes, <, >, `
const TRAILING = /[.,;:!?'"*_~]+$/
const PAIRS: Record<string, string> = { ')': '(', ']': '[', '}': '{' }
const TEXT: SourceCodec = { decode: (raw) => raw, encode: (text) => text }

/**
 * Rewrites the URLs of plain text.
 *
 * @example
 * ```ts
 * rewriteText('Read it at https://news.example/42.\r\n', { rewrite: ({ index }) => `https://t.example/c/${index}` })
 * // { text: 'Read it at https://t.example/c/0.\r\n', links: [ … ] }
 * ```
 *
 * @category Reporting
 */
export function rewriteText(text: string, options: RewriteTextOptions): RewriteTextResult {
  const { edits, links } = rewriteTextSource(text, options, TEXT)
  return { text: applyEdits(text, edits), links }
}

/**
 * The core of {@link rewriteText}, also for binary strings of MIME parts: what to change.
 *
 * @example
 * ```ts
 * const { edits } = rewriteTextSource(bytes.toString('latin1'), { rewrite }, charsetPlan('iso-8859-1').codec)
 * ```
 */
export function rewriteTextSource(
  source: string,
  options: RewriteTextOptions,
  codec: SourceCodec,
): { links: RewrittenLink[]; edits: ContentEdit[]; referenced: boolean } {
  const links: RewrittenLink[] = []
  const edits: ContentEdit[] = []
  let index = 0
  let referenced = false
  for (const match of source.matchAll(URL_RUN)) {
    const start = match.index
    const raw = trimUrl(match[0])
    const end = start + raw.length
    if (end === start + match[0].length && end < source.length && source.charCodeAt(end) >= 0x80) continue
    const url = codec.decode(raw)
    if (!URL.canParse(url)) continue
    if (options.skip?.({ url, tag: 'text', attributes: {} })) continue
    const link: LinkInfo = { url, index: index++ }
    const href = options.rewrite(link)
    if (typeof href !== 'string') continue
    let replacement = codec.encode(href)
    if (replacement === undefined) {
      // Only non-ASCII can be missing from an ASCII-compatible charset: the URL's ASCII form.
      referenced = true
      replacement = codec.encode(asciiUrl(href))
      if (replacement === undefined) continue
    }
    links.push({ ...link, tag: 'text', href, start, end, original: raw, replacement })
    edits.push({ start, end, text: replacement })
  }
  return { links, edits, referenced }
}

/** `candidate` without the punctuation that ends the sentence around it. */
function trimUrl(candidate: string): string {
  let url = candidate
  for (;;) {
    const trimmed = url.replace(TRAILING, '')
    const last = trimmed[trimmed.length - 1]!
    const open = PAIRS[last]
    if (open !== undefined && count(trimmed, open) < count(trimmed, last)) url = trimmed.slice(0, -1)
    else return trimmed
  }
}

function count(text: string, char: string): number {
  let n = 0
  for (let at = text.indexOf(char); at >= 0; at = text.indexOf(char, at + 1)) n++
  return n
}

function asciiUrl(url: string): string {
  try {
    return new URL(url).href
  } catch {
    return url.replace(/[^\x00-\x7f]/gu, (c) => encodeURIComponent(c))
  }
}
