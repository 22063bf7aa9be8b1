/**
 * The file of one queue entry: a fixed-width first line (magic, content size, header length), the
 * header as JSON, the message content, then the journal: one JSON record per line, appended and
 * fsync'd as outcomes are decided. One file per entry, so moving it (reschedule, hold) is one
 * atomic rename and finishing it one unlink, and the state can never be split from its message.
 *
 * A journal line cut short by a crash (its write was never acknowledged) is dropped when the file
 * is opened again; a first line or header that cannot be read makes the entry corrupt: the store
 * moves it to quarantine instead of delivering half of it.
 */
import type { FileHandle } from 'node:fs/promises'
import type { EntryHeader, EntrySummary, JournalRecord, QueueEntry, RecipientStatus } from './types.js'

const MAGIC = 'RELAYCHAIN-QUEUE 1'
/** `RELAYCHAIN-QUEUE 1 <size: 15 digits> <header bytes: 10 digits>\n` */
export const PREAMBLE_LENGTH = MAGIC.length + 1 + 15 + 1 + 10 + 1

/** A file that is not a readable queue entry. */
export class CorruptEntry extends Error {
  override readonly name = 'CorruptEntry'
}

/**
 * The preamble and header to write first. The content size lives only in the preamble's
 * fixed-width field (`sizeOffset`), patched in once the content is written; the JSON header
 * leaves it out.
 */
export function entryStart(header: Omit<EntryHeader, 'size'>): { head: Buffer; sizeOffset: number } {
  const { size: _size, ...rest } = header as EntryHeader
  const json = Buffer.from(`${JSON.stringify(rest)}\n`)
  const preamble = `${MAGIC} ${'0'.repeat(15)} ${String(json.length).padStart(10, '0')}\n`
  return { head: Buffer.concat([Buffer.from(preamble), json]), sizeOffset: MAGIC.length + 1 }
}

/** The size field, fixed width, for the offset `entryStart` gave. */
export function sizeField(size: number): Buffer {
  return Buffer.from(String(size).padStart(15, '0'))
}

/** Where the parts of an entry file are. */
export interface EntryLayout {
  readonly header: EntryHeader
  readonly contentStart: number
  readonly contentEnd: number
  /** Where the next journal record goes (after the last complete one). */
  readonly journalEnd: number
  readonly records: readonly JournalRecord[]
}

/**
 * Reads an entry file. A journal line cut short by a crash is ignored, and with `repair` (the
 * process that owns the queue, never a reader such as the CLI) truncated away before new
 * records are appended after it.
 */
export async function readEntry(handle: FileHandle, repair = false): Promise<EntryLayout> {
  const { size: fileSize } = await handle.stat()
  const pre = Buffer.alloc(PREAMBLE_LENGTH)
  if ((await handle.read(pre, 0, PREAMBLE_LENGTH, 0)).bytesRead < PREAMBLE_LENGTH) throw new CorruptEntry('file shorter than its first line')
  const match = /^RELAYCHAIN-QUEUE 1 (\d{15}) (\d{10})\n$/.exec(pre.toString('latin1'))
  if (!match) throw new CorruptEntry('not a queue entry (first line)')
  const size = Number(match[1])
  const headerLength = Number(match[2])
  const json = Buffer.alloc(headerLength)
  if ((await handle.read(json, 0, headerLength, PREAMBLE_LENGTH)).bytesRead < headerLength) throw new CorruptEntry('header cut short')
  let header: EntryHeader
  try {
    header = { ...(JSON.parse(json.toString('utf8')) as Omit<EntryHeader, 'size'>), size }
  } catch {
    throw new CorruptEntry('header is not JSON')
  }
  if (typeof header.id !== 'string' || !Array.isArray(header.recipients) || typeof header.created !== 'number')
    throw new CorruptEntry('header incomplete')
  const contentStart = PREAMBLE_LENGTH + headerLength
  const contentEnd = contentStart + size
  if (fileSize < contentEnd) throw new CorruptEntry('content cut short')
  const tail = Buffer.alloc(fileSize - contentEnd)
  await handle.read(tail, 0, tail.length, contentEnd)
  const lastNewline = tail.lastIndexOf(0x0a)
  const complete = lastNewline + 1
  if (repair && complete < tail.length) await handle.truncate(contentEnd + complete) // a torn last record
  const records: JournalRecord[] = []
  for (const line of tail.toString('utf8', 0, complete).split('\n')) {
    if (!line) continue
    try {
      records.push(JSON.parse(line) as JournalRecord)
    } catch {
      throw new CorruptEntry('journal record is not JSON')
    }
  }
  return { header, contentStart, contentEnd, journalEnd: contentEnd + complete, records }
}

/** A journal record as a line. */
export function recordLine(record: JournalRecord): string {
  return `${JSON.stringify(record)}\n`
}

/** The state an entry's header and journal add up to. */
export function entryState(header: EntryHeader, records: readonly JournalRecord[]): Omit<QueueEntry, 'place'> {
  const n = header.recipients.length
  const status: RecipientStatus[] = Array(n).fill('pending')
  const replies: (string | undefined)[] = Array(n).fill(undefined)
  const attempts: number[] = Array(n).fill(0)
  const notified = { failure: new Set<number>(), delay: new Set<number>(), success: new Set<number>() }
  const handedOver = new Set<number>()
  for (const record of records) {
    if (record.type === 'notice') {
      for (const i of record.recipients) notified[record.kind].add(i)
      continue
    }
    for (const i of record.recipients) {
      if (i < 0 || i >= n) continue
      status[i] = record.status
      replies[i] = record.reply
      attempts[i] = Math.max(attempts[i]!, record.attempt)
      if (record.dsn) handedOver.add(i)
    }
  }
  return { header, status, replies, attempts, handedOver, notified }
}

/** An entry as `list()` shows it: who, what and where, each recipient's state and last reply. */
export function summarizeEntry(entry: QueueEntry): EntrySummary {
  const { header } = entry
  return {
    id: header.id,
    created: header.created,
    size: header.size,
    from: header.from?.address ?? '<>',
    recipients: header.recipients.map((r, i) => ({
      address: r.rcpt.address,
      status: entry.status[i]!,
      ...(entry.replies[i] ? { reply: entry.replies[i]! } : {}),
    })),
    place: entry.place,
  }
}
