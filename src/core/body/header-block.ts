/**
 * The header section of a message, parsed once and kept as raw bytes per field, so that an
 * untouched header section is written back byte for byte (8-bit values, odd folding, malformed
 * lines included) and edits never re-read the body.
 */
import { RelayError } from '../errors.js'

const CRLF = Buffer.from('\r\n')

/**
 * One field of a header section.
 *
 * @category Core
 */
export interface HeaderField {
  /** Field name as written (case kept); `''` for a malformed line that is kept verbatim. */
  readonly name: string
  /** The value, unfolded and trimmed, decoded as UTF-8. */
  readonly value: string
  /** The field exactly as received or written, folding and final CRLF included. */
  readonly raw: Buffer
}

interface Entry {
  name: string
  lower: string
  raw: Buffer
}

/**
 * An editable header section.
 *
 * @example
 * ```ts
 * msg.headers.add('X-Relayed-By', 'relaychain')        // prepended, like a trace header
 * msg.headers.remove('X-Originating-IP')
 * const subject = msg.headers.get('subject')
 * ```
 *
 * @category Core
 */
export class HeaderBlock {
  #entries: Entry[]
  #separator: Buffer
  #cache: Buffer | null = null
  #modified = false

  private constructor(entries: Entry[], separator: Buffer) {
    this.#entries = entries
    this.#separator = separator
  }

  /**
   * Parses a header section. `raw` holds the fields (each ending in a line break);
   * `separator` is the empty line that ended the section, or empty if there was none.
   */
  static parse(raw: Buffer, separator: Buffer = CRLF): HeaderBlock {
    const entries: Entry[] = []
    let start = 0
    while (start < raw.length) {
      let end = raw.indexOf(0x0a, start)
      end = end < 0 ? raw.length : end + 1
      const line = raw.subarray(start, end)
      const last = entries[entries.length - 1]
      if ((line[0] === 0x20 || line[0] === 0x09) && last) {
        last.raw = Buffer.concat([last.raw, line])
      } else {
        const name = fieldName(line)
        entries.push({ name, lower: name.toLowerCase(), raw: line })
      }
      start = end
    }
    return new HeaderBlock(entries, separator)
  }

  /** Builds a header section from name/value pairs, e.g. for a generated message. */
  static from(fields: ReadonlyArray<readonly [string, string]>): HeaderBlock {
    const block = new HeaderBlock([], CRLF)
    for (const [name, value] of fields) block.append(name, value)
    return block
  }

  /** The first value of a field (name case-insensitive), unfolded and trimmed. */
  get(name: string): string | undefined {
    const lower = name.toLowerCase()
    const entry = this.#entries.find((e) => e.lower === lower)
    return entry && fieldValue(entry)
  }

  /** Every value of a field, top to bottom. */
  getAll(name: string): string[] {
    const lower = name.toLowerCase()
    return this.#entries.filter((e) => e.lower === lower).map(fieldValue)
  }

  /** Whether the section has at least one field of this name (case-insensitive). */
  has(name: string): boolean {
    const lower = name.toLowerCase()
    return this.#entries.some((e) => e.lower === lower)
  }

  /** All fields, top to bottom (malformed lines have an empty name). */
  fields(): HeaderField[] {
    return this.#entries.map((e) => ({ name: e.name, value: fieldValue(e), raw: e.raw }))
  }

  /** Adds a field at the top, where trace fields (Received, X-Spam-*) belong. */
  add(name: string, value: string): this {
    this.#entries.unshift(entryOf(name, value))
    return this.#touch()
  }

  /** Adds a field at the bottom of the section. */
  append(name: string, value: string): this {
    this.#entries.push(entryOf(name, value))
    return this.#touch()
  }

  /** Replaces the first field of that name in place (removing any others), or appends it. */
  set(name: string, value: string): this {
    const lower = name.toLowerCase()
    const index = this.#entries.findIndex((e) => e.lower === lower)
    if (index < 0) return this.append(name, value)
    this.#entries[index] = entryOf(name, value)
    this.#entries = this.#entries.filter((e, i) => i === index || e.lower !== lower)
    return this.#touch()
  }

  /**
   * Removes every field of that name, or only those `where` accepts (e.g. the `Received` fields
   * of internal hosts); returns how many were removed.
   */
  remove(name: string, where?: (field: HeaderField) => boolean): number {
    const lower = name.toLowerCase()
    const before = this.#entries.length
    this.#entries = this.#entries.filter(
      (e) => e.lower !== lower || (where !== undefined && !where({ name: e.name, value: fieldValue(e), raw: e.raw })),
    )
    if (this.#entries.length !== before) this.#touch()
    return before - this.#entries.length
  }

  /** An independent copy. */
  clone(): HeaderBlock {
    const copy = new HeaderBlock(
      this.#entries.map((e) => ({ ...e })),
      this.#separator,
    )
    copy.#modified = this.#modified
    return copy
  }

  /** True if there is no field at all. */
  get empty(): boolean {
    return this.#entries.length === 0
  }

  /**
   * The section as bytes, separator included: exactly the received bytes until something is
   * edited. An edited section always ends with an empty line, so a body that followed a section
   * without one cannot be mistaken for a continuation line.
   */
  toBuffer(): Buffer {
    if (this.#cache) return this.#cache
    const separator = !this.#separator.length && this.#modified && this.#entries.length ? CRLF : this.#separator
    this.#cache = Buffer.concat([...this.#entries.map((e) => e.raw), separator])
    return this.#cache
  }

  #touch(): this {
    this.#cache = null
    this.#modified = true
    return this
  }
}

function fieldName(line: Buffer): string {
  const colon = line.indexOf(0x3a)
  if (colon <= 0) return ''
  return line.toString('latin1', 0, colon).trimEnd()
}

function fieldValue(entry: Entry): string {
  const text = entry.raw.toString('utf8')
  const colon = text.indexOf(':')
  return text
    .slice(colon + 1)
    .replace(/\r?\n(?=[ \t])/g, '')
    .trim()
}

/** Field names are printable US-ASCII without colon (RFC 5322 §2.2). */
const NAME = /^[\x21-\x39\x3b-\x7e]+$/
/** A value may contain folding (CRLF followed by white space) but no other line break. */
const VALUE = /^(?:[^\r\n]|\r\n[ \t])*$/

function entryOf(name: string, value: string): Entry {
  if (!NAME.test(name)) throw new RelayError('ERR_RELAY_INVALID_OPTION', `invalid header name ${JSON.stringify(name)}`)
  // Most values have no line break at all; only those need the (slower) folding check.
  if ((value.includes('\r') || value.includes('\n')) && !VALUE.test(value)) {
    throw new RelayError('ERR_RELAY_INVALID_OPTION', `header ${name} has a line break that is not folding`)
  }
  return { name, lower: name.toLowerCase(), raw: Buffer.from(`${name}: ${value}\r\n`) }
}
