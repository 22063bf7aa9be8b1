/**
 * The contracts of the durable queue. A store keeps queue entries (a message, its envelope and
 * the state of each recipient) durably; the queue's worker takes due entries from it, delivers
 * them through an after-queue chain and records every outcome in the store before any notice
 * about it leaves. The directory store (`dir-store.ts`) is the embedded default; a shared store
 * (PostgreSQL) implements the same interface.
 *
 * Guarantees a store gives (and the tests hold it to, with SIGKILL at every step):
 * - `add()` resolves only once the entry is durable (fsync'd); a crash before that leaves
 *   nothing, or an entry the client was not told about (delivered at least once, never half).
 * - `record()` resolves only once the records are durable; an entry's state is its header plus
 *   every record, in order.
 * - An entry is in exactly one place: due at a time, waiting for a destination, or held.
 */
import type { Readable } from 'node:stream'
import type { Address, Envelope } from '../core/types.js'
import type { Clock } from '../shared/clock.js'
import type { DestinationGate, DestinationLimits } from './destinations.js'

/**
 * Where a recipient stands. `pending` until an attempt decides; the others are final but `deferred`.
 *
 * @category Queue
 */
export type RecipientStatus = 'pending' | 'deferred' | 'delivered' | 'failed' | 'expired'

/**
 * One recipient of a queue entry: as the after-queue chain delivers to it (its ORCPT names it as the client gave it).
 *
 * @category Queue
 */
export interface QueuedRecipient {
  /** The recipient as the after-queue chain delivers to it, with its ESMTP parameters (`NOTIFY`, `ORCPT`). */
  readonly rcpt: Address
}

/**
 * What is written when an entry is added, and never changes.
 *
 * @category Queue
 */
export interface EntryHeader {
  /** The queue id (the transaction id of the 250 reply). */
  readonly id: string
  /** Milliseconds since the epoch when the client got its 250. */
  readonly created: number
  /** The envelope sender; `null` for the null sender. */
  readonly from: Address | null
  /** The recipients, in order; journal records name them by index. */
  readonly recipients: readonly QueuedRecipient[]
  /** The envelope as the client sent it. */
  readonly original: Envelope
  /** Bytes of the message content. */
  readonly size: number
  /** Who sent it, for logs, traces and Received fields. */
  readonly client?: {
    /** The client's IP address. */
    readonly ip: string
    /** The session id of its connection. */
    readonly session: string
    /** The listener it connected to. */
    readonly listener: string
    /** The login name, if it authenticated. */
    readonly user?: string
  }
  /** Set on notices (DSNs) the queue made itself: they never get a notice of their own. */
  readonly notice?: 'failure' | 'delay' | 'success'
  /** When an operator requeued it (its retry schedule and lifetime start again from here). */
  readonly requeued?: number
}

/**
 * One record of an entry's journal.
 *
 * @category Queue
 */
export type JournalRecord =
  | {
      /** An attempt's outcome for some recipients. */
      readonly type: 'outcome'
      /** Indexes into `recipients`. */
      readonly recipients: readonly number[]
      /** What became of them. */
      readonly status: Exclude<RecipientStatus, 'pending'>
      /** When, in milliseconds since the epoch. */
      readonly at: number
      /** The attempt number (1 for the first delivery attempt). */
      readonly attempt: number
      /** The next hop's reply, or ours. */
      readonly reply: string
      /** The next hop (see `Transport.destinationOf`). */
      readonly destination?: string
      /** The next hop supports DSN and took the request over (no success notice of ours). */
      readonly dsn?: boolean
    }
  /** A notice (DSN) about these recipients is queued as entry `notice`. */
  | {
      /** A notice was queued. */
      readonly type: 'notice'
      /** Which notice: failure, delay or success ("relayed"). */
      readonly kind: 'failure' | 'delay' | 'success'
      /** Indexes into `recipients` of the recipients it reports on. */
      readonly recipients: readonly number[]
      /** The notice's own queue id. */
      readonly notice: string
      /** When, in milliseconds since the epoch. */
      readonly at: number
    }

/**
 * An entry as the worker sees it: header, and the state its journal adds up to.
 *
 * @category Queue
 */
export interface QueueEntry {
  /** What was written when the entry was added. */
  readonly header: EntryHeader
  /** Each recipient's status, by index into `header.recipients`. */
  readonly status: readonly RecipientStatus[]
  /** The last reply each recipient got. */
  readonly replies: readonly (string | undefined)[]
  /** Attempts each recipient has had. */
  readonly attempts: readonly number[]
  /** Delivered recipients whose next hop took the DSN request over. */
  readonly handedOver: ReadonlySet<number>
  /** Recipients whose notice (by kind) is queued. */
  readonly notified: {
    /** Recipients a failure notice reports. */
    readonly failure: ReadonlySet<number>
    /** Recipients a delay notice reports. */
    readonly delay: ReadonlySet<number>
    /** Recipients a success ("relayed") notice reports. */
    readonly success: ReadonlySet<number>
  }
  /** Where the entry is now. */
  readonly place: EntryPlace
}

/**
 * Where an entry is: due from a time on, waiting for a destination to answer again, or held.
 *
 * @category Queue
 */
export type EntryPlace =
  | {
      /** Due for an attempt. */
      readonly kind: 'due'
      /** From when, in milliseconds since the epoch. */
      readonly at: number
    }
  | {
      /** Waiting for a throttled destination to answer again. */
      readonly kind: 'waiting'
      /** Which one (see `Transport.destinationOf`). */
      readonly destination: string
    }
  | {
      /** Held: not delivered until released. */
      readonly kind: 'held'
    }

/**
 * An entry a worker took: read it, append to it, move or finish it.
 *
 * @category Queue
 */
export interface ClaimedEntry extends QueueEntry {
  /** The message content (header section and body). */
  content(): Readable
  /** Appends records durably. */
  record(records: readonly JournalRecord[]): Promise<void>
  /** Moves the entry; false if it is gone (deleted or held by an operator meanwhile). */
  move(place: EntryPlace): Promise<boolean>
  /** Writes the entry anew with `header` and `records` (the same content) and puts it at `place`: an operator's requeue. */
  replace(header: EntryHeader, records: readonly JournalRecord[], place: EntryPlace): Promise<void>
  /** Removes the entry: every recipient is final and every notice queued. */
  finish(): Promise<void>
  /** Gives the entry back without a change (another worker may take it). */
  release(): Promise<void>
}

/**
 * A summary for listings (`relaychain queue list`).
 *
 * @category Queue
 */
export interface EntrySummary {
  /** The queue id. */
  readonly id: string
  /** Milliseconds since the epoch when the client got its 250. */
  readonly created: number
  /** Bytes of the message content. */
  readonly size: number
  /** The envelope sender; `<>` for the null sender. */
  readonly from: string
  /** Each recipient with its status and last reply. */
  readonly recipients: readonly {
    /** The recipient's address. */
    readonly address: string
    /** Where it stands. */
    readonly status: RecipientStatus
    /** The last reply it got, if it had an attempt. */
    readonly reply?: string
  }[]
  /** Where the entry is now. */
  readonly place: EntryPlace
}

/**
 * Where queue entries live.
 *
 * @category Queue
 */
export interface QueueStore {
  /** What it is, for logs: `dir /var/spool/relaychain`. */
  describe(): string
  /** Takes the store for this process (the directory store refuses a second one: `ERR_RELAY_QUEUE_LOCKED`). */
  open(): Promise<void>
  /** Adds an entry (due at `options.at`, default `header.created`); resolves with its size once it is durable. Removes every trace if `content` fails. */
  add(header: EntryHeader, content: Readable, options?: { readonly records?: readonly JournalRecord[]; readonly at?: number }): Promise<number>
  /** Takes one entry by id wherever it is (for an operator's delete or requeue); undefined if there is none or it is being worked on. */
  claim(id: string): Promise<ClaimedEntry | undefined>
  /** Makes every entry due now, waiting ones too, and asks the worker to forget its throttles; returns how many moved. */
  flush(now: number): Promise<number>
  /** True once after each `flush()` (possibly another process's): the worker then resets its throttles. */
  flushRequested(): Promise<boolean>
  /** Entries due at `now`, at most `limit`, none of `skip` (the ones being worked on). */
  claimDue(now: number, limit: number, skip: ReadonlySet<string>): Promise<ClaimedEntry[]>
  /** Up to `limit` entries waiting for `destination`, to probe it or wake them. */
  claimWaiting(destination: string, limit: number, skip: ReadonlySet<string>): Promise<ClaimedEntry[]>
  /** The destinations entries wait for. */
  waitingDestinations(): Promise<string[]>
  /** One entry by id, wherever it is. */
  get(id: string): Promise<QueueEntry | undefined>
  /** Every entry, streamed (memory does not grow with the queue). */
  list(): AsyncIterable<EntrySummary>
  /** Moves an entry (hold, release, requeue); false if there is no such entry. */
  place(id: string, place: EntryPlace): Promise<boolean>
  /** Removes an entry; false if there is none. */
  remove(id: string): Promise<boolean>
  /** Gives the store up (the directory store removes its lock). */
  close(): Promise<void>
  /**
   * Per-destination limits kept by the store for every process that uses it (a shared store);
   * without it the queue keeps them in process.
   */
  destinations?(limits: DestinationLimits, clock: Clock, onUp: (name: string) => void): DestinationGate
}
