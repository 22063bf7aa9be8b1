/**
 * The DKIM "relaxed" body canonicalisation (RFC 6376 §3.4.4) and its SHA-256 hash, streaming and
 * line by line: every run of spaces and tabs within a line becomes one space, white space at the
 * end of a line goes, empty lines at the end of the body go, and a body that does not end with
 * a line break gets one. mailauth's RelaxedHash does the same byte by byte; here `Buffer.indexOf`
 * finds the line breaks and the few lines that need changing (a tab, two spaces in a row, white
 * space before the line break), and runs of lines that need nothing are hashed as they are, in
 * one call. Only a line that needs changing, or that spans two chunks, is rewritten byte by byte,
 * so memory stays flat whatever the line lengths.
 *
 * The input must have CRLF line endings (the signer normalises them first, as every writer of
 * ours sends them); a CR that is not followed by LF is taken as an ordinary byte. The output is
 * checked byte for byte against mailauth and python3-dkim in the tests.
 */
import { createHash, type Hash } from 'node:crypto'

const CR = 0x0d
const LF = 0x0a
const SP = 0x20
const TAB = 0x09
const CRLF = Buffer.from('\r\n')
const TWO_SPACES = Buffer.from('  ')
const SPACE_CR = Buffer.from(' \r')
/** Scratch space for lines rewritten byte by byte; a canonical line is never longer than its input. */
const SCRATCH_SIZE = 16 * 1024

/** A body hasher: `update()` with each chunk in order, then `digest()` once. */
export interface BodyHasher {
  update(chunk: Buffer): void
  digest(encoding: 'base64'): string
}

/**
 * Hashes a body under the relaxed canonicalisation.
 *
 * @example
 * ```ts
 * const hasher = relaxedBodyHash()
 * for await (const chunk of body) hasher.update(chunk)
 * const bh = hasher.digest('base64') // the bh= tag
 * ```
 */
export function relaxedBodyHash(algorithm: 'sha256' = 'sha256'): BodyHasher {
  return new RelaxedBody(createHash(algorithm))
}

/** The canonical bytes themselves (for tests): what {@link relaxedBodyHash} hashes. */
export function relaxedBody(chunks: Iterable<Buffer>): Buffer {
  const out: Buffer[] = []
  const canon = new RelaxedBody({ update: (b: Buffer) => out.push(Buffer.from(b)) } as unknown as Hash)
  for (const chunk of chunks) canon.update(chunk)
  canon.end()
  return Buffer.concat(out)
}

class RelaxedBody implements BodyHasher {
  readonly #hash: Hash
  /** Empty lines seen and not yet hashed: they count only if a line with content follows. */
  #emptyLines = 0
  /** The current line (begun in an earlier chunk or by the byte-by-byte path) has content. */
  #content = false
  /** Spaces or tabs were seen in the current line and not yet written (one space if content follows). */
  #space = false
  /** The last byte taken was a CR (perhaps the first half of a CRLF split between chunks). */
  #cr = false
  /** Inside a line: the fast path waits for the next line start. */
  #midLine = false
  #scratch = Buffer.allocUnsafe(SCRATCH_SIZE)
  #used = 0

  constructor(hash: Hash) {
    this.#hash = hash
  }

  update(chunk: Buffer): void {
    const end = chunk.length
    let pos = 0
    // Finish a line begun in an earlier chunk byte by byte.
    if (this.#midLine) {
      const lf = chunk.indexOf(LF)
      this.#slow(chunk, 0, lf < 0 ? end : lf + 1)
      this.#flushScratch()
      if (lf < 0) return
      pos = lf + 1
    }
    // Where the next line that needs changing has its tab, two spaces, or space before the CR.
    let tab = -2
    let double = -2
    let trailing = -2
    while (pos < end) {
      if (tab !== -1 && tab < pos) tab = chunk.indexOf(TAB, pos)
      if (double !== -1 && double < pos) double = chunk.indexOf(TWO_SPACES, pos)
      if (trailing !== -1 && trailing < pos) trailing = chunk.indexOf(SPACE_CR, pos)
      const dirty = Math.min(tab < 0 ? end : tab, double < 0 ? end : double, trailing < 0 ? end : trailing)
      // Every whole line before the one holding `dirty` is canonical already.
      const lineStart = dirty === end ? chunk.lastIndexOf(LF, end - 1) + 1 : chunk.lastIndexOf(LF, dirty) + 1
      if (lineStart > pos) this.#canonical(chunk, pos, lineStart)
      pos = Math.max(pos, lineStart)
      const lf = dirty === end ? -1 : chunk.indexOf(LF, dirty)
      if (lf < 0) break
      this.#slow(chunk, pos, lf + 1)
      this.#flushScratch()
      pos = lf + 1
    }
    if (pos < end) {
      // A line that goes on in the next chunk.
      this.#slow(chunk, pos, end)
      this.#flushScratch()
      this.#midLine = true
    }
  }

  /** Hashes whole lines `[from, to)` that are canonical as they are, holding back trailing empty lines. */
  #canonical(chunk: Buffer, from: number, to: number): void {
    let stop = to
    let empty = 0
    while (stop - 2 >= from && chunk[stop - 2] === CR && (stop - 2 === from || chunk[stop - 3] === LF)) {
      stop -= 2
      empty++
    }
    if (stop > from) {
      this.#writeEmptyLines()
      this.#flushScratch()
      this.#hash.update(chunk.subarray(from, stop))
    }
    this.#emptyLines += empty
  }

  digest(encoding: 'base64'): string {
    this.end()
    return this.#hash.digest(encoding)
  }

  /** Ends the body: a last line without a line break gets one; trailing empty lines are dropped. */
  end(): void {
    if (this.#cr) this.#byte(CR)
    this.#cr = false
    if (this.#content) this.#put(CRLF)
    this.#flushScratch()
    this.#content = false
    this.#midLine = false
  }

  /** Canonicalises `[from, to)` byte by byte, continuing the current line's state. */
  #slow(chunk: Buffer, from: number, to: number): void {
    for (let i = from; i < to; i++) {
      const b = chunk[i]!
      if (this.#cr) {
        this.#cr = false
        if (b === LF) {
          this.#endLine()
          continue
        }
        this.#byte(CR)
      }
      if (b === CR) this.#cr = true
      else if (b === SP || b === TAB) this.#space = true
      else if (b === LF) this.#endLine()
      else this.#byte(b)
    }
  }

  /** A byte of line content (not white space, not a line break). */
  #byte(b: number): void {
    if (!this.#content) {
      this.#writeEmptyLines()
      this.#content = true
    }
    // White space before it (leading white space included) is one space.
    if (this.#space) {
      this.#putByte(SP)
      this.#space = false
    }
    this.#putByte(b)
  }

  #endLine(): void {
    if (this.#content) this.#put(CRLF)
    else this.#emptyLines++
    this.#content = false
    this.#space = false
    this.#midLine = false
  }

  #writeEmptyLines(): void {
    for (; this.#emptyLines > 0; this.#emptyLines--) this.#put(CRLF)
  }

  #putByte(b: number): void {
    if (this.#used === SCRATCH_SIZE) this.#flushScratch()
    this.#scratch[this.#used++] = b
  }

  #put(bytes: Buffer): void {
    if (this.#used + bytes.length > SCRATCH_SIZE) this.#flushScratch()
    bytes.copy(this.#scratch, this.#used)
    this.#used += bytes.length
  }

  #flushScratch(): void {
    if (!this.#used) return
    this.#hash.update(this.#scratch.subarray(0, this.#used))
    this.#used = 0
  }
}
