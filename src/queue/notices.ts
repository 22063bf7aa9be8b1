/**
 * The notices the queue sends about its own entries: a failure DSN when recipients fail or
 * expire, a delay DSN once when delivery takes longer than the configured time, a success DSN
 * when the client asked NOTIFY=SUCCESS and the next hop did not take the request over. A notice
 * is an entry of the same queue (null sender, so it never gets a notice of its own), added before
 * the journal records that it exists: a crash in between sends it twice, never not at all.
 */
import { Readable } from 'node:stream'
import { HeaderBlock } from '../core/body/header-block.js'
import { splitHeader } from '../core/body/split-header.js'
import { createId } from '../core/message.js'
import type { Address } from '../core/types.js'
import { buildNotice, type NoticeRecipient } from '../delivery/dsn.js'
import type { ClaimedEntry, EntryHeader, QueueStore } from './types.js'

/** What a notice needs to know besides the entry. */
export interface NoticeContext {
  readonly store: QueueStore
  readonly hostname: string
  readonly now: () => number
  /** When the entry gives up (for a delay notice's Will-Retry-Until). */
  readonly retryUntil: number
}

const FULL_LIMIT = 100 * 1024

/** Reads the original header section (and, for RET=FULL, the whole message if it is small) of an entry. */
async function originalOf(entry: ClaimedEntry): Promise<{ headers: HeaderBlock; full?: Buffer }> {
  if (entry.header.original.mailFrom?.args?.RET === 'FULL' && entry.header.size <= FULL_LIMIT) {
    const chunks: Buffer[] = []
    for await (const chunk of entry.content()) chunks.push(chunk as Buffer)
    const full = Buffer.concat(chunks)
    const split = await splitHeader(Readable.from([full]), Infinity)
    return { headers: HeaderBlock.parse(split.head, split.separator), full }
  }
  const content = entry.content()
  try {
    const split = await splitHeader(content, 1024 * 1024)
    return { headers: HeaderBlock.parse(split.head, split.separator) }
  } finally {
    content.destroy()
  }
}

/**
 * Queues a notice of `kind` to the entry's sender about `recipients` (indexes into the entry's
 * recipients) and records it in the entry. Returns the notice's entry.
 */
export async function queueNotice(
  ctx: NoticeContext,
  entry: ClaimedEntry,
  kind: 'failure' | 'delay' | 'success',
  recipients: ReadonlyArray<{ readonly index: number; readonly notice: NoticeRecipient }>,
): Promise<AddedMessage> {
  const sender = entry.header.original.mailFrom ?? entry.header.from!
  const { headers, full } = await originalOf(entry)
  const dsn = buildNotice({
    id: entry.header.id,
    sender,
    recipients: recipients.map((r) => r.notice),
    reportingMta: ctx.hostname,
    headers,
    full,
    retryUntil: ctx.retryUntil,
  })
  const added = await addMessage(ctx, null, [dsn.to], Buffer.concat([dsn.headers.toBuffer(), dsn.body]), kind)
  await entry.record([{ type: 'notice', kind, recipients: recipients.map((r) => r.index), notice: added.header.id, at: ctx.now() }])
  return added
}

/** A message the queue added itself. */
export interface AddedMessage {
  readonly header: EntryHeader
}

/** Adds a message of the queue's own making (a notice, or a notice re-addressed to the postmaster). */
export async function addMessage(
  ctx: Pick<NoticeContext, 'store' | 'now'>,
  from: Address | null,
  to: readonly Address[],
  content: Buffer,
  notice?: EntryHeader['notice'],
): Promise<AddedMessage> {
  const id = createId()
  const header: EntryHeader = {
    id,
    created: ctx.now(),
    from,
    recipients: to.map((rcpt) => ({ rcpt })),
    original: { mailFrom: from, rcptTo: to },
    size: content.length,
    ...(notice ? { notice } : {}),
  }
  await ctx.store.add(header, Readable.from([content]))
  return { header }
}

/** The whole content of an entry, for re-addressing a notice (notices are small). */
export async function contentOf(entry: ClaimedEntry): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of entry.content()) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}
