/**
 * A re-readable copy of a stream: chunks in memory up to a limit, then a temp file (mode 0600)
 * that is removed by `dispose()`, at the latest when the process exits. Stages that must see the
 * whole body (scanners, signers) and transports that send it more than once read from a spool.
 */
import { randomBytes } from 'node:crypto'
import { createReadStream, unlinkSync } from 'node:fs'
import { type FileHandle, open, unlink } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import type { SpooledBody } from '../types.js'

/**
 * Where and how much a spool keeps in memory.
 *
 * @category Core
 */
export interface SpoolOptions {
  /** Bytes kept in memory before switching to a temp file. Default 1 MiB. */
  memoryLimit?: number
  /** Directory for temp files. Default `os.tmpdir()`. */
  dir?: string
}

/** Temp files not yet disposed, removed on exit whatever happened. */
const live = new Set<string>()
let exitHookInstalled = false
function track(path: string): void {
  live.add(path)
  if (exitHookInstalled) return
  exitHookInstalled = true
  process.once('exit', () => {
    for (const file of live) {
      try {
        unlinkSync(file)
      } catch {
        // already gone
      }
    }
  })
}

/** A spool that has read its source to the end. */
export class Spool implements SpooledBody {
  #chunks: Buffer[] | null
  #file: string | null
  readonly size: number

  private constructor(chunks: Buffer[] | null, file: string | null, size: number) {
    this.#chunks = chunks
    this.#file = file
    this.size = size
  }

  /**
   * Reads `source` to the end into a new spool, passing each chunk to `onChunk` on the way (a
   * signer hashes the body as it is spooled instead of reading the spool back).
   */
  static async from(source: Readable | AsyncIterable<Buffer>, options: SpoolOptions = {}, onChunk?: (chunk: Buffer) => void): Promise<Spool> {
    const limit = options.memoryLimit ?? 1024 * 1024
    let chunks: Buffer[] = []
    let size = 0
    let file: string | null = null
    const writer = new FileWriter()
    const append = async (chunk: Buffer) => {
      onChunk?.(chunk)
      size += chunk.length
      if (!writer.open && size > limit) {
        file = join(options.dir ?? tmpdir(), `relaychain-${process.pid}-${randomBytes(8).toString('hex')}.spool`)
        track(file)
        await writer.create(file)
        writer.write(chunks)
        chunks = []
      }
      if (writer.open) await writer.write([chunk])
      else chunks.push(chunk)
    }
    // Writes run behind the reads (see FileWriter); before a temp file is removed below, the
    // writer has settled, so a file opened for a failed source is always removed. Cheaper than
    // stream.pipeline() for the many small messages that never leave memory.
    let failure: unknown
    try {
      for await (const chunk of source) await append(chunk)
    } catch (err) {
      failure = err
    }
    try {
      await writer.close()
    } catch (err) {
      failure ??= err
    }
    if (failure !== undefined) {
      if (file) await removeFile(file)
      throw failure
    }
    return new Spool(file ? null : chunks, file, size)
  }

  open(): Readable {
    if (this.#file) return createReadStream(this.#file, { highWaterMark: 64 * 1024 })
    if (!this.#chunks) throw new Error('spool disposed')
    const chunks = this.#chunks
    let i = 0
    return new Readable({
      read() {
        this.push(i < chunks.length ? chunks[i++] : null)
      },
    })
  }

  /** True if the content spilled to a temp file. */
  get onDisk(): boolean {
    return this.#file !== null
  }

  /** Frees memory and removes the temp file. Idempotent. */
  async dispose(): Promise<void> {
    this.#chunks = null
    const file = this.#file
    this.#file = null
    if (file) await removeFile(file)
  }
}

/** Most bytes queued for the temp file before reading waits for the disk. */
const WRITE_BEHIND = 1024 * 1024

/**
 * Writes to a temp file behind the reads: chunks queue while one write is in flight and go in
 * the next `writev`, so reading the source does not stop for each write (on a 5 MB message, 80
 * round trips to the thread pool). Reading waits only when over {@link WRITE_BEHIND} is queued.
 */
class FileWriter {
  #handle: FileHandle | null = null
  #queue: Buffer[] = []
  #queued = 0
  #writing: Promise<void> | null = null
  #failure: unknown

  get open(): boolean {
    return this.#handle !== null
  }

  async create(file: string): Promise<void> {
    this.#handle = await open(file, 'wx', 0o600)
  }

  /** Queues `chunks`; resolves at once unless too much is queued, rejects if a write failed. */
  write(chunks: readonly Buffer[]): Promise<void> | undefined {
    if (this.#failure !== undefined) return Promise.reject(this.#failure)
    for (const chunk of chunks) {
      this.#queue.push(chunk)
      this.#queued += chunk.length
    }
    // Only with something queued: a drain that found nothing would end before it is assigned
    // here, leaving a settled promise that no later write restarts (the chunks were never written).
    if (!this.#writing && this.#queue.length) this.#writing = this.#drain()
    return this.#queued > WRITE_BEHIND ? (this.#writing ?? undefined) : undefined
  }

  /** Waits for the queued writes, then closes the file; rejects with a write's failure. */
  async close(): Promise<void> {
    await this.#writing
    await this.#handle?.close()
    this.#handle = null
    if (this.#failure !== undefined) throw this.#failure
  }

  async #drain(): Promise<void> {
    try {
      while (this.#queue.length && this.#failure === undefined) {
        const batch = this.#queue
        this.#queue = []
        this.#queued = 0
        await this.#handle!.writev(batch)
      }
    } catch (err) {
      this.#failure = err
    } finally {
      this.#writing = null
    }
  }
}

async function removeFile(file: string): Promise<void> {
  live.delete(file)
  await unlink(file).catch(() => {})
}
