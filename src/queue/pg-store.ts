/**
 * The queue store on PostgreSQL, shared by every relay node that points at the same database:
 *
 *   entries      one row per message: header (envelope, client), size, where it is (due at a
 *                time, waiting for a destination, held) and its lease (who works on it, until when)
 *   chunks       the content in pieces of `chunkSize` bytes, streamed in and out
 *   recipients   one row per recipient: status, attempts, last reply (for SQL inspection)
 *   journal      the entry's records, in order (its state is header + journal, as on disk)
 *
 * `add()` resolves once the transaction has committed (PostgreSQL's `synchronous_commit` decides
 * durability: leave it on); the client's 250 comes after that. A worker claims due entries with
 * `FOR UPDATE SKIP LOCKED` and a lease it renews while it works; a node that dies stops renewing
 * and its entries become claimable by any other node once the lease has run out: nothing is
 * pinned to a node. Every change a worker makes is fenced by its claim's token, so a node whose
 * lease was taken over cannot move or remove the entry under the new holder (at-least-once: the
 * attempt under way at a death may be repeated).
 *
 * PostgreSQL down: `add()` fails with `451 4.3.0` (the client keeps the message and retries), the
 * worker's scans fail and are retried at its poll interval; nothing committed is lost.
 */
import { hostname } from 'node:os'
import type { Readable } from 'node:stream'
import { RelayError, SmtpError } from '../core/errors.js'
import type { Clock } from '../shared/clock.js'
import { type Duration, toMs } from '../shared/duration.js'
import { checkOut, createPool, ident, inTransaction, type PgClient, type PgConnectOptions, type PgPool } from '../shared/pg/driver.js'
import { type MigrationResult, migrate } from '../shared/pg/migrate.js'
import type { DestinationGate, DestinationLimits } from './destinations.js'
import { entryState, summarizeEntry } from './entry-file.js'
import { PgClaim, placeColumns } from './pg-claim.js'
import { SharedDestinations } from './pg-destinations.js'
import { QUEUE_FEATURE, QUEUE_MIGRATIONS } from './pg-schema.js'
import { SweepGate, tokenPrefix } from './pg-sweep.js'
import type { ClaimedEntry, EntryHeader, EntryPlace, EntrySummary, JournalRecord, QueueEntry, QueueStore } from './types.js'

/**
 * Options of {@link pgStore}: a `connectionString` (the store makes its pool) or a `pool` of yours.
 *
 * @category Queue
 */
export interface PgStoreOptions {
  /** `postgres://user:password@host:port/database` */
  connectionString?: string
  /** A `pg.Pool` of the application's (not ended by `close()`). */
  pool?: PgPool
  /** Connections of the store's own pool. Default 10. */
  maxConnections?: number
  /** The PostgreSQL schema of the queue's tables. Default `relaychain`. */
  schema?: string
  /** How long a claim lasts without renewal: a node that dies releases its work after this. Default `'60s'`. */
  lease?: Duration
  /** Bytes per content chunk. Default 256 KiB. */
  chunkSize?: number
  /** Runs the schema migrations on open. Default true (else: `relaychain db migrate --pg URL`). */
  migrate?: boolean
  /** This node's name in leases (SQL inspection). Default `<hostname>:<pid>`. */
  node?: string
  /** Errors of idle connections (PostgreSQL restarted); the pool replaces them. */
  onError?: (err: Error) => void
}

interface EntryRow {
  id: string
  header: EntryHeader
  size: string
  chunks: number
  place: string
  due_at: string | null
  destination: string | null
  lease_token?: string | null
}

const SUMMARY_PAGE = 200

/**
 * The PostgreSQL queue store; see the file header.
 *
 * @example
 * ```ts
 * const queue = durableQueue({
 *   store: pgStore({ connectionString: process.env.DATABASE_URL }),
 *   deliver: smtpTransport({ host: 'smarthost.example', pool: false }),
 *   destinations: { concurrency: 10 }, // across all nodes on this database
 * })
 * ```
 *
 * @category Queue
 */
export function pgStore(options: PgStoreOptions): PgQueueStore {
  return new PgQueueStore(options)
}

/**
 * The PostgreSQL store.
 *
 * @category Queue
 */
export class PgQueueStore implements QueueStore {
  /** The quoted schema, for SQL. */
  readonly s: string
  /** The PostgreSQL schema of the tables. */
  readonly schema: string
  /** This node's name in leases. */
  readonly node: string
  /** The lease, in ms. */
  readonly lease: number
  /** Bytes per content chunk. */
  readonly chunkSize: number
  readonly #options: PgStoreOptions
  #pool: PgPool | undefined
  #ready: Promise<PgPool> | undefined
  #generation = -1
  #heartbeat: NodeJS.Timeout | undefined
  /** @internal Claims of this store under way: their leases are renewed together. */
  readonly claims = new Set<PgClaim>()
  /** Claims and the heartbeat's sweep of leases nobody here holds (see `pg-sweep.ts`). */
  readonly #gate = new SweepGate()
  /** The start of every lease token of this store. */
  readonly #prefix = tokenPrefix()
  readonly #destinations = new Set<SharedDestinations>()
  /** What the migrations did on open. */
  migration: MigrationResult | undefined

  constructor(options: PgStoreOptions) {
    if (!options.connectionString === !options.pool)
      throw new RelayError('ERR_RELAY_INVALID_OPTION', 'pgStore needs connectionString or pool (one of them)')
    this.#options = options
    this.schema = options.schema ?? 'relaychain'
    this.s = ident(this.schema)
    this.node = options.node ?? `${hostname()}:${process.pid}`
    this.lease = toMs(options.lease ?? '60s', 'lease')
    this.chunkSize = options.chunkSize ?? 256 * 1024
  }

  describe(): string {
    const where = this.#options.connectionString ? redact(this.#options.connectionString) : 'pool'
    return `pg ${where} schema ${this.schema}`
  }

  /** The pool, connected and migrated (once). */
  pool(): Promise<PgPool> {
    this.#ready ??= (async () => {
      const pool =
        this.#options.pool ??
        (await createPool(
          {
            connectionString: this.#options.connectionString!,
            ...(this.#options.maxConnections ? { max: this.#options.maxConnections } : {}),
          } as PgConnectOptions,
          'pgStore',
          (err) => this.#options.onError?.(err),
        ))
      this.#pool = pool
      try {
        if (this.#options.migrate !== false) this.migration = await migrate(pool, this.schema, QUEUE_FEATURE, QUEUE_MIGRATIONS)
      } catch (err) {
        this.#ready = undefined // PostgreSQL down at start: the next call tries again
        throw err
      }
      return pool
    })()
    return this.#ready
  }

  async open(): Promise<void> {
    const pool = await this.pool()
    this.#generation = await this.#flushGeneration(pool)
    clearInterval(this.#heartbeat)
    this.#heartbeat = setInterval(() => void this.#renew().catch(() => {}), Math.max(50, Math.min(5000, Math.floor(this.lease / 3)))).unref()
  }

  /**
   * Renews the leases of this store's claims and destination slots (one statement each), then
   * gives back leases of this store that no claim holds: those whose release failed or whose
   * claim lost its answer while PostgreSQL went away.
   */
  async #renew(): Promise<void> {
    const pool = await this.pool()
    const held = () => [...this.claims].map((c) => c.token)
    if (this.claims.size)
      await pool.query(`UPDATE ${this.s}.entries SET lease_until = now() + $2 * interval '1 millisecond' WHERE lease_token = ANY($1::text[])`, [
        held(),
        this.lease,
      ])
    await this.#gate.sweep(async () => {
      await pool.query(
        `UPDATE ${this.s}.entries SET lease_token = NULL, lease_owner = NULL, lease_until = NULL
         WHERE lease_token IS NOT NULL AND starts_with(lease_token, $1) AND lease_token <> ALL($2::text[])`,
        [this.#prefix, held()],
      )
    })
    for (const d of this.#destinations) await d.renew()
  }

  /**
   * Per-destination limits shared by every node on this database (the queue uses them instead of
   * its in-process ones).
   */
  destinations(limits: DestinationLimits, clock: Clock, onUp: (name: string) => void): DestinationGate {
    const shared = new SharedDestinations(this, limits, clock, onUp)
    this.#destinations.add(shared)
    return shared
  }

  async add(header: EntryHeader, content: Readable, options: { records?: readonly JournalRecord[]; at?: number } = {}): Promise<number> {
    const records = options.records ?? []
    const at = options.at ?? header.created
    const chunks: Buffer[] = []
    let pending = 0
    let size = 0
    let written = 0
    let tx: { client: PgClient; done: (err?: Error) => Promise<void> } | undefined
    const s = this.s
    try {
      for await (const piece of content as AsyncIterable<Buffer>) {
        chunks.push(piece)
        pending += piece.length
        size += piece.length
        while (pending >= this.chunkSize) {
          // A large message: a transaction of its own, one chunk at a time (memory does not grow with it).
          tx ??= await this.#begin(header, at)
          const all = Buffer.concat(chunks)
          await tx.client.query(`INSERT INTO ${s}.chunks (entry_id, seq, data) VALUES ($1, $2, $3)`, [
            header.id,
            written++,
            all.subarray(0, this.chunkSize),
          ])
          chunks.length = 0
          if (all.length > this.chunkSize) chunks.push(all.subarray(this.chunkSize))
          pending = all.length - this.chunkSize
        }
      }
      const rest = pending ? Buffer.concat(chunks) : undefined
      const stored: EntryHeader = { ...header, size }
      const state = entryState(stored, records)
      const recipientValues = [stored.recipients.map((r) => r.rcpt.address), state.status, state.attempts, state.replies.map((r) => r ?? null)]
      if (!tx) {
        // The common case, one chunk at most: one statement, one round trip, committed when it returns.
        await (await this.pool()).query(
          `WITH e AS (INSERT INTO ${s}.entries (id, created, sender, size, chunks, header, place, due_at) VALUES ($1, $2, $3, $4, $5, $6, 'due', $7) RETURNING id),
           c AS (INSERT INTO ${s}.chunks (entry_id, seq, data) SELECT $1, 0, $8::bytea WHERE $8::bytea IS NOT NULL),
           r AS (INSERT INTO ${s}.recipients (entry_id, idx, address, status, attempts, reply)
                 SELECT $1, (t.ord - 1)::int, t.a, t.st, t.n, t.re FROM unnest($9::text[], $10::text[], $11::int[], $12::text[]) WITH ORDINALITY AS t(a, st, n, re, ord)),
           j AS (INSERT INTO ${s}.journal (entry_id, record) SELECT $1, t.r FROM jsonb_array_elements($13::jsonb) WITH ORDINALITY AS t(r, ord) ORDER BY t.ord)
           SELECT id FROM e`,
          [
            header.id,
            header.created,
            header.from?.address ?? '',
            size,
            rest ? 1 : 0,
            stored,
            at,
            rest ?? null,
            ...recipientValues,
            JSON.stringify(records),
          ],
        )
        return size
      }
      if (rest) await tx.client.query(`INSERT INTO ${s}.chunks (entry_id, seq, data) VALUES ($1, $2, $3)`, [header.id, written++, rest])
      await tx.client.query(`UPDATE ${s}.entries SET size = $2, chunks = $3, header = $4 WHERE id = $1`, [header.id, size, written, stored])
      await tx.client.query(
        `INSERT INTO ${s}.recipients (entry_id, idx, address, status, attempts, reply)
         SELECT $1, (t.ord - 1)::int, t.a, t.st, t.n, t.re FROM unnest($2::text[], $3::text[], $4::int[], $5::text[]) WITH ORDINALITY AS t(a, st, n, re, ord)`,
        [header.id, ...recipientValues],
      )
      if (records.length)
        await tx.client.query(
          `INSERT INTO ${s}.journal (entry_id, record) SELECT $1, t.r FROM jsonb_array_elements($2::jsonb) WITH ORDINALITY AS t(r, ord) ORDER BY t.ord`,
          [header.id, JSON.stringify(records)],
        )
      const open = tx
      tx = undefined
      await open.done()
      return size
    } catch (err) {
      await tx?.done(err as Error).catch(() => {})
      if (err instanceof SmtpError) throw err
      throw new SmtpError(451, '4.3.0', 'Temporary local problem, please try again later', {
        reason: `queue ${this.describe()}: ${(err as Error).message}`,
        cause: err,
      })
    }
  }

  /** Starts the transaction of a large entry: its row first, invisible to others until COMMIT. */
  async #begin(header: EntryHeader, at: number) {
    const { client, release } = await checkOut(await this.pool())
    try {
      await client.query('BEGIN')
      await client.query(
        `INSERT INTO ${this.s}.entries (id, created, sender, size, chunks, header, place, due_at) VALUES ($1, $2, $3, 0, 0, $4, 'due', $5)`,
        [header.id, header.created, header.from?.address ?? '', header, at],
      )
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {})
      release(true)
      throw err
    }
    return {
      client,
      async done(err?: Error) {
        try {
          await client.query(err ? 'ROLLBACK' : 'COMMIT')
          release()
        } catch (e) {
          release(true)
          throw e
        }
      },
    }
  }

  /** Claims rows `where` (parameters from $4 on), at most `limit`, none of `skip`. */
  #claimWhere(where: string, values: unknown[], limit: number, skip: ReadonlySet<string>, order = 'due_at'): Promise<ClaimedEntry[]> {
    return this.#gate.claim(async () => {
      const pool = await this.pool()
      const { rows } = await pool.query<EntryRow>(
        `WITH c AS (
         SELECT id FROM ${this.s}.entries
         WHERE ${where} AND (lease_until IS NULL OR lease_until < now()) AND id <> ALL($1::text[])
         ORDER BY ${order} LIMIT $2 FOR UPDATE SKIP LOCKED)
       UPDATE ${this.s}.entries e SET lease_token = '${this.#prefix}' || gen_random_uuid()::text, lease_owner = $3, lease_until = now() + ${this.lease} * interval '1 millisecond'
       FROM c WHERE e.id = c.id
       RETURNING e.id, e.header, e.size, e.chunks, e.place, e.due_at, e.destination, e.lease_token`,
        [[...skip], limit, this.node, ...values],
      )
      if (!rows.length) return []
      const journals = await this.#journals(rows.map((r) => r.id))
      return rows.map(
        (row) => new PgClaim(this, row.lease_token!, { ...entryState(row.header, journals.get(row.id) ?? []), place: placeOf(row) }, row.chunks),
      )
    })
  }

  async #journals(ids: readonly string[]): Promise<Map<string, JournalRecord[]>> {
    const out = new Map<string, JournalRecord[]>()
    if (!ids.length) return out
    const { rows } = await (await this.pool()).query<{ entry_id: string; record: JournalRecord }>(
      `SELECT entry_id, record FROM ${this.s}.journal WHERE entry_id = ANY($1::text[]) ORDER BY entry_id, seq`,
      [ids],
    )
    for (const row of rows) {
      let list = out.get(row.entry_id)
      if (!list) out.set(row.entry_id, (list = []))
      list.push(row.record)
    }
    return out
  }

  claimDue(now: number, limit: number, skip: ReadonlySet<string>): Promise<ClaimedEntry[]> {
    return this.#claimWhere(`place = 'due' AND due_at <= $4`, [now], limit, skip)
  }

  claimWaiting(destination: string, limit: number, skip: ReadonlySet<string>): Promise<ClaimedEntry[]> {
    return this.#claimWhere(`place = 'waiting' AND destination = $4`, [destination], limit, skip, 'created')
  }

  async claim(id: string): Promise<ClaimedEntry | undefined> {
    const [entry] = await this.#claimWhere('id = $4', [id], 1, new Set())
    return entry
  }

  async waitingDestinations(): Promise<string[]> {
    const { rows } = await (await this.pool()).query<{ destination: string }>(
      `SELECT DISTINCT destination FROM ${this.s}.entries WHERE place = 'waiting' AND destination IS NOT NULL`,
    )
    return rows.map((r) => r.destination)
  }

  async flush(now: number): Promise<number> {
    const { rows } = await (await this.pool()).query<{ moved: string }>(
      `WITH m AS (UPDATE ${this.s}.entries SET place = 'due', due_at = $1, destination = NULL WHERE place IN ('due', 'waiting') RETURNING 1),
            g AS (UPDATE ${this.s}.flushes SET generation = generation + 1)
       SELECT count(*) AS moved FROM m`,
      [now],
    )
    return Number(rows[0]!.moved)
  }

  async #flushGeneration(pool: PgPool): Promise<number> {
    const { rows } = await pool.query<{ generation: string }>(`SELECT generation FROM ${this.s}.flushes WHERE id = 1`)
    return Number(rows[0]?.generation ?? 0)
  }

  async flushRequested(): Promise<boolean> {
    const generation = await this.#flushGeneration(await this.pool())
    if (this.#generation < 0) this.#generation = generation // not opened: every flush from now on
    if (generation === this.#generation) return false
    this.#generation = generation
    return true
  }

  async get(id: string): Promise<QueueEntry | undefined> {
    const { rows } = await (await this.pool()).query<EntryRow>(
      `SELECT id, header, size, chunks, place, due_at, destination FROM ${this.s}.entries WHERE id = $1`,
      [id],
    )
    const row = rows[0]
    if (!row) return undefined
    const journal = (await this.#journals([id])).get(id) ?? []
    return { ...entryState(row.header, journal), place: placeOf(row) }
  }

  async *list(): AsyncIterable<EntrySummary> {
    // Pages in id order: memory holds one page, whatever the size of the queue.
    let after = ''
    for (;;) {
      const { rows } = await (await this.pool()).query<EntryRow>(
        `SELECT id, header, size, chunks, place, due_at, destination FROM ${this.s}.entries WHERE id > $1 ORDER BY id LIMIT ${SUMMARY_PAGE}`,
        [after],
      )
      if (!rows.length) return
      const journals = await this.#journals(rows.map((r) => r.id))
      for (const row of rows) yield summarizeEntry({ ...entryState(row.header, journals.get(row.id) ?? []), place: placeOf(row) })
      after = rows.at(-1)!.id
    }
  }

  async place(id: string, place: EntryPlace): Promise<boolean> {
    // The lease stays (a worker on it keeps it from others until it runs out) but its token goes:
    // that worker can no longer move or remove the entry.
    const { rowCount } = await (await this.pool()).query(
      `UPDATE ${this.s}.entries SET place = $2, due_at = $3, destination = $4, lease_token = NULL WHERE id = $1`,
      [id, ...placeColumns(place)],
    )
    return rowCount === 1
  }

  async remove(id: string): Promise<boolean> {
    const { rowCount } = await (await this.pool()).query(`DELETE FROM ${this.s}.entries WHERE id = $1`, [id])
    return rowCount === 1
  }

  /** @internal Runs `work` in a transaction. */
  async transaction<T>(work: Parameters<typeof inTransaction<T>>[1]): Promise<T> {
    return inTransaction(await this.pool(), work)
  }

  async close(): Promise<void> {
    clearInterval(this.#heartbeat)
    this.#heartbeat = undefined
    for (const d of this.#destinations) await d.close()
    const pool = this.#pool
    this.#pool = undefined
    this.#ready = undefined
    if (pool && !this.#options.pool) await pool.end()
  }
}

function placeOf(row: EntryRow): EntryPlace {
  if (row.place === 'held') return { kind: 'held' }
  if (row.place === 'waiting') return { kind: 'waiting', destination: row.destination ?? '' }
  return { kind: 'due', at: Number(row.due_at) }
}

/** A connection string without its password, for logs. */
function redact(url: string): string {
  return url.replace(/(\/\/[^:/@]+):[^@]*@/, '$1:***@')
}
