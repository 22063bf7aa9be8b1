/**
 * One pass of htmlparser2's tokenizer over an HTML document, recording what link tracking needs
 * and nothing else: every `<a>` and `<area>` that has an `href` (its first one, as browsers use),
 * with the exact span of that attribute's value token in the source, its decoded value, its other
 * attributes and the text it encloses; the first `<base href>`; and where the last `</body>` tag
 * starts. The tokenizer follows the HTML rules for what is not markup: comments (MSO conditional
 * comments and the VML inside them included), bogus comments such as `<![CDATA[…]]>`, and the raw
 * text of `<script>`, `<style>`, `<title>`, `<textarea>` never yield a tag here, so nothing in them
 * can be rewritten.
 *
 * The source may be a real string or a "binary" string (one char per byte, for MIME parts in an
 * ASCII-compatible charset): offsets are then byte offsets, and `decode` turns raw stretches of
 * attribute values and text into real characters. The main pass leaves entities alone (so that it
 * can skip through text); the few values and texts kept that contain `&` are decoded afterwards
 * by a second tokenizer run on just that stretch, so the HTML rules still apply (`&amp;` → `&` but
 * `&copy=3` stays as written in an attribute).
 */
import { QuoteType, Tokenizer, type TokenizerCallbacks } from 'htmlparser2'

/** An `<a>` or `<area>` element with an `href`, as found in the source. */
export interface ScannedLink {
  readonly tag: 'a' | 'area'
  /** The decoded `href` value, as written (not trimmed). */
  readonly value: string
  /** Span of the value token in the source, quotes included: `source.slice(start, end)`. */
  readonly start: number
  readonly end: number
  readonly quote: 'double' | 'single' | 'unquoted'
  /** Every attribute of the element, names in lower case, first occurrence wins, decoded. */
  readonly attributes: Readonly<Record<string, string>>
  /** The enclosed text (and image alt text), whitespace collapsed, at most {@link TEXT_LIMIT} characters; `<a>` only. */
  text?: string
}

/** What one scan found. */
export interface HtmlScan {
  readonly links: ScannedLink[]
  /** The decoded `href` of the first `<base>` element that has one. */
  readonly base: string | undefined
  /** Offset of the `<` of the last `</body>` end tag, or -1. */
  readonly bodyEnd: number
}

/** Longest link text kept (it is for telling links apart, e.g. "Unsubscribe", not for storage). */
export const TEXT_LIMIT = 200

const identity = (raw: string) => raw
const COLLECTED = new Set(['a', 'area', 'base', 'img'])
const RAW_TEXT = new Set(['script', 'style', 'title', 'textarea', 'xmp', 'iframe', 'noembed', 'noframes', 'plaintext'])
const WHITESPACE = /[\t\n\f\r ]/
/** The tag names the scan reacts to, by length, so that other tags cost no string. */
const NAMES_BY_LENGTH: string[][] = []
for (const name of [...COLLECTED, ...RAW_TEXT, 'body']) (NAMES_BY_LENGTH[name.length] ??= []).push(name)

/** The lower-case tag name at `[start, end)` if the scan reacts to it, else ''. */
function knownName(source: string, start: number, end: number): string {
  const names = NAMES_BY_LENGTH[end - start]
  if (names) {
    next: for (const name of names) {
      for (let i = 0; i < name.length; i++) if ((source.charCodeAt(start + i) | 0x20) !== name.charCodeAt(i)) continue next
      return name
    }
  }
  return ''
}

/**
 * Scans `source`; `decode` maps raw stretches of a binary string to text (identity for real strings).
 *
 * @example
 * ```ts
 * const { links, base, bodyEnd } = scanHtml('<base href="https://a.example/"><a href=x&amp;y>X</a></body>')
 * // links[0]: { tag: 'a', value: 'x&y', start: 40, end: 47, quote: 'unquoted', text: 'X', … }, bodyEnd: 53
 * ```
 */
export function scanHtml(source: string, decode: (raw: string) => string = identity): HtmlScan {
  const links: ScannedLink[] = []
  let base: string | undefined
  let bodyEnd = -1
  let tagName = ''
  let collect = false
  let attributes: Record<string, string> = {}
  let hrefSpan: { start: number; end: number; quote: ScannedLink['quote'] } | undefined
  let attrName = ''
  let attrNameEnd = 0
  let attrValue = ''
  let rawText = ''
  /** The `<a>` whose text is being collected, and its text so far. */
  let open: ScannedLink | undefined
  let text = ''

  const addText = (chunk: string) => {
    if (open && text.length < TEXT_LIMIT * 2) text += chunk
  }
  const closeLink = () => {
    if (!open) return
    const collapsed = text.replace(/\s+/g, ' ').trim().slice(0, TEXT_LIMIT)
    if (collapsed) open.text = collapsed
    open = undefined
    text = ''
  }
  /** Where the value token of the attribute whose name ends at `from` starts (after `=` and whitespace). */
  const valueStart = (from: number) => {
    let i = from
    while (WHITESPACE.test(source[i]!)) i++
    i++ // the '='
    while (WHITESPACE.test(source[i]!)) i++
    return i
  }
  const finishTag = () => {
    if (!collect) return
    const name = tagName
    if ((name === 'a' || name === 'area') && hrefSpan) {
      const link: ScannedLink = { tag: name, value: attributes.href!, ...hrefSpan, attributes }
      links.push(link)
      if (name === 'a') {
        closeLink() // an <a> start tag ends any open one (the adoption agency does the same)
        open = link
      }
    } else if (name === 'a') closeLink()
    else if (name === 'base' && base === undefined && attributes.href !== undefined) base = attributes.href
    else if (name === 'img' && attributes.alt) addText(` ${attributes.alt} `)
  }

  const callbacks: TokenizerCallbacks = {
    onopentagname(start, end) {
      tagName = knownName(source, start, end)
      collect = COLLECTED.has(tagName)
      if (collect) attributes = {}
      hrefSpan = undefined
    },
    onattribname(start, end) {
      if (!collect) return
      attrName = source.slice(start, end).toLowerCase()
      attrNameEnd = end
      attrValue = ''
    },
    onattribdata(start, end) {
      if (collect && end > start) attrValue += source.slice(start, end)
    },
    onattribentity() {},
    onattribend(quote, end) {
      if (!collect || Object.hasOwn(attributes, attrName)) return
      attributes[attrName] = decodeAttribute(attrValue, quote, decode)
      if (attrName === 'href' && quote !== QuoteType.NoValue) {
        const kind = quote === QuoteType.Double ? 'double' : quote === QuoteType.Single ? 'single' : 'unquoted'
        hrefSpan = { start: valueStart(attrNameEnd), end, quote: kind }
      }
    },
    onopentagend() {
      finishTag()
      if (RAW_TEXT.has(tagName)) rawText = tagName
    },
    onselfclosingtag() {
      // In HTML `<a/>` does not close the element: treat it as a start tag.
      finishTag()
      if (RAW_TEXT.has(tagName)) rawText = tagName
    },
    onclosetag(start, end) {
      const name = knownName(source, start, end)
      if (rawText) {
        if (name === rawText) rawText = ''
        return
      }
      if (name === 'a') closeLink()
      else if (name === 'body') bodyEnd = source.lastIndexOf('<', start)
    },
    ontext(start, end) {
      if (open && !rawText) addText(decodeText(source.slice(start, end), decode))
    },
    ontextentity() {},
    oncdata() {},
    oncomment() {},
    ondeclaration() {},
    onprocessinginstruction() {},
    onend() {
      closeLink()
    },
  }
  const tokenizer = new Tokenizer({ decodeEntities: false }, callbacks)
  tokenizer.write(source)
  tokenizer.end()
  return { links, base, bodyEnd }
}

/** Collects what a tokenizer run on a short stretch yields. */
class Decoded implements TokenizerCallbacks {
  value = ''
  constructor(
    private readonly source: string,
    private readonly decode: (raw: string) => string,
  ) {}
  private raw(start: number, end: number) {
    if (end > start) this.value += this.decode(this.source.slice(start, end))
  }
  onattribdata(start: number, end: number) {
    this.raw(start, end)
  }
  onattribentity(codepoint: number) {
    this.value += String.fromCodePoint(codepoint)
  }
  ontext(start: number, end: number) {
    this.raw(start, end)
  }
  ontextentity(codepoint: number) {
    this.value += String.fromCodePoint(codepoint)
  }
  onattribend() {}
  onattribname() {}
  oncdata() {}
  onclosetag() {}
  oncomment() {}
  ondeclaration() {}
  onend() {}
  onopentagend() {}
  onopentagname() {}
  onprocessinginstruction() {}
  onselfclosingtag() {}
}

function run(source: string, decode: (raw: string) => string): string {
  const decoded = new Decoded(source, decode)
  const tokenizer = new Tokenizer({ decodeEntities: true }, decoded)
  tokenizer.write(source)
  tokenizer.end()
  return decoded.value
}

/** An attribute value as written (between its quotes), decoded as the HTML attribute rules say. */
function decodeAttribute(raw: string, quote: QuoteType, decode: (raw: string) => string): string {
  if (!raw.includes('&')) return decode(raw)
  const q = quote === QuoteType.Single ? "'" : quote === QuoteType.Double ? '"' : ''
  return run(`<a v=${q}${raw}${q}>`, decode)
}

/** Text as written, decoded. */
function decodeText(raw: string, decode: (raw: string) => string): string {
  return raw.includes('&') ? run(raw, decode) : decode(raw)
}
