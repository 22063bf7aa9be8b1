/**
 * The content transfer encodings of RFC 2045, on whole part bodies held in memory (a tracked part
 * is rewritten as a whole): quoted-printable and base64 decoding and encoding, and the facts that
 * decide whether content may stay 7bit/8bit. Written for speed (one pass over preallocated
 * buffers), because every tracked message goes through them once or twice.
 *
 * Quoted-printable here: `decodeQuotedPrintable(encodeQuotedPrintable(x))` is `x` for any bytes.
 * A CRLF in the content is a hard line break; a lone CR or LF is encoded (`=0D`, `=0A`); encoded
 * lines, the soft-break `=` included, are at most 76 characters. Decoding is lenient the usual
 * way: soft breaks with bare LF or trailing blanks, lower-case hex, a stray `=` kept, trailing
 * blanks on a line (transport padding) dropped, a hard break with bare LF read as CRLF.
 */

/** Longest encoded line of quoted-printable and base64 output, not counting CRLF. */
export const ENCODED_LINE = 76
/** Longest line RFC 5322 allows, not counting CRLF. */
export const MAX_LINE = 998

const HEX = Buffer.from('0123456789ABCDEF')
const CR = 0x0d
const LF = 0x0a
const EQ = 0x3d
const SP = 0x20
const TAB = 0x09

/**
 * Where each hard line of a quoted-printable body starts, in the decoded content and in the
 * encoded body (line 0 starts at 0 in both; a line includes its line break). Filled by
 * {@link decodeQuotedPrintable} when given.
 */
export interface HardLines {
  readonly decoded: number[]
  readonly encoded: number[]
}

/** Hex digit values, -1 for other octets. */
const HEX_VALUE = new Int8Array(256).fill(-1)
for (let c = 0; c < 16; c++) {
  HEX_VALUE[HEX[c]!] = c
  HEX_VALUE[HEX[c]! | 0x20] = c
}
/** Octets quoted-printable writes as they are (not `=`, space or controls). */
const LITERAL = new Uint8Array(256)
for (let c = 0x21; c < 0x7f; c++) LITERAL[c] = c === EQ ? 0 : 1
/** Octets the decoder copies without a second look (anything but `=`, CR, LF, space, tab). */
const PLAIN = new Uint8Array(256).fill(1)
for (const c of [EQ, CR, LF, SP, TAB]) PLAIN[c] = 0

/**
 * Decodes a quoted-printable body; with `lines` (each holding `[0]`), records where its hard lines
 * start.
 *
 * @example
 * ```ts
 * decodeQuotedPrintable(Buffer.from('caf=C3=A9 =\r\nau lait')).toString() // 'café au lait'
 * ```
 */
export function decodeQuotedPrintable(input: Uint8Array, lines?: HardLines): Buffer {
  const n = input.length
  const out = Buffer.allocUnsafe(n * 2)
  let o = 0
  let keep = 0 // output length without literal blanks at the end of the current line
  for (let i = 0; i < n; i++) {
    const c = input[i]!
    if (PLAIN[c] === 1) {
      out[o++] = c
      keep = o
      continue
    }
    if (c === EQ) {
      const high = i + 2 < n ? HEX_VALUE[input[i + 1]!]! : -1
      const low = high >= 0 ? HEX_VALUE[input[i + 2]!]! : -1
      if (low >= 0) {
        out[o++] = (high << 4) | low
        keep = o
        i += 2
        continue
      }
      let j = i + 1
      while (j < n && (input[j] === SP || input[j] === TAB)) j++
      const soft = j === n || input[j] === LF || (input[j] === CR && input[j + 1] === LF)
      if (!soft)
        out[o++] = c // a stray '=' is kept as it is
      else i = j === n ? j : input[j] === CR ? j + 1 : j
      keep = o // blanks before a soft break are content
      continue
    }
    if (c === LF || (c === CR && input[i + 1] === LF)) {
      if (c === CR) i++
      o = keep
      out[o++] = CR
      out[o++] = LF
      keep = o
      if (lines) {
        lines.decoded.push(o)
        lines.encoded.push(i + 1)
      }
      continue
    }
    out[o++] = c
    if (c !== SP && c !== TAB) keep = o
  }
  return Buffer.from(out.subarray(0, keep))
}

/**
 * Encodes content as quoted-printable (CRLF line breaks, lines of at most 76 characters).
 *
 * @example
 * ```ts
 * encodeQuotedPrintable(Buffer.from('<a href="x">café</a>\r\n')).toString() // '<a href=3D"x">caf=C3=A9</a>\r\n'
 * ```
 */
export function encodeQuotedPrintable(input: Uint8Array): Buffer {
  const n = input.length
  const out = Buffer.allocUnsafe(n * 3 + Math.ceil(n / 24) * 3 + 8)
  let o = 0
  let line = 0
  for (let i = 0; i < n; i++) {
    const c = input[i]!
    if (LITERAL[c] === 1 && line < ENCODED_LINE - 1) {
      out[o++] = c
      line++
      continue
    }
    if (c === CR && input[i + 1] === LF) {
      out[o++] = CR
      out[o++] = LF
      line = 0
      i++
      continue
    }
    const atLineEnd = i + 1 === n || (input[i + 1] === CR && input[i + 2] === LF)
    const literal = LITERAL[c] === 1 || ((c === SP || c === TAB) && !atLineEnd)
    const width = literal ? 1 : 3
    // The soft break's '=' needs a column too, unless this is the last character of the line.
    if (line + width > (atLineEnd ? ENCODED_LINE : ENCODED_LINE - 1)) {
      out[o++] = EQ
      out[o++] = CR
      out[o++] = LF
      line = 0
    }
    if (literal) out[o++] = c
    else {
      out[o++] = EQ
      out[o++] = HEX[c >> 4]!
      out[o++] = HEX[c & 15]!
    }
    line += width
  }
  return Buffer.from(out.subarray(0, o))
}

/**
 * Decodes a base64 body (line breaks and other stray characters are ignored).
 *
 * @example
 * ```ts
 * decodeBase64(Buffer.from('Y2Fmw6k=\r\n')).toString() // 'café'
 * ```
 */
export function decodeBase64(input: Uint8Array): Buffer {
  return Buffer.from(Buffer.from(input.buffer, input.byteOffset, input.byteLength).toString('latin1'), 'base64')
}

/**
 * Encodes content as base64 in lines of 76 characters joined by CRLF (no final line break).
 *
 * @example
 * ```ts
 * encodeBase64(Buffer.from('café')).toString() // 'Y2Fmw6k='
 * ```
 */
export function encodeBase64(input: Uint8Array): Buffer {
  // Measured: slicing the base64 text and joining it beats copying lines into one buffer.
  const text = Buffer.from(input.buffer, input.byteOffset, input.byteLength).toString('base64')
  const lines: string[] = []
  for (let at = 0; at < text.length; at += ENCODED_LINE) lines.push(text.slice(at, at + ENCODED_LINE))
  return Buffer.from(lines.join('\r\n'), 'latin1')
}

/** What decides whether content may be sent as 7bit or 8bit (RFC 2045 §2.7, §2.8). */
export interface LineFacts {
  /** Longest line in octets, line break (CRLF or LF) excluded. */
  readonly longest: number
  /** Any octet above 127. */
  readonly eightBit: boolean
  /** Any NUL octet. */
  readonly nul: boolean
}

/**
 * The line facts of some content.
 *
 * @example
 * ```ts
 * lineFacts(Buffer.from('ab\r\ncafé')) // { longest: 5, eightBit: true, nul: false }
 * ```
 */
export function lineFacts(input: Uint8Array): LineFacts {
  let longest = 0
  let start = 0
  let eightBit = false
  let nul = false
  const n = input.length
  for (let i = 0; i < n; i++) {
    const c = input[i]!
    if (c >= 0x80) eightBit = true
    else if (c === LF) {
      const end = i > 0 && input[i - 1] === CR ? i - 1 : i
      if (end - start > longest) longest = end - start
      start = i + 1
    } else if (c === 0) nul = true
  }
  if (n - start > longest) longest = n - start
  return { longest, eightBit, nul }
}
