/**
 * Per-destination limits shared by every node on one PostgreSQL (see `destinations.ts` for the
 * in-process ones and what they mean):
 *
 * - Concurrency: a delivery holds one of `concurrency` numbered slots of its destination, a row
 *   of `destination_slots` with a lease the store renews while the delivery runs. A slot is taken
 *   with an insert that only overwrites an expired lease, so however many nodes try, no more than
 *   `concurrency` deliveries to one destination run at once anywhere; a node that dies holds its
 *   slots until their leases run out (its connections died with it). All nodes must be configured
 *   with the same `concurrency`.
 * - The dead-destination throttle: a row of `destinations` says until when it is throttled and
 *   its backoff; one probe at a time across all nodes (a probe token with a lease). Each node
 *   reads the table at its poll interval, so a destination found dead by one node is left alone
 *   by all, and one that answered again drains everywhere.
 *
 * Waiting for a slot costs one query per destination and node per `slotRetry` ms (one local
 * pump per destination hands slots to that node's waiters in order), not one per waiting entry.
 */
import { randomUUID } from 'node:crypto'
import type { Clock } from '../shared/clock.js'
import type { DestinationGate, DestinationLimits } from './destinations.js'
import type { PgQueueStore } from './pg-store.js'
import { SweepGate, tokenPrefix } from './pg-sweep.js'

interface Throttle {
  downUntil: number
  backoff: number
  /** Another node (or this one) probes it now. */
  probing: boolean
}

interface Slot {
  readonly destination: string
  readonly slot: number
  readonly token: string
}

interface Waiting {
  readonly waiters: Array<(slot: Slot | undefined) => void>
  pumping: boolean
  wake: (() => void) | undefined
}

/** How long a node waits before it asks again for a slot of a full destination, in ms. */
const SLOT_RETRY = 100

export class SharedDestinations implements DestinationGate {
  readonly #store: PgQueueStore
  readonly #limits: Required<DestinationLimits>
  readonly #clock: Clock
  readonly #onUp: (name: string) => void
  readonly #throttles = new Map<string, Throttle>()
  readonly #held = new Set<Slot>()
  readonly #waiting = new Map<string, Waiting>()
  /** Probes this node runs: destination → token. */
  readonly #probes = new Map<string, string>()
  readonly #writes = new Set<Promise<unknown>>()
  /** Slot and probe claims, and the renewal's sweep of those nobody here holds (see `pg-sweep.ts`). */
  readonly #gate = new SweepGate()
  /** The start of every slot and probe token of this node. */
  readonly #prefix = tokenPrefix()
  #closed = false

  constructor(store: PgQueueStore, limits: DestinationLimits, clock: Clock, onUp: (name: string) => void) {
    this.#store = store
    this.#limits = { concurrency: limits.concurrency ?? 5, backoff: limits.backoff ?? 60_000, maxBackoff: limits.maxBackoff ?? 3_600_000 }
    this.#clock = clock
    this.#onUp = onUp
  }

  blocked(name: string): boolean {
    const t = this.#throttles.get(name)
    return !!t && t.downUntil > 0 && (t.probing || t.downUntil > this.#clock())
  }

  assumeDown(name: string): void {
    if (this.#throttles.get(name)?.downUntil) return
    const now = this.#clock()
    this.#throttles.set(name, { downUntil: now, backoff: this.#limits.backoff, probing: false })
    this.#write(`INSERT INTO ${this.#store.s}.destinations (name, down_until, backoff) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING`, [
      name,
      now,
      this.#limits.backoff,
    ])
  }

  probesDue(): string[] {
    const now = this.#clock()
    return [...this.#throttles].filter(([, t]) => t.downUntil > 0 && !t.probing && t.downUntil <= now).map(([name]) => name)
  }

  async acquire(name: string): Promise<((answered: boolean) => void) | undefined> {
    if (this.#closed) return undefined
    const t = this.#throttles.get(name)
    if (t && t.downUntil > 0) return this.#probe(name, t)
    const slot = await this.#slot(name)
    if (!slot) return undefined
    return this.#releaser(slot, (answered) => {
      if (!answered) this.#down(name)
    })
  }

  /** One probe of a throttled destination, if no node probes it now. */
  async #probe(name: string, t: Throttle): Promise<((answered: boolean) => void) | undefined> {
    if (t.probing || t.downUntil > this.#clock()) return undefined
    const token = this.#prefix + randomUUID()
    const took = await this.#gate.claim(async () => {
      const pool = await this.#store.pool()
      const { rowCount } = await pool.query(
        `UPDATE ${this.#store.s}.destinations SET probe_token = $2, probe_until = now() + $4 * interval '1 millisecond'
         WHERE name = $1 AND down_until > 0 AND down_until <= $3 AND (probe_until IS NULL OR probe_until < now())`,
        [name, token, this.#clock(), this.#store.lease],
      )
      if (rowCount === 1) this.#probes.set(name, token)
      return rowCount === 1
    })
    t.probing = true // if not ours, someone else's (until the next sync says otherwise)
    if (!took) return undefined
    const slot = await this.#take(name).catch(() => undefined)
    if (!slot) {
      this.#probes.delete(name)
      t.probing = false
      this.#write(`UPDATE ${this.#store.s}.destinations SET probe_token = NULL, probe_until = NULL WHERE name = $1 AND probe_token = $2`, [
        name,
        token,
      ])
      return undefined
    }
    return this.#releaser(slot, (answered) => {
      this.#probes.delete(name)
      t.probing = false
      if (answered) return this.#up(name)
      t.backoff = Math.min(t.backoff * 2, this.#limits.maxBackoff)
      t.downUntil = this.#clock() + t.backoff
      this.#write(
        `UPDATE ${this.#store.s}.destinations SET backoff = $3, down_until = $4, probe_token = NULL, probe_until = NULL WHERE name = $1 AND probe_token = $2`,
        [name, token, t.backoff, t.downUntil],
      )
    })
  }

  /** The release function of a slot: frees it, then `after(answered)`; once. */
  #releaser(slot: Slot, after: (answered: boolean) => void): (answered: boolean) => void {
    let done = false
    return (answered) => {
      if (done) return
      done = true
      this.#held.delete(slot)
      after(answered)
      this.#write(`DELETE FROM ${this.#store.s}.destination_slots WHERE destination = $1 AND slot = $2 AND token = $3`, [
        slot.destination,
        slot.slot,
        slot.token,
      ]).then(() => {
        // If PostgreSQL was unreachable, the next renewal that gets through frees it (else its lease).
        this.#waiting.get(slot.destination)?.wake?.()
      })
    }
  }

  /** A delivery got no answer: the first one throttles the destination for every node. */
  #down(name: string): void {
    const t = this.#throttles.get(name)
    if (t && t.downUntil > 0) return
    const downUntil = this.#clock() + this.#limits.backoff
    this.#throttles.set(name, { downUntil, backoff: this.#limits.backoff, probing: false })
    this.#write(
      `INSERT INTO ${this.#store.s}.destinations (name, down_until, backoff) VALUES ($1, $2, $3)
       ON CONFLICT (name) DO UPDATE SET down_until = EXCLUDED.down_until, backoff = EXCLUDED.backoff WHERE destinations.down_until = 0`,
      [name, downUntil, this.#limits.backoff],
    )
    // Whoever waits for a slot of a dead destination waits in vain: their mail waits.
    const w = this.#waiting.get(name)
    for (const waiter of w?.waiters.splice(0) ?? []) waiter(undefined)
  }

  #up(name: string): void {
    const wasDown = (this.#throttles.get(name)?.downUntil ?? 0) > 0
    this.#throttles.delete(name)
    this.#write(`UPDATE ${this.#store.s}.destinations SET down_until = 0, backoff = $2, probe_token = NULL, probe_until = NULL WHERE name = $1`, [
      name,
      this.#limits.backoff,
    ])
    if (wasDown) this.#onUp(name)
  }

  /** Waits for a slot of `name` (the local pump asks the database); undefined if it went down or the queue closes. */
  #slot(name: string): Promise<Slot | undefined> {
    let w = this.#waiting.get(name)
    if (!w) this.#waiting.set(name, (w = { waiters: [], pumping: false, wake: undefined }))
    const got = new Promise<Slot | undefined>((resolve) => w.waiters.push(resolve))
    if (w.pumping) w.wake?.()
    else void this.#pump(name, w)
    return got
  }

  async #pump(name: string, w: Waiting): Promise<void> {
    w.pumping = true
    try {
      while (w.waiters.length && !this.#closed) {
        if (this.blocked(name) || (this.#throttles.get(name)?.downUntil ?? 0) > 0) {
          for (const waiter of w.waiters.splice(0)) waiter(undefined)
          break
        }
        let slot: Slot | undefined
        try {
          slot = await this.#take(name)
        } catch {
          // PostgreSQL unreachable: nobody can deliver safely; the entries are retried later.
          for (const waiter of w.waiters.splice(0)) waiter(undefined)
          break
        }
        if (slot) {
          const waiter = w.waiters.shift()
          if (waiter) waiter(slot)
          else this.#releaser(slot, () => {})(true)
          continue
        }
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, SLOT_RETRY + Math.floor(Math.random() * SLOT_RETRY))
          w.wake = () => (clearTimeout(timer), resolve())
        })
        w.wake = undefined
      }
    } finally {
      w.pumping = false
      for (const waiter of this.#closed ? w.waiters.splice(0) : []) waiter(undefined)
    }
  }

  /** Takes a free slot (or one whose lease ran out) of `name`; undefined if all are taken. */
  #take(name: string): Promise<Slot | undefined> {
    return this.#gate.claim(() => this.#takeFree(name))
  }

  async #takeFree(name: string): Promise<Slot | undefined> {
    const s = this.#store.s
    const pool = await this.#store.pool()
    // A free number picked at random can be taken by another node between the look and the
    // insert: then the insert changes nothing and we look again (a few times before waiting).
    for (let attempt = 0; attempt < 3; attempt++) {
      const token = this.#prefix + randomUUID()
      const { rows } = await pool.query<{ slot: number }>(
        `WITH free AS (
           SELECT n FROM generate_series(0, $2::int - 1) AS n
           WHERE NOT EXISTS (SELECT 1 FROM ${s}.destination_slots d WHERE d.destination = $1 AND d.slot = n AND d.lease_until > now())
           ORDER BY random() LIMIT 1)
         INSERT INTO ${s}.destination_slots (destination, slot, token, owner, lease_until)
         SELECT $1, n, $3, $4, now() + $5 * interval '1 millisecond' FROM free
         ON CONFLICT (destination, slot) DO UPDATE SET token = EXCLUDED.token, owner = EXCLUDED.owner, lease_until = EXCLUDED.lease_until
           WHERE destination_slots.lease_until <= now()
         RETURNING slot`,
        [name, this.#limits.concurrency, token, this.#store.node, this.#store.lease],
      )
      if (rows[0]) {
        const slot = { destination: name, slot: rows[0].slot, token }
        this.#held.add(slot)
        return slot
      }
      const { rows: full } = await pool.query<{ n: string }>(
        `SELECT count(*) AS n FROM ${s}.destination_slots WHERE destination = $1 AND lease_until > now()`,
        [name],
      )
      if (Number(full[0]!.n) >= this.#limits.concurrency) return undefined
    }
    return undefined
  }

  reset(): void {
    const down = [...this.#throttles].filter(([, t]) => t.downUntil > 0).map(([name]) => name)
    this.#throttles.clear()
    this.#write(
      `UPDATE ${this.#store.s}.destinations SET down_until = 0, backoff = $1, probe_token = NULL, probe_until = NULL WHERE down_until > 0`,
      [this.#limits.backoff],
    )
    for (const name of down) this.#onUp(name)
  }

  async sync(): Promise<void> {
    const pool = await this.#store.pool()
    const { rows } = await pool.query<{ name: string; down_until: string; backoff: string; probing: boolean }>(
      `SELECT name, down_until, backoff, coalesce(probe_until > now(), false) AS probing FROM ${this.#store.s}.destinations WHERE down_until > 0`,
    )
    const seen = new Set<string>()
    for (const row of rows) {
      seen.add(row.name)
      const probing = row.probing || this.#probes.has(row.name)
      this.#throttles.set(row.name, { downUntil: Number(row.down_until), backoff: Number(row.backoff), probing })
    }
    for (const [name, t] of [...this.#throttles]) {
      if (seen.has(name) || t.downUntil === 0) continue
      // Another node found it answering again (or an operator flushed): its backlog drains here too.
      this.#throttles.delete(name)
      this.#onUp(name)
    }
  }

  /**
   * Renews the leases of the slots this node holds, then frees the slots and probes of this node
   * that nothing holds: their release failed, or their claim lost its answer, while PostgreSQL
   * was unreachable.
   */
  async renew(): Promise<void> {
    const pool = await this.#store.pool()
    const s = this.#store.s
    const held = () => [...this.#held].map((slot) => slot.token)
    if (this.#held.size)
      await pool.query(`UPDATE ${s}.destination_slots SET lease_until = now() + $2 * interval '1 millisecond' WHERE token = ANY($1::text[])`, [
        held(),
        this.#store.lease,
      ])
    await this.#gate.sweep(async () => {
      const freed = await pool.query(`DELETE FROM ${s}.destination_slots WHERE starts_with(token, $1) AND token <> ALL($2::text[])`, [
        this.#prefix,
        held(),
      ])
      await pool.query(
        `UPDATE ${s}.destinations SET probe_token = NULL, probe_until = NULL WHERE starts_with(probe_token, $1) AND probe_token <> ALL($2::text[])`,
        [this.#prefix, [...this.#probes.values()]],
      )
      if (freed.rowCount) for (const w of this.#waiting.values()) w.wake?.()
    })
  }

  /** Lets every waiter go (the queue closes) and waits for the writes under way. */
  async close(): Promise<void> {
    this.#closed = true
    for (const w of this.#waiting.values()) {
      for (const waiter of w.waiters.splice(0)) waiter(undefined)
      w.wake?.()
    }
    await Promise.allSettled([...this.#writes])
  }

  /** A write whose result nobody waits for (the release functions are synchronous); failures are left to the leases. */
  #write(sql: string, values: unknown[]): Promise<boolean> {
    const p = this.#store
      .pool()
      .then((pool) => pool.query(sql, values))
      .then(
        () => true,
        () => false,
      )
    this.#writes.add(p)
    void p.finally(() => this.#writes.delete(p))
    return p
  }
}
