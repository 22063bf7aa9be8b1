/**
 * How a MIME part's charset is handled while its links are rewritten. Most charsets mail uses are
 * ASCII-compatible (UTF-8, ISO-8859-x, Windows-125x, KOI8, and the multi-byte EUC, Shift_JIS,
 * GBK, Big5, whose trail bytes never look like `<`, `>`, `=`, `&` or a quote): their bytes are
 * rewritten as a binary string, one char per byte, so bytes outside the new values cannot change
 * even where they are not valid in the charset; only the stretches handed to `rewrite` are
 * decoded. Stateful or wide charsets (UTF-16/32, UTF-7, ISO-2022-x, HZ) are decoded whole and
 * encoded back, and only when that round trip reproduces the part exactly.
 */
import iconv from 'iconv-lite'
import type { SourceCodec } from './rewrite-html.js'

/** How to rewrite a part in a charset. */
export type CharsetPlan =
  | { readonly kind: 'binary'; readonly codec: SourceCodec }
  | { readonly kind: 'whole'; readonly charset: string; readonly codec: SourceCodec }
  | { readonly kind: 'unknown' }

const PROBE = ' !"#$%&\'()*+,-./0123456789:;<=>?@ABCXYZ[\\]^_`abcxyz{|}~\t\r\n'
const STATEFUL = /^(utf-?(16|32)|ucs-?[24]|utf-?7|iso-?2022|csiso2022|hz)/i
const UTF8 = new Set(['utf-8', 'utf8', 'us-ascii', 'ascii', 'ansi_x3.4-1968', ''])
const ASCII_ONLY = /^[\x00-\x7f]*$/

const utf8Codec: SourceCodec = {
  decode: (raw) => (ASCII_ONLY.test(raw) ? raw : Buffer.from(raw, 'latin1').toString('utf8')),
  encode: (text) => Buffer.from(text, 'utf8').toString('latin1'),
}
const asciiCodec: SourceCodec = {
  decode: utf8Codec.decode, // mislabelled UTF-8 is the common case
  encode: (text) => (ASCII_ONLY.test(text) ? text : undefined),
}

/**
 * The plan for `charset` (a missing one is US-ASCII).
 *
 * @example
 * ```ts
 * charsetPlan('iso-8859-1').kind // 'binary'
 * charsetPlan('utf-16').kind     // 'whole'
 * ```
 */
export function charsetPlan(charset: string | false | undefined): CharsetPlan {
  const name = (charset || '').trim().toLowerCase()
  if (name === 'utf-8' || name === 'utf8') return { kind: 'binary', codec: utf8Codec }
  if (UTF8.has(name)) return { kind: 'binary', codec: asciiCodec }
  if (!iconv.encodingExists(name)) return { kind: 'unknown' }
  if (!STATEFUL.test(name) && iconv.encode(PROBE, name).toString('latin1') === PROBE) {
    return {
      kind: 'binary',
      codec: {
        decode: (raw) => (ASCII_ONLY.test(raw) ? raw : iconv.decode(Buffer.from(raw, 'latin1'), name)),
        encode: (text) => representable(text, name)?.toString('latin1'),
      },
    }
  }
  return { kind: 'whole', charset: name, codec: { decode: (raw) => raw, encode: (text) => (representable(text, name) ? text : undefined) } }
}

/** `text` in `charset`, if the charset has every character of it. */
function representable(text: string, charset: string): Buffer | undefined {
  const bytes = iconv.encode(text, charset)
  return ASCII_ONLY.test(text) || iconv.decode(bytes, charset) === text ? bytes : undefined
}

/**
 * Decodes a whole part in a 'whole' charset, or `undefined` if encoding it back would not give the
 * same bytes (the part is then left alone).
 *
 * @example
 * ```ts
 * decodeWhole(Buffer.from('<a href="x">', 'utf16le'), 'utf-16le') // '<a href="x">'
 * ```
 */
export function decodeWhole(bytes: Buffer, charset: string): string | undefined {
  const text = iconv.decode(bytes, charset, { stripBOM: false })
  return iconv.encode(text, charset, { addBOM: false }).equals(bytes) ? text : undefined
}

/**
 * Encodes text decoded by {@link decodeWhole} back to its charset.
 *
 * @example
 * ```ts
 * encodeWhole('<a href="y">', 'utf-16le') // the UTF-16LE bytes, no BOM added
 * ```
 */
export function encodeWhole(text: string, charset: string): Buffer {
  return iconv.encode(text, charset, { addBOM: false })
}
