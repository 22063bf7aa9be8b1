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

  /** Reads `source` to the end into a new spool. */
  static async from(source: Readable | AsyncIterable<Buffer>, options: SpoolOptions = {}): Promise<Spool> {
    const limit = options.memoryLimit ?? 1024 * 1024
    let chunks: Buffer[] = []
    let size = 0
    let file: string | null = null
    let handle: FileHandle | null = null
    const append = async (chunk: Buffer) => {
      size += chunk.length
      if (!handle && size > limit) {
        file = join(options.dir ?? tmpdir(), `relaychain-${process.pid}-${randomBytes(8).toString('hex')}.spool`)
        track(file)
        handle = await open(file, 'wx', 0o600)
        for (const held of chunks) await handle.write(held)
        chunks = []
      }
      if (handle) await handle.write(chunk)
      else chunks.push(chunk)
    }
    // One chunk at a time: no write is in progress when the source fails, so a temp file opened
    // for it is always removed below (and a failed write destroys the source). Cheaper than
    // stream.pipeline() for the many small messages that never leave memory.
    let failure: unknown
    try {
      for await (const chunk of source) await append(chunk)
    } catch (err) {
      failure = err
    }
    await (handle as FileHandle | null)?.close()
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

async function removeFile(file: string): Promise<void> {
  live.delete(file)
  await unlink(file).catch(() => {})
}
