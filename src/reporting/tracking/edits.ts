/**
 * The changes a rewrite makes to a document, as replacements of spans of the original (in the
 * offsets it was scanned in: UTF-16 units of a string, or bytes of a binary string), and their
 * application. For the bytes of a MIME part, splicing the binary string and converting it once
 * (`Buffer.from(text, 'latin1')`) measured faster than concatenating many subarrays.
 */

/** A change: `[start, end)` of the original replaced by `text` (a binary string for byte content). */
export interface ContentEdit {
  readonly start: number
  readonly end: number
  readonly text: string
}

/**
 * `source` with `edits` (sorted, not overlapping) applied.
 *
 * @example
 * ```ts
 * applyEdits('<a href="x">', [{ start: 8, end: 11, text: '"y"' }]) // '<a href="y">'
 * ```
 */
export function applyEdits(source: string, edits: readonly ContentEdit[]): string {
  if (!edits.length) return source
  const parts: string[] = []
  let cursor = 0
  for (const edit of edits) {
    parts.push(source.slice(cursor, edit.start), edit.text)
    cursor = edit.end
  }
  parts.push(source.slice(cursor))
  return parts.join('')
}
