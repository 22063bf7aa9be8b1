/**
 * An entry a worker claimed from the PostgreSQL store (`pg-store.ts`). Its lease is renewed by
 * the store while the claim is open; every move, replacement and removal names the claim's
 * token, so it does nothing once the lease went to another node or an operator moved the entry
 * (the call then reports the entry as gone). Journal records are appended in any case: they are
 * facts about deliveries that happened.
 */
import { Readable } from 'node:stream'
import { entryState } from './entry-file.js'
import type { PgQueueStore } from './pg-store.js'
import type { ClaimedEntry, EntryHeader, EntryPlace, JournalRecord, QueueEntry, RecipientStatus } from './types.js'

const FOREIGN_KEY_VIOLATION = '23503'

export class PgClaim implements ClaimedEntry {
  readonly header: EntryHeader
  readonly status
  readonly replies
  readonly attempts
  readonly handedOver
  readonly notified
  place: EntryPlace
  readonly token: string
  readonly #store: PgQueueStore
  readonly #chunks: number
  /** Recipient state as records are appended (the rows of `recipients` follow it). */
  readonly #now: { status: RecipientStatus[]; attempts: number[]; replies: (string | undefined)[] }
  #closed = false

  constructor(store: PgQueueStore, token: string, entry: QueueEntry, chunks: number) {
    this.header = entry.header
    this.status = entry.status
    this.replies = entry.replies
    this.attempts = entry.attempts
    this.handedOver = entry.handedOver
    this.notified = entry.notified
    this.place = entry.place
    this.token = token
    this.#store = store
    this.#chunks = chunks
    this.#now = { status: [...entry.status], attempts: [...entry.attempts], replies: [...entry.replies] }
    store.claims.add(this)
  }

  content(): Readable {
    const store = this.#store
    const id = this.header.id
    return chunkReader(async (seq) => {
      const { rows } = await (await store.pool()).query<{ data: Buffer }>(`SELECT data FROM ${store.s}.chunks WHERE entry_id = $1 AND seq = $2`, [
        id,
        seq,
      ])
      if (!rows[0]) throw new Error(`queue entry ${id}: content chunk ${seq} is missing`)
      return rows[0].data
    }, this.#chunks)
  }

  async record(records: readonly JournalRecord[]): Promise<void> {
    const changed = new Set<number>()
    for (const record of records) {
      if (record.type !== 'outcome') continue
      for (const i of record.recipients) {
        if (i < 0 || i >= this.#now.status.length) continue
        this.#now.status[i] = record.status
        this.#now.replies[i] = record.reply
        this.#now.attempts[i] = Math.max(this.#now.attempts[i]!, record.attempt)
        changed.add(i)
      }
    }
    const idx = [...changed]
    const s = this.#store.s
    try {
      // One statement: the records and the recipient rows they change commit together.
      await (await this.#store.pool()).query(
        `WITH j AS (INSERT INTO ${s}.journal (entry_id, record) SELECT $1, t.r FROM jsonb_array_elements($2::jsonb) WITH ORDINALITY AS t(r, ord)
                    WHERE EXISTS (SELECT 1 FROM ${s}.entries WHERE id = $1) ORDER BY t.ord RETURNING 1),
              u AS (UPDATE ${s}.recipients p SET status = v.st, attempts = v.n, reply = v.re
                    FROM unnest($3::int[], $4::text[], $5::int[], $6::text[]) AS v(i, st, n, re) WHERE p.entry_id = $1 AND p.idx = v.i)
         SELECT count(*) FROM j`,
        [
          this.header.id,
          JSON.stringify(records),
          idx,
          idx.map((i) => this.#now.status[i]),
          idx.map((i) => this.#now.attempts[i]),
          idx.map((i) => this.#now.replies[i] ?? null),
        ],
      )
    } catch (err) {
      // Deleted by an operator meanwhile: as with a file unlinked under its open handle, the records go nowhere.
      if ((err as { code?: string }).code !== FOREIGN_KEY_VIOLATION) throw err
    }
  }

  async move(place: EntryPlace): Promise<boolean> {
    const { rowCount } = await (await this.#store.pool())
      .query(
        `UPDATE ${this.#store.s}.entries SET place = $3, due_at = $4, destination = $5, lease_token = NULL, lease_owner = NULL, lease_until = NULL
       WHERE id = $1 AND lease_token = $2`,
        [this.header.id, this.token, ...placeColumns(place)],
      )
      .finally(() => this.#close()) // unreachable: the heartbeat's sweep gives it back
    if (rowCount !== 1) return false
    this.place = place
    return true
  }

  async replace(header: EntryHeader, records: readonly JournalRecord[], place: EntryPlace): Promise<void> {
    const s = this.#store.s
    const state = entryState(header, records)
    try {
      await this.#store.transaction(async (client) => {
        const { rowCount } = await client.query(
          `UPDATE ${s}.entries SET header = $3, place = $4, due_at = $5, destination = $6, lease_token = NULL, lease_owner = NULL, lease_until = NULL
           WHERE id = $1 AND lease_token = $2`,
          [header.id, this.token, { ...header, size: this.header.size }, ...placeColumns(place)],
        )
        if (rowCount !== 1) return
        await client.query(`DELETE FROM ${s}.journal WHERE entry_id = $1`, [header.id])
        await client.query(
          `INSERT INTO ${s}.journal (entry_id, record) SELECT $1, t.r FROM jsonb_array_elements($2::jsonb) WITH ORDINALITY AS t(r, ord) ORDER BY t.ord`,
          [header.id, JSON.stringify(records)],
        )
        await client.query(
          `UPDATE ${s}.recipients p SET status = v.st, attempts = v.n, reply = v.re
           FROM unnest($2::text[], $3::int[], $4::text[]) WITH ORDINALITY AS v(st, n, re, ord) WHERE p.entry_id = $1 AND p.idx = v.ord - 1`,
          [header.id, state.status, state.attempts, state.replies.map((r) => r ?? null)],
        )
      })
      this.place = place
    } finally {
      this.#close()
    }
  }

  async finish(): Promise<void> {
    try {
      await (await this.#store.pool()).query(`DELETE FROM ${this.#store.s}.entries WHERE id = $1 AND lease_token = $2`, [this.header.id, this.token])
    } finally {
      this.#close()
    }
  }

  async release(): Promise<void> {
    if (this.#closed) return
    this.#close() // if the update fails, the heartbeat's sweep gives the lease back
    await (await this.#store.pool()).query(
      `UPDATE ${this.#store.s}.entries SET lease_token = NULL, lease_owner = NULL, lease_until = NULL WHERE id = $1 AND lease_token = $2`,
      [this.header.id, this.token],
    )
  }

  #close(): void {
    this.#closed = true
    this.#store.claims.delete(this)
  }
}

/** The columns `place`, `due_at`, `destination` of a place. */
export function placeColumns(place: EntryPlace): [string, number | null, string | null] {
  if (place.kind === 'due') return ['due', place.at, null]
  if (place.kind === 'waiting') return ['waiting', null, place.destination]
  return ['held', null, null]
}

/** A readable of `count` chunks, each read when the consumer wants it. */
function chunkReader(read: (seq: number) => Promise<Buffer>, count: number): Readable {
  return Readable.from(
    (async function* () {
      for (let seq = 0; seq < count; seq++) yield await read(seq)
    })(),
    { objectMode: false },
  )
}
