/**
 * The embedded event store: nothing to install. Events are appended as JSON lines to segment
 * files in a directory (`events-<offset>.jsonl`, a new segment every `segmentSize` bytes), with
 * a synchronous `write` per event (a killed process loses nothing it appended) and an
 * `fdatasync` at most every `syncInterval` ms (and on `flush()`/`close()`) for power loss.
 * Opening reads the segments once and rebuilds the in-memory indexes: the aggregates behind
 * `stats()`, and per message the positions of its events (`eventsOf()` reads only those) and its
 * context (Message-ID, sender, tags) for the events that follow acceptance.
 * Positions are global byte offsets: they are also the cursor webhooks read the log with.
 * A torn last line (a crash in the middle of a write) is cut off when the store opens.
 */
import { closeSync, fdatasyncSync, ftruncateSync, openSync, readSync, writeSync } from 'node:fs'
import { mkdir, open, readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { RelayError } from '../../core/errors.js'
import type { MessageContext } from '../events/from-delivery.js'
import type { ReportEvent } from '../events/types.js'
import { Aggregates, type StatsDimension, type StatsRow } from './aggregates.js'

/**
 * Options of {@link openEventStore}.
 *
 * @category Reporting
 */
export interface EventStoreOptions {
  /** The directory (created if missing); one store per directory. */
  readonly dir: string
  /** Bytes per segment file. Default 64 MiB. */
  readonly segmentSize?: number
  /** Most milliseconds between an append and its `fdatasync`. Default 200. */
  readonly syncInterval?: number
}

/**
 * A statistics query.
 *
 * @category Reporting
 */
export interface StatsQuery {
  /** The grouping. */
  readonly by: StatsDimension
  /** First day counted, `YYYY-MM-DD` (UTC). Default: the first. */
  readonly since?: string
  /** Last day counted, inclusive. Default: the last. */
  readonly until?: string
}

/**
 * The event store: append, aggregate queries, the events of a message, and reading the log in order.
 *
 * @category Reporting
 */
export interface EventStore {
  /** Appends an event (written before this returns) and updates the indexes. */
  append(event: ReportEvent): void
  /** Counts and rates per day, sender domain, tag or recipient domain. */
  stats(query: StatsQuery): StatsRow[]
  /** The events of one message, by queue id or Message-ID, oldest first. */
  eventsOf(id: string): Promise<ReportEvent[]>
  /** What is known about the message with this queue id (from its `accepted` event). */
  contextOf(queueId: string): MessageContext | undefined
  /** The queue id of the message with this Message-ID (angle brackets optional). */
  queueIdOf(messageId: string): string | undefined
  /** The time of the first `delivered` event for this message and recipient, if any. */
  deliveredAt(queueId: string, recipient: string): number | undefined
  /** The position after the last event: where a reader that is up to date stands. */
  readonly end: number
  /** Up to `max` events from `position` on, the position after each (`ends`), and after them all (`next`). */
  read(
    position: number,
    max: number,
  ): Promise<{
    /** The events read, oldest first; fewer than `max` at the end of the log. */
    events: ReportEvent[]
    /** The position after each event, index for index. */
    ends: number[]
    /** The position after the last event read: where the next read starts. */
    next: number
  }>
  /** Calls `listener` after every append; returns the function that removes it. */
  onAppend(listener: (event: ReportEvent) => void): () => void
  /** Syncs what was appended to disk. */
  flush(): Promise<void>
  /** Syncs to disk and closes the log; a later `append` throws. */
  close(): Promise<void>
}

interface Segment {
  readonly start: number
  readonly path: string
  size: number
}

interface MessageIndex {
  context: MessageContext
  /** Position and length of each event, flattened. */
  positions: number[]
  delivered?: Map<string, number>
}

const SEGMENT = /^events-(\d{16})\.jsonl$/

function bareId(messageId: string): string {
  return messageId.trim().replace(/^<|>$/g, '').toLowerCase()
}

/**
 * Opens (or creates) an event store in a directory.
 *
 * @example
 * ```ts
 * const store = await openEventStore({ dir: '/var/lib/relay/events' })
 * for (const row of store.stats({ by: 'tag', since: '2026-12-01' })) console.log(row.key, row.bounceRate)
 * console.log(await store.eventsOf('<20261202.1234@news.example.com>'))
 * ```
 *
 * @category Reporting
 */
export async function openEventStore(options: EventStoreOptions): Promise<EventStore> {
  const segmentSize = options.segmentSize ?? 64 * 1024 * 1024
  const syncInterval = options.syncInterval ?? 200
  await mkdir(options.dir, { recursive: true })
  const segments: Segment[] = (await readdir(options.dir))
    .map((name) => SEGMENT.exec(name))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ start: Number(m[1]), path: join(options.dir, m[0]), size: 0 }))
    .sort((a, b) => a.start - b.start)
  const aggregates = new Aggregates()
  const messages = new Map<string, MessageIndex>()
  const byMessageId = new Map<string, string>()
  const listeners = new Set<(event: ReportEvent) => void>()

  function index(event: ReportEvent, position: number, length: number): void {
    aggregates.add(event)
    const queueId = event.queueId
    if (!queueId) return
    let entry = messages.get(queueId)
    if (!entry) {
      entry = { context: { tags: event.tags }, positions: [] }
      messages.set(queueId, entry)
    }
    entry.positions.push(position, length)
    if (event.type === 'accepted') {
      entry.context = {
        ...(event.messageId ? { messageId: event.messageId } : {}),
        ...(event.sender ? { sender: event.sender } : {}),
        tags: event.tags,
      }
      if (event.messageId) byMessageId.set(bareId(event.messageId), queueId)
    } else if (event.type === 'delivered') {
      entry.delivered ??= new Map()
      if (!entry.delivered.has(event.recipient.toLowerCase())) entry.delivered.set(event.recipient.toLowerCase(), event.time)
    }
  }

  // Rebuild: read every segment, cut a torn last line.
  for (const segment of segments) {
    const data = await readFile(segment.path)
    let at = 0
    for (let nl = data.indexOf(10); nl >= 0; nl = data.indexOf(10, at)) {
      try {
        index(JSON.parse(data.toString('utf8', at, nl)) as ReportEvent, segment.start + at, nl + 1 - at)
      } catch (error) {
        throw new RelayError('ERR_RELAY_INVALID_OPTION', `event store ${segment.path}: unreadable event at byte ${at}`, { cause: error })
      }
      at = nl + 1
    }
    segment.size = at
    if (at < data.length) {
      const handle = await open(segment.path, 'r+')
      await handle.truncate(at)
      await handle.close()
    }
  }
  if (!segments.length) segments.push({ start: 0, path: join(options.dir, name(0)), size: 0 })
  let current = segments[segments.length - 1]!
  let fd = openSync(current.path, 'a+')
  ftruncateSync(fd, current.size)
  let dirty = false
  let timer: NodeJS.Timeout | undefined
  let closed = false

  function sync(): void {
    if (timer) clearTimeout(timer)
    timer = undefined
    if (dirty) fdatasyncSync(fd)
    dirty = false
  }

  function segmentAt(position: number): Segment | undefined {
    for (let i = segments.length - 1; i >= 0; i--) if (segments[i]!.start <= position) return segments[i]
    return undefined
  }

  function readOne(position: number, length: number): ReportEvent {
    const segment = segmentAt(position)!
    const buffer = Buffer.alloc(length)
    const rfd = segment === current ? fd : openSync(segment.path, 'r')
    try {
      readSync(rfd, buffer, 0, length, position - segment.start)
    } finally {
      if (rfd !== fd) closeSync(rfd)
    }
    return JSON.parse(buffer.toString('utf8')) as ReportEvent
  }

  /** Reads whole lines from position on, up to `max` events; `ends` holds the position after each. */
  function readLines(position: number, max: number): { events: ReportEvent[]; ends: number[]; next: number } {
    const events: ReportEvent[] = []
    const ends: number[] = []
    let at = position
    while (events.length < max) {
      const segment = segmentAt(at)
      if (!segment) break
      const offset = at - segment.start
      if (offset >= segment.size) {
        const following = segments[segments.indexOf(segment) + 1]
        if (!following) break
        at = following.start
        continue
      }
      const length = Math.min(segment.size - offset, 256 * 1024)
      const buffer = Buffer.alloc(length)
      const rfd = segment === current ? fd : openSync(segment.path, 'r')
      try {
        readSync(rfd, buffer, 0, length, offset)
      } finally {
        if (rfd !== fd) closeSync(rfd)
      }
      let start = 0
      for (let nl = buffer.indexOf(10); nl >= 0 && events.length < max; nl = buffer.indexOf(10, start)) {
        events.push(JSON.parse(buffer.toString('utf8', start, nl)) as ReportEvent)
        start = nl + 1
        ends.push(at + start)
      }
      if (start === 0) throw new RelayError('ERR_RELAY_INVALID_OPTION', `event store: an event over 256 KiB at ${at}`)
      at += start
    }
    return { events, ends, next: at }
  }

  return {
    append(event) {
      if (closed) throw new RelayError('ERR_RELAY_TRANSACTION_STATE', 'event store is closed')
      const line = `${JSON.stringify(event)}\n`
      const length = Buffer.byteLength(line)
      if (current.size > 0 && current.size + length > segmentSize) {
        sync()
        closeSync(fd)
        current = { start: current.start + current.size, path: '', size: 0 }
        ;(current as { path: string }).path = join(options.dir, name(current.start))
        segments.push(current)
        fd = openSync(current.path, 'a+')
      }
      const position = current.start + current.size
      const written = writeSync(fd, line)
      if (written !== length) {
        // A short write (a full disk, a signal): write the rest, or fail before indexing.
        const rest = Buffer.from(line).subarray(written)
        for (let at = 0; at < rest.length; ) at += writeSync(fd, rest, at)
      }
      current.size += length
      index(event, position, length)
      dirty = true
      timer ??= setTimeout(sync, syncInterval).unref()
      for (const listener of listeners) listener(event)
    },
    stats: (query) => aggregates.query(query.by, query.since, query.until),
    async eventsOf(id) {
      const queueId = messages.has(id) ? id : byMessageId.get(bareId(id))
      const entry = queueId ? messages.get(queueId) : undefined
      if (!entry) return []
      const events: ReportEvent[] = []
      for (let i = 0; i < entry.positions.length; i += 2) events.push(readOne(entry.positions[i]!, entry.positions[i + 1]!))
      return events
    },
    contextOf: (queueId) => messages.get(queueId)?.context,
    queueIdOf: (messageId) => byMessageId.get(bareId(messageId)),
    deliveredAt: (queueId, recipient) => messages.get(queueId)?.delivered?.get(recipient.toLowerCase()),
    get end() {
      return current.start + current.size
    },
    read: async (position, max) => readLines(position, max),
    onAppend(listener) {
      listeners.add(listener)
      return () => listeners.delete(listener)
    },
    async flush() {
      sync()
    },
    async close() {
      if (closed) return
      sync()
      closed = true
      closeSync(fd)
    },
  }
}

function name(start: number): string {
  return `events-${String(start).padStart(16, '0')}.jsonl`
}
