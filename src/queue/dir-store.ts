/**
 * The embedded queue store: a directory on the local disk, no server to install.
 *
 *   <dir>/.lock                one process owns the queue (a second gets ERR_RELAY_QUEUE_LOCKED)
 *   <dir>/tmp/<id>             being written; whatever is here at start was never acknowledged
 *   <dir>/due/<time>/<id>      due from <time> (10-second buckets, so a scan reads only due ones)
 *   <dir>/wait/<key>/<id>      waiting for a destination that does not answer (its name in .destination)
 *   <dir>/hold/<id>            held by an operator
 *   <dir>/quarantine/<id>.<t>  unreadable: moved aside, never delivered half
 *
 * An entry is written to tmp/, fsync'd, renamed into its bucket, and the bucket directory
 * fsync'd (group-committed across concurrent adds) before `add()` resolves. Moving an entry is
 * a rename, so it is always in exactly one place, and an operator's command (the CLI, while the
 * relay runs) is a rename too: the worker notices when an entry it holds moved away.
 */
import { createHash } from 'node:crypto'
import { type FileHandle, mkdir, open, opendir, readdir, readFile, rename, rm, rmdir, stat, unlink, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { Readable } from 'node:stream'
import { RelayError, SmtpError } from '../core/errors.js'
import { DirSync } from './dir-sync.js'
import { CorruptEntry, type EntryLayout, entryStart, entryState, readEntry, recordLine, sizeField, summarizeEntry } from './entry-file.js'
import type { ClaimedEntry, EntryHeader, EntryPlace, EntrySummary, JournalRecord, QueueEntry, QueueStore } from './types.js'

const BUCKET = 10_000
/** Bytes per read of an entry's content. */
const CHUNK = 64 * 1024
/** Queue directories this process has open (the lock file cannot tell two stores of one process apart). */
const OPEN_ROOTS = new Set<string>()

/**
 * Options of `QueueStore.add`.
 *
 * @category Queue
 */
export interface AddOptions {
  /** Journal records the entry starts with (a requeued entry keeps its deliveries). */
  readonly records?: readonly JournalRecord[]
  /** When it is due. Default `header.created`. */
  readonly at?: number
}

/**
 * Options of {@link dirStore}.
 *
 * @category Queue
 */
export interface DirStoreOptions {
  /** Called for a file moved to quarantine, with why (for the queue's log and events). */
  onCorrupt?: (id: string, reason: string) => void
}

/**
 * The directory store; see the file header.
 *
 * @example
 * ```ts
 * const queue = durableQueue({ store: dirStore('/var/spool/relaychain'), deliver: smtpTransport({ host: 'smarthost.example' }) })
 * ```
 *
 * @category Queue
 */
export function dirStore(root: string, options: DirStoreOptions = {}): DirQueueStore {
  return new DirQueueStore(root, options)
}

/** Bytes of content gathered before a write. */
const WRITE_BATCH = 256 * 1024

const isMissing = (err: unknown) => (err as NodeJS.ErrnoException)?.code === 'ENOENT'

/**
 * The directory store.
 *
 * @category Queue
 */
export class DirQueueStore implements QueueStore {
  /** The queue directory. */
  readonly root: string
  readonly #options: DirStoreOptions
  readonly #sync = new DirSync()
  readonly #claimed = new Set<string>()
  #locked = false
  #writes = 0
  readonly #real: string

  constructor(root: string, options: DirStoreOptions = {}) {
    this.root = root
    this.#real = resolve(root)
    this.#options = options
  }

  /** Directory fsyncs done so far (group commit at work). */
  get syncs(): number {
    return this.#sync.syncs
  }

  describe(): string {
    return `dir ${this.root}`
  }

  async open(): Promise<void> {
    for (const sub of ['tmp', 'due', 'wait', 'hold', 'quarantine']) await mkdir(join(this.root, sub), { recursive: true })
    await this.#lock()
    // Half-written entries: their clients never got a 250.
    for (const name of await readdir(join(this.root, 'tmp'))) await rm(join(this.root, 'tmp', name), { force: true })
  }

  async #lock(): Promise<void> {
    const path = join(this.root, '.lock')
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        await writeFile(path, String(process.pid), { flag: 'wx' })
        this.#locked = true
        OPEN_ROOTS.add(this.#real)
        return
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      }
      const pid = Number(await readFile(path, 'utf8').catch(() => ''))
      // Our own pid in the lock is a store of this process, or (a container restarted with the
      // same pid) one that died: only the registry of this process tells them apart.
      if (pid && (pid === process.pid ? OPEN_ROOTS.has(this.#real) : alive(pid))) {
        throw new RelayError('ERR_RELAY_QUEUE_LOCKED', `the queue ${this.root} is in use by process ${pid}; one relay process per queue directory`)
      }
      await unlink(path).catch(() => {}) // a lock left by a process that died
    }
    throw new RelayError('ERR_RELAY_QUEUE_LOCKED', `cannot lock the queue ${this.root}`)
  }

  async add(header: EntryHeader, content: Readable, options: AddOptions = {}): Promise<number> {
    const target = await this.#bucketDir(options.at ?? header.created)
    return (await this.writeEntry(header, content, options.records ?? [], target)).size
  }

  /** @internal Writes an entry to tmp/, makes it durable and renames it into `dir`; returns its path and size. */
  async writeEntry(header: EntryHeader, content: Readable, records: readonly JournalRecord[], dir: string): Promise<{ path: string; size: number }> {
    const tmp = join(this.root, 'tmp', `${header.id}.${process.pid}.${++this.#writes}`)
    const { head, sizeOffset } = entryStart(header)
    let handle: FileHandle | undefined
    try {
      handle = await open(tmp, 'wx', 0o600)
      const file = handle
      // Chunks are gathered up to WRITE_BATCH and written together: a small message is one write,
      // its header's size field filled in memory; a large one fills the field once it is known.
      const pending: Buffer[] = []
      let pendingBytes = 0
      let size = 0
      let headWritten = false
      const flush = async () => {
        const at = headWritten ? head.length + size - pendingBytes : 0
        await writeAll(file, Buffer.concat(headWritten ? pending : [head, ...pending]), at)
        headWritten = true
        pending.length = pendingBytes = 0
      }
      for await (const chunk of content as AsyncIterable<Buffer>) {
        pending.push(chunk)
        pendingBytes += chunk.length
        size += chunk.length
        if (pendingBytes >= WRITE_BATCH) await flush()
      }
      if (records.length) pending.push(Buffer.from(records.map(recordLine).join('')))
      if (headWritten) {
        await flush()
        await writeAll(file, sizeField(size), sizeOffset)
      } else {
        sizeField(size).copy(head, sizeOffset)
        await flush()
      }
      await handle.sync()
      await handle.close()
      handle = undefined
      const path = join(dir, header.id)
      await rename(tmp, path).catch(async (err: unknown) => {
        // The worker removes empty past buckets: this one may have gone while the content was written.
        if (!isMissing(err) || !dir.startsWith(join(this.root, 'due'))) throw err
        await this.#bucketDir(Number(dir.slice(dir.lastIndexOf('/') + 1)))
        await rename(tmp, path)
      })
      await this.#sync.sync(dir)
      return { path, size }
    } catch (err) {
      await handle?.close().catch(() => {})
      await rm(tmp, { force: true })
      if (err instanceof SmtpError) throw err
      const code = (err as NodeJS.ErrnoException)?.code
      if (code === 'ENOSPC' || code === 'EDQUOT')
        throw new SmtpError(452, '4.3.1', 'Insufficient system storage', { reason: `queue ${this.root}: ${code}`, cause: err })
      if (code === 'EACCES' || code === 'EROFS' || code === 'EIO')
        throw new SmtpError(451, '4.3.0', 'Temporary local problem, please try again later', { reason: `queue ${this.root}: ${code}`, cause: err })
      throw err
    }
  }

  async claimDue(now: number, limit: number, skip: ReadonlySet<string>): Promise<ClaimedEntry[]> {
    const claimed: ClaimedEntry[] = []
    const buckets = (await readdir(join(this.root, 'due')).catch(() => [] as string[]))
      .map(Number)
      .filter((t) => Number.isFinite(t) && t <= now)
      .sort((a, b) => a - b)
    for (const bucket of buckets) {
      if (claimed.length >= limit) break
      const dir = join(this.root, 'due', String(bucket))
      const found = await this.#claimIn(dir, { kind: 'due', at: bucket }, limit - claimed.length, skip)
      claimed.push(...found.entries)
      if (found.empty && bucket + BUCKET <= now) await rmdir(dir).catch(() => {}) // an empty past bucket
    }
    return claimed
  }

  async claimWaiting(destination: string, limit: number, skip: ReadonlySet<string>): Promise<ClaimedEntry[]> {
    const dir = join(this.root, 'wait', waitKey(destination))
    return (await this.#claimIn(dir, { kind: 'waiting', destination }, limit, skip)).entries
  }

  async waitingDestinations(): Promise<string[]> {
    const keys = await readdir(join(this.root, 'wait')).catch(() => [] as string[])
    const names = await Promise.all(keys.map((key) => readFile(join(this.root, 'wait', key, '.destination'), 'utf8').catch(() => undefined)))
    return names.filter((n): n is string => n !== undefined)
  }

  /** Claims up to `limit` entries of one directory, streaming its listing. */
  async #claimIn(dir: string, place: EntryPlace, limit: number, skip: ReadonlySet<string>): Promise<{ entries: ClaimedEntry[]; empty: boolean }> {
    const entries: ClaimedEntry[] = []
    let seen = 0
    let handle: Awaited<ReturnType<typeof opendir>>
    try {
      handle = await opendir(dir)
    } catch (err) {
      if (isMissing(err)) return { entries, empty: false }
      throw err
    }
    try {
      for await (const item of handle) {
        if (item.name.startsWith('.')) continue
        seen++
        if (entries.length >= limit) break
        if (skip.has(item.name) || this.#claimed.has(item.name)) continue
        const entry = await this.#claim(join(dir, item.name), item.name, place)
        if (entry) entries.push(entry)
      }
    } finally {
      await handle.close().catch(() => {})
    }
    return { entries, empty: seen === 0 }
  }

  async #claim(path: string, id: string, place: EntryPlace): Promise<ClaimedEntry | undefined> {
    let handle: FileHandle
    try {
      handle = await open(path, 'r+')
    } catch (err) {
      if (isMissing(err)) return undefined // moved meanwhile
      throw err
    }
    let layout: EntryLayout
    try {
      layout = await readEntry(handle, true)
    } catch (err) {
      await handle.close()
      if (err instanceof CorruptEntry) await this.#quarantine(path, id, err.message)
      else throw err
      return undefined
    }
    this.#claimed.add(id)
    return new DirClaim(this, handle, path, layout, place)
  }

  async #quarantine(path: string, id: string, reason: string): Promise<void> {
    await rename(path, join(this.root, 'quarantine', `${id}.${Date.now()}`)).catch(() => {})
    this.#options.onCorrupt?.(id, reason)
  }

  /** @internal The path an entry goes to for `place`; creates its directory. */
  async pathFor(place: EntryPlace, id: string): Promise<string> {
    if (place.kind === 'due') return join(await this.#bucketDir(place.at), id)
    if (place.kind === 'held') return join(this.root, 'hold', id)
    const dir = join(this.root, 'wait', waitKey(place.destination))
    await mkdir(dir, { recursive: true })
    await writeFile(join(dir, '.destination'), place.destination, { flag: 'w' })
    return join(dir, id)
  }

  async #bucketDir(at: number): Promise<string> {
    const dir = join(this.root, 'due', String(at - (at % BUCKET)))
    try {
      await mkdir(dir)
      await this.#sync.sync(join(this.root, 'due')) // the new bucket's own entry
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    }
    return dir
  }

  /** @internal Forgets a claim. */
  unclaim(id: string): void {
    this.#claimed.delete(id)
  }

  /** @internal fsyncs a directory (group-committed). */
  syncDir(dir: string): Promise<void> {
    return this.#sync.sync(dir)
  }

  /** Where an entry is now: its path and place, or undefined. */
  /** @internal Where entry `id` is now, for a claim whose file moved. */
  locate(id: string): Promise<{ path: string; place: EntryPlace } | undefined> {
    return this.#find(id)
  }

  async #find(id: string): Promise<{ path: string; place: EntryPlace } | undefined> {
    if (!/^[A-Za-z0-9._-]+$/.test(id)) return undefined
    const held = join(this.root, 'hold', id)
    if (await exists(held)) return { path: held, place: { kind: 'held' } }
    for (const bucket of await readdir(join(this.root, 'due')).catch(() => [] as string[])) {
      const path = join(this.root, 'due', bucket, id)
      if (await exists(path)) return { path, place: { kind: 'due', at: Number(bucket) } }
    }
    for (const key of await readdir(join(this.root, 'wait')).catch(() => [] as string[])) {
      const path = join(this.root, 'wait', key, id)
      if (await exists(path)) {
        const destination = await readFile(join(this.root, 'wait', key, '.destination'), 'utf8').catch(() => key)
        return { path, place: { kind: 'waiting', destination } }
      }
    }
    return undefined
  }

  async claim(id: string): Promise<ClaimedEntry | undefined> {
    const found = await this.#find(id)
    if (!found || this.#claimed.has(id)) return undefined
    return this.#claim(found.path, id, found.place)
  }

  async flush(now: number): Promise<number> {
    // The running worker (maybe another process: the CLI) forgets its throttles when it sees this.
    await writeFile(join(this.root, '.flush'), String(now))
    const dir = await this.#bucketDir(now)
    const current = dir.slice(dir.lastIndexOf('/') + 1)
    const from = (await readdir(join(this.root, 'due')).catch(() => [] as string[]))
      .filter((b) => b !== current)
      .map((b) => join(this.root, 'due', b))
    for (const key of await readdir(join(this.root, 'wait')).catch(() => [] as string[])) from.push(join(this.root, 'wait', key))
    let moved = 0
    for (const source of from) {
      for (const name of await readdir(source).catch(() => [] as string[])) {
        if (name.startsWith('.')) continue
        await rename(join(source, name), join(dir, name)).then(
          () => moved++,
          (err: unknown) => {
            if (!isMissing(err)) throw err
          },
        )
      }
    }
    await this.#sync.sync(dir)
    return moved
  }

  async flushRequested(): Promise<boolean> {
    return unlink(join(this.root, '.flush')).then(
      () => true,
      () => false,
    )
  }

  async get(id: string): Promise<QueueEntry | undefined> {
    const found = await this.#find(id)
    return found && (await readAt(found.path, found.place))
  }

  async *list(): AsyncIterable<EntrySummary> {
    const dirs: Array<{ dir: string; place: EntryPlace }> = [{ dir: join(this.root, 'hold'), place: { kind: 'held' } }]
    for (const bucket of (await readdir(join(this.root, 'due')).catch(() => [] as string[])).sort()) {
      dirs.push({ dir: join(this.root, 'due', bucket), place: { kind: 'due', at: Number(bucket) } })
    }
    for (const key of await readdir(join(this.root, 'wait')).catch(() => [] as string[])) {
      const destination = await readFile(join(this.root, 'wait', key, '.destination'), 'utf8').catch(() => key)
      dirs.push({ dir: join(this.root, 'wait', key), place: { kind: 'waiting', destination } })
    }
    // An entry the worker moves while we read (due → waiting) could be met twice.
    const seen = new Set<string>()
    for (const { dir, place } of dirs) {
      const handle = await opendir(dir).catch(() => undefined)
      if (!handle) continue
      for await (const item of handle) {
        if (item.name.startsWith('.') || seen.has(item.name)) continue
        seen.add(item.name)
        const entry = await readAt(join(dir, item.name), place).catch(() => undefined)
        if (entry) yield summarizeEntry(entry)
      }
    }
  }

  async place(id: string, place: EntryPlace): Promise<boolean> {
    const found = await this.#find(id)
    if (!found) return false
    const target = await this.pathFor(place, id)
    try {
      await rename(found.path, target)
    } catch (err) {
      if (isMissing(err)) return false
      throw err
    }
    return true
  }

  async remove(id: string): Promise<boolean> {
    const found = await this.#find(id)
    if (!found) return false
    try {
      await unlink(found.path)
    } catch (err) {
      if (isMissing(err)) return false
      throw err
    }
    return true
  }

  /** Removes the lock, so that another process may open the directory. */
  async close(): Promise<void> {
    if (this.#locked) {
      await unlink(join(this.root, '.lock')).catch(() => {})
      OPEN_ROOTS.delete(this.#real)
    }
    this.#locked = false
  }
}

/** An entry a worker holds open: appends go to its file even if an operator renamed it meanwhile. */
class DirClaim implements ClaimedEntry {
  readonly header: EntryHeader
  readonly status
  readonly replies
  readonly attempts
  readonly handedOver
  readonly notified
  place: EntryPlace
  readonly #store: DirQueueStore
  readonly #handle: FileHandle
  #path: string
  readonly #contentStart: number
  readonly #contentEnd: number
  #journalEnd: number
  #closed = false

  constructor(store: DirQueueStore, handle: FileHandle, path: string, layout: EntryLayout, place: EntryPlace) {
    const state = entryState(layout.header, layout.records)
    this.header = state.header
    this.status = state.status
    this.replies = state.replies
    this.attempts = state.attempts
    this.handedOver = state.handedOver
    this.notified = state.notified
    this.place = place
    this.#store = store
    this.#handle = handle
    this.#path = path
    this.#contentStart = layout.contentStart
    this.#contentEnd = layout.contentEnd
    this.#journalEnd = layout.journalEnd
  }

  content(): Readable {
    // Positional reads on the claim's own handle: destroying a file stream would close the
    // handle under the claim (the journal is appended through it afterwards).
    const handle = this.#handle
    const start = this.#contentStart
    const end = this.#contentEnd
    return Readable.from(
      (async function* () {
        for (let at = start; at < end; ) {
          const buffer = Buffer.allocUnsafe(Math.min(CHUNK, end - at))
          const { bytesRead } = await handle.read(buffer, 0, buffer.length, at)
          if (!bytesRead) throw new CorruptEntry('content shorter than its size')
          at += bytesRead
          yield bytesRead === buffer.length ? buffer : buffer.subarray(0, bytesRead)
        }
      })(),
      { objectMode: false },
    )
  }

  async record(records: readonly JournalRecord[]): Promise<void> {
    const data = Buffer.from(records.map(recordLine).join(''))
    await writeAll(this.#handle, data, this.#journalEnd)
    this.#journalEnd += data.length
    await this.#handle.datasync()
  }

  async move(place: EntryPlace): Promise<boolean> {
    const target = await this.#store.pathFor(place, this.header.id)
    try {
      await rename(this.#path, target)
    } catch (err) {
      if (isMissing(err)) return (await this.release(), false)
      throw err
    }
    this.#path = target
    this.place = place
    await this.release()
    return true
  }

  async replace(header: EntryHeader, records: readonly JournalRecord[], place: EntryPlace): Promise<void> {
    const target = await this.#store.pathFor(place, header.id)
    const dir = target.slice(0, target.lastIndexOf('/'))
    await this.#store.writeEntry(header, this.content(), records, dir)
    // Renamed over this file if both are in the same place; else this one goes now (a crash in between leaves both: a repeat, never a loss).
    if (target !== this.#path) await unlink(this.#path).catch(() => {})
    this.#path = target
    this.place = place
    await this.release()
  }

  async finish(): Promise<void> {
    const gone = await unlink(this.#path).then(
      () => false,
      (err: unknown) => {
        if (!isMissing(err)) throw err
        return true
      },
    )
    // Moved while it was delivered (a flush, another process's hold): removed where it is now,
    // if that is still this file (not a requeued copy). The last outcome may be only in memory
    // (see the worker's record()), so leaving it would deliver it again.
    if (gone) await this.#removeMoved()
    const dir = this.#path.slice(0, this.#path.lastIndexOf('/'))
    await this.release()
    // The removal made durable too, so that a crash right after does not deliver it again.
    await this.#store.syncDir(dir).catch(() => {})
  }

  async #removeMoved(): Promise<void> {
    const found = await this.#store.locate(this.header.id)
    if (!found) return
    const [mine, theirs] = await Promise.all([this.#handle.stat(), stat(found.path).catch(() => undefined)])
    if (theirs && mine.ino === theirs.ino && mine.dev === theirs.dev) {
      await unlink(found.path).catch(() => {})
      this.#path = found.path
    }
  }

  async release(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#store.unclaim(this.header.id)
    await this.#handle.close()
  }
}

/**
 * Writes all of `data` at `position`. A write to a file system that is nearly full can write
 * part of it and succeed: only the next write fails (ENOSPC). Ignoring the count would leave a
 * file shorter than its header says, acknowledged.
 */
async function writeAll(handle: FileHandle, data: Buffer, position: number): Promise<void> {
  for (let done = 0; done < data.length; ) {
    const { bytesWritten } = await handle.write(data, done, data.length - done, position + done)
    if (!bytesWritten) throw Object.assign(new Error('no space left: nothing written'), { code: 'ENOSPC' })
    done += bytesWritten
  }
}

async function readAt(path: string, place: EntryPlace): Promise<QueueEntry | undefined> {
  const handle = await open(path, 'r').catch(() => undefined)
  if (!handle) return undefined
  try {
    const layout = await readEntry(handle)
    return { ...entryState(layout.header, layout.records), place }
  } catch (err) {
    if (err instanceof CorruptEntry) return undefined
    throw err
  } finally {
    await handle.close()
  }
}

function waitKey(destination: string): string {
  return createHash('sha256').update(destination).digest('hex').slice(0, 16)
}

async function exists(path: string): Promise<boolean> {
  return open(path, 'r').then(
    (h) => (void h.close(), true),
    () => false,
  )
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}
