/**
 * The changes a rewrite makes to a document, as replacements of spans of the original (in the
 * offsets it was scanned in: UTF-16 units of a string, or bytes of a binary string), and their
 * application to a string or, without building a string first, to the bytes of a MIME part.
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

/**
 * `content` with `edits` applied, each edit's text taken as bytes (one char per byte).
 *
 * @example
 * ```ts
 * applyEditsToBytes(Buffer.from('<a href="x">'), [{ start: 8, end: 11, text: '"y"' }]).toString() // '<a href="y">'
 * ```
 */
export function applyEditsToBytes(content: Buffer, edits: readonly ContentEdit[]): Buffer {
  if (!edits.length) return content
  const parts: Buffer[] = []
  let cursor = 0
  for (const edit of edits) {
    parts.push(content.subarray(cursor, edit.start), Buffer.from(edit.text, 'latin1'))
    cursor = edit.end
  }
  parts.push(content.subarray(cursor))
  return Buffer.concat(parts)
}
