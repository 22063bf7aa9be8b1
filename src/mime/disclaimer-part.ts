/**
 * The disclaimer for one MIME text part: what to add (in the part's own charset when it can hold
 * the text, else the part is transcoded to UTF-8), how the part must be re-encoded (not at all if
 * possible: a 7bit/8bit part that gets plain ASCII keeps every byte and gains only the tail), and
 * the edits that append after the text or insert before the closing `</body>` of HTML. The edits
 * work on decoded bytes of an ASCII-compatible charset and hold back at most {@link HOLD_LIMIT}
 * bytes, so memory does not grow with the part.
 */
import { Transform, type TransformCallback } from 'node:stream'
import type iconvLite from 'iconv-lite'
import { encode as qpEncode, wrap as qpWrap } from 'nodemailer/lib/qp'

type Iconv = typeof iconvLite

/** A disclaimer, prepared once per configuration. */
export interface PreparedDisclaimer {
  /** For text/plain parts: a blank line, then the text, CRLF line endings (no final line break). */
  readonly text: string
  /** For text/html parts: ASCII only (other characters as numeric references). */
  readonly html: string
  /** A text/plain part of its own (header and content), for a message without a text part. */
  readonly part: Buffer
}

/** What a part needs: nothing (`skip`), only the tail (`raw`), or decoding and re-encoding (`codec`). */
export type PartPlan =
  | { readonly kind: 'skip' }
  | { readonly kind: 'raw'; readonly edit: (final?: boolean) => PartEditor }
  | {
      readonly kind: 'codec'
      /** The part becomes UTF-8 (its charset cannot hold the disclaimer). */
      readonly toUtf8: boolean
      /** Charset to convert the content from, when its bytes are not UTF-8 already. */
      readonly transcode: string | undefined
      readonly encoding: 'base64' | 'quoted-printable'
      readonly edit: (final?: boolean) => PartEditor
    }

/** The MIME facts about a part that the plan depends on. */
export interface PartInfo {
  readonly html: boolean
  readonly charset: string | false | undefined
  readonly encoding: string | false | undefined
}

/** Longest stretch of an HTML part kept back while looking for a later `</body>`. */
export const HOLD_LIMIT = 64 * 1024
const IDENTITY = new Set(['', '7bit', '8bit', 'binary'])
const ASCII_PROBE = ' !"#$%&\'()*+,-./09:;<=>?@AZ[\\]^_`az{|}~\r\n'

/** Prepares text (and optional HTML) for insertion. */
export function prepareDisclaimer(text: string, html: string | undefined): PreparedDisclaimer {
  const lines = text
    .replace(/\r\n?/g, '\n')
    .trim()
    .split('\n')
    .map((l) => l.trimEnd())
  const fragment = html ?? `<div class="disclaimer">${lines.map(escapeHtml).join('<br>\r\n')}</div>`
  const part = `Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\nContent-Disposition: inline\r\n\r\n${qpWrap(qpEncode(lines.join('\r\n')), 76)}`
  return { text: `\r\n${lines.join('\r\n')}`, html: toAsciiHtml(fragment.replace(/\r\n?|\n/g, '\r\n')), part: Buffer.from(part) }
}

/** Plans the edit of one text part; `iconv` is iconv-lite, loaded by the caller on first use. */
export function planPart(part: PartInfo, d: PreparedDisclaimer, iconv: Iconv): PartPlan {
  const encoding = (part.encoding || '').toLowerCase()
  // An encoding we cannot re-encode (x-uuencode …) or a charset we do not know: leave the part.
  if (!IDENTITY.has(encoding) && encoding !== 'base64' && encoding !== 'quoted-printable') return { kind: 'skip' }
  const charset = (part.charset || 'us-ascii').toLowerCase()
  const addition = part.html ? d.html : d.text
  const edit =
    (bytes: Buffer) =>
    (final = false) =>
      part.html ? new HtmlEditor(bytes, final) : new TextEditor(bytes, final)
  const reencode = encoding === 'base64' ? 'base64' : 'quoted-printable'
  const native = inCharset(iconv, addition, charset)
  if (native) {
    const sevenBit = encoding === '' || encoding === '7bit'
    if (IDENTITY.has(encoding) && (!sevenBit || isAscii(native)) && longestLine(native) <= 998) return { kind: 'raw', edit: edit(native) }
    // Encoded text appended to encoded text: the existing lines stay exactly as they were.
    if (encoding === 'quoted-printable' && !part.html) return { kind: 'raw', edit: edit(Buffer.from(qpWrap(qpEncode(native), 76))) }
    return { kind: 'codec', toUtf8: false, transcode: undefined, encoding: reencode, edit: edit(native) }
  }
  if (!iconv.encodingExists(charset)) return { kind: 'skip' }
  // Declared US-ASCII (or nothing): its bytes are valid UTF-8 as they are, only the label changes.
  const transcode = charset === 'us-ascii' || charset === 'ascii' ? undefined : charset
  return { kind: 'codec', toUtf8: true, transcode, encoding: reencode, edit: edit(Buffer.from(addition)) }
}

/** The text in `charset`, if that charset is ASCII-compatible and can represent it. */
function inCharset(iconv: Iconv, text: string, charset: string): Buffer | undefined {
  if (charset === 'utf-8' || charset === 'utf8') return Buffer.from(text)
  if (!iconv.encodingExists(charset) || !iconv.encode(ASCII_PROBE, charset).equals(Buffer.from(ASCII_PROBE))) return undefined
  const bytes = iconv.encode(text, charset)
  return iconv.decode(bytes, charset) === text ? bytes : undefined
}

function isAscii(bytes: Buffer): boolean {
  return bytes.every((b) => b < 0x80)
}

function longestLine(bytes: Buffer): number {
  return Math.max(
    ...bytes
      .toString('latin1')
      .split('\r\n')
      .map((l) => l.length),
  )
}

const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }

/** Escapes text for HTML element content and attribute values. */
function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ENTITIES[c]!)
}

/** Non-ASCII characters as numeric references, so the fragment fits any ASCII-compatible charset. */
function toAsciiHtml(html: string): string {
  return html.replace(/[^\x00-\x7f]/gu, (c) => `&#${c.codePointAt(0)};`)
}

const CRLF = Buffer.from('\r\n')
const LF = Buffer.from('\n')
const EMPTY = Buffer.alloc(0)
const PGP = '-----BEGIN PGP '

/**
 * The edit of one part's decoded content, as a synchronous state machine (no stream per part):
 * `write()` each chunk and pass on what it returns, then pass on `end()`. Decoded base64 text
 * sometimes breaks lines with LF alone; the addition then does the same.
 */
export abstract class PartEditor {
  #last = 0x0a
  #lfOnly = false

  /** `final`: the part is the whole message body, which must end with a line break. */
  constructor(
    readonly addition: Buffer,
    readonly final: boolean,
  ) {}

  /** Takes the next chunk of the part; returns what may be passed on now. */
  abstract write(chunk: Buffer): Buffer
  /** Returns the rest, addition included. */
  abstract end(): Buffer

  protected observe(chunk: Buffer): void {
    const lf = chunk.lastIndexOf(0x0a)
    if (lf >= 0) this.#lfOnly = (lf === 0 ? this.#last : chunk[lf - 1]) !== 0x0d
    this.#last = chunk[chunk.length - 1]!
  }

  /** A line break in the part's style. */
  protected get eol(): Buffer {
    return this.#lfOnly ? LF : CRLF
  }

  /** The addition with the part's line breaks. */
  protected get tail(): Buffer {
    return this.#lfOnly ? Buffer.from(this.addition.toString('latin1').replace(/\r\n/g, '\n'), 'latin1') : this.addition
  }

  /** A line break if the part so far does not end with one. */
  protected get lineBreak(): Buffer {
    return this.#last === 0x0a ? EMPTY : this.eol
  }

  /** `parts` joined, then a line break if the part is the message body and does not end with one. */
  protected finish(...parts: Buffer[]): Buffer {
    const out = Buffer.concat(parts)
    const last = out.length ? out[out.length - 1] : this.#last
    return this.final && last !== 0x0a ? Buffer.concat([out, this.eol]) : out
  }
}

/** Appends the disclaimer to a text part, on lines of its own. Inline PGP stays untouched. */
export class TextEditor extends PartEditor {
  #first = true
  #pgp = false

  write(chunk: Buffer): Buffer {
    if (!chunk.length) return chunk
    if (this.#first) this.#pgp = chunk.toString('latin1', 0, 64).trimStart().startsWith(PGP)
    this.#first = false
    this.observe(chunk)
    return chunk
  }

  end(): Buffer {
    return this.#pgp ? EMPTY : this.finish(this.lineBreak, this.tail)
  }
}

const MARKERS = ['</body', '</html'] as const

/**
 * Inserts the fragment into an HTML part before its last `</body` (else its last `</html`, else
 * at the end). From a marker on, bytes are held back until a later marker or the end; beyond
 * {@link HOLD_LIMIT} that marker is given up (it was not the closing one).
 */
export class HtmlEditor extends PartEditor {
  #pending: Buffer = EMPTY
  /** Which marker `#pending` starts with: 0 `</body`, 1 `</html`, -1 none (a possible partial marker). */
  #holding = -1

  write(chunk: Buffer): Buffer {
    if (!chunk.length) return chunk
    this.observe(chunk)
    const buf = this.#pending.length ? Buffer.concat([this.#pending, chunk]) : chunk
    const lower = buf.toString('latin1').toLowerCase()
    const from = this.#holding >= 0 ? 1 : 0
    let at = lower.lastIndexOf(MARKERS[0])
    let kind = 0
    if (at < from && this.#holding !== 0) {
      at = lower.lastIndexOf(MARKERS[1])
      kind = 1
    }
    let out: Buffer
    if (at >= from) {
      out = buf.subarray(0, at)
      this.#pending = buf.subarray(at)
      this.#holding = kind
    } else if (this.#holding >= 0) {
      out = EMPTY
      this.#pending = buf
    } else {
      // Keep a tail that could be the start of a marker split across chunks.
      const keep = Math.min(buf.length, MARKERS[0].length - 1)
      out = buf.subarray(0, buf.length - keep)
      this.#pending = buf.subarray(buf.length - keep)
    }
    if (this.#holding >= 0 && this.#pending.length > HOLD_LIMIT) {
      out = Buffer.concat([out, this.#pending])
      this.#pending = EMPTY
      this.#holding = -1
    }
    return out
  }

  end(): Buffer {
    if (this.#holding >= 0) return this.finish(this.eol, this.tail, this.eol, this.#pending)
    return this.finish(this.#pending, this.lineBreak, this.tail)
  }
}

/** A part editor as a stream transform. */
export function editorTransform(editor: PartEditor): Transform {
  return new Transform({
    transform(chunk: Buffer, _e, callback: TransformCallback) {
      const out = editor.write(chunk)
      callback(null, out.length ? out : undefined)
    },
    flush(callback: TransformCallback) {
      const out = editor.end()
      callback(null, out.length ? out : undefined)
    },
  })
}
