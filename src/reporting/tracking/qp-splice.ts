/**
 * Quoted-printable output that keeps the sender's encoding wherever the content did not change:
 * only the hard lines that hold a rewritten value or the pixel are encoded again (in lines of at
 * most 76 characters); every other line is copied from the original body byte for byte. Cheaper
 * than encoding the whole part, and the diff of a tracked message stays as small as the change.
 */
import type { ContentEdit } from './edits.js'
import { encodeQuotedPrintable, type HardLines } from './transfer-encoding.js'

/**
 * The quoted-printable body for `content` with `edits` applied, reusing `original`'s encoded
 * lines outside the edited ones; `lines` is what decoding `original` recorded.
 *
 * @example
 * ```ts
 * const lines = { decoded: [0], encoded: [0] }
 * const content = decodeQuotedPrintable(body, lines)
 * const next = spliceQuotedPrintable(body, content, lines, [{ start: 10, end: 30, text: '"https://t.example/c/0"' }])
 * ```
 */
export function spliceQuotedPrintable(original: Buffer, content: Buffer, lines: HardLines, edits: readonly ContentEdit[]): Buffer {
  const { decoded, encoded } = lines
  const lineOf = (at: number) => {
    let low = 0
    let high = decoded.length - 1
    while (low < high) {
      const mid = (low + high + 1) >> 1
      if (decoded[mid]! <= at) low = mid
      else high = mid - 1
    }
    return low
  }
  const parts: Buffer[] = []
  let copied = 0 // encoded bytes taken over so far
  for (let e = 0; e < edits.length; ) {
    const first = lineOf(edits[e]!.start)
    let last = lineOf(Math.max(edits[e]!.start, edits[e]!.end - 1))
    let until = e + 1
    // Edits on the lines of this group (or starting on its last line) are encoded together.
    while (until < edits.length && lineOf(edits[until]!.start) <= last) {
      last = Math.max(last, lineOf(Math.max(edits[until]!.start, edits[until]!.end - 1)))
      until++
    }
    const from = decoded[first]!
    const to = last + 1 < decoded.length ? decoded[last + 1]! : content.length
    const pieces: Buffer[] = []
    let cursor = from
    for (let k = e; k < until; k++) {
      const edit = edits[k]!
      pieces.push(content.subarray(cursor, edit.start), Buffer.from(edit.text, 'latin1'))
      cursor = edit.end
    }
    pieces.push(content.subarray(cursor, to))
    parts.push(original.subarray(copied, encoded[first]!), encodeQuotedPrintable(Buffer.concat(pieces)))
    copied = last + 1 < encoded.length ? encoded[last + 1]! : original.length
    e = until
  }
  parts.push(original.subarray(copied))
  return Buffer.concat(parts)
}
