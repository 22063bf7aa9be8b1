/**
 * The queue's worker: the second ingress of the engine. It takes due entries from the store,
 * groups each entry's open recipients by next hop, and delivers every group as a transaction of
 * the after-queue chain (`begin()` → `addRecipient()` → `data()`), like the SMTP listener does
 * for a client. Per recipient, a 2xx delivers, a 4xx (or no answer) defers, a 5xx fails.
 *
 * Order, so that nothing is lost and nothing reported is untrue: the outcome of an attempt is
 * recorded durably before anything else happens (a recipient recorded delivered is never tried
 * again); a notice is queued before its own record; the entry is moved (due later, waiting for
 * its next hop) or removed last. A crash anywhere repeats at most the attempt that was under way.
 *
 * Only the entries being worked on are in memory (at most `activeLimit`); the rest stay on disk.
 */

import { setMaxListeners } from 'node:events'
import { sameAddress } from '../core/address.js'
import { SmtpError, toSmtpError } from '../core/errors.js'
import type { Pipeline } from '../core/pipeline.js'
import type { Session, Transaction } from '../core/types.js'
import { wants } from '../delivery/dsn.js'
import type { DeliveryEvents, EventSession } from '../delivery/events.js'
import type { Clock } from '../shared/clock.js'
import type { DestinationGate } from './destinations.js'
import { addMessage, contentOf, queueNotice } from './notices.js'
import type { RetrySchedule } from './schedule.js'
import type { ClaimedEntry, EntryHeader, EntryPlace, JournalRecord, QueueStore, RecipientStatus } from './types.js'

/** What the worker works with. */
export interface WorkerContext {
  readonly store: QueueStore
  /** The after-queue chain. */
  readonly chain: Pipeline
  readonly schedule: RetrySchedule
  readonly destinations: DestinationGate
  readonly clock: Clock
  readonly events: DeliveryEvents
  /** The reporting MTA of notices. */
  readonly hostname: string
  /** Where a notice that cannot be delivered goes; without it, such a notice is held. */
  readonly postmaster?: string | undefined
  /** Entries worked on at once. */
  readonly activeLimit: number
  /** Recipients per delivery transaction. */
  readonly recipientsPerDelivery: number
  /** How often the store is looked at for due entries when nothing else wakes the worker. */
  readonly pollInterval: number
  /** Runs before each poll (the queue checks for an operator's flush). */
  readonly onPoll?: () => Promise<void>
}

/** What one attempt decided for one recipient. */
interface Result {
  readonly index: number
  readonly status: Exclude<RecipientStatus, 'pending' | 'expired'>
  readonly reply: string
  readonly dsn: boolean
}

const ENHANCED = /^[245]\d\d[ -]([245]\.\d{1,3}\.\d{1,3})\b/

/** The enhanced status code of a reply, or `fallback`. */
function statusOf(reply: string | undefined, fallback: string): string {
  return (reply && ENHANCED.exec(reply)?.[1]) || fallback
}

/** The session the after-queue chain sees: the client's, as recorded when the message was queued. */
function sessionOf(header: EntryHeader): Session {
  const client = header.client
  return {
    id: client?.session ?? 'queue',
    listener: client?.listener ?? 'queue',
    remoteAddress: client?.ip ?? '',
    remotePort: 0,
    localAddress: '',
    localPort: 0,
    clientHostname: client ? `[${client.ip}]` : '',
    heloName: '',
    secure: false,
    ...(client?.user ? { user: client.user } : {}),
  }
}

/** The event session of an entry. */
export function eventSessionOf(header: EntryHeader): EventSession {
  const c = header.client
  if (!c) return { id: 'queue', client: '', listener: 'queue' }
  return c.user ? { id: c.session, client: c.ip, listener: c.listener, user: c.user } : { id: c.session, client: c.ip, listener: c.listener }
}

/** The worker; see the file header. */
export class QueueWorker {
  readonly #ctx: WorkerContext
  /** Entries being worked on, by id. */
  readonly #active = new Map<string, Promise<void>>()
  /** Destinations that answered again: their waiting entries are woken as there is room. */
  readonly #draining = new Set<string>()
  readonly #stop = new AbortController()
  #timer: NodeJS.Timeout | undefined
  #ticking: Promise<number> | undefined
  #again = false
  #started = false
  /** Entries taken so far. */
  #taken = 0

  constructor(ctx: WorkerContext) {
    // Every delivery under way listens to it (up to activeLimit at once): not a leak.
    setMaxListeners(0, this.#stop.signal)
    this.#ctx = ctx
  }

  /** Marks a destination that answered again, so its waiting entries drain. */
  destinationUp(name: string): void {
    this.#draining.add(name)
    this.kick()
  }

  /** Entries being worked on now. */
  get active(): number {
    return this.#active.size
  }

  /** Starts working: the state of destinations died with the last process, so every one that entries wait for is probed. */
  async start(): Promise<void> {
    if (this.#started) return
    this.#started = true
    for (const destination of await this.#ctx.store.waitingDestinations()) this.#ctx.destinations.assumeDown(destination)
    this.kick()
  }

  /** Looks at the store again soon (a new entry, a finished one, an operator's flush). */
  kick(): void {
    if (!this.#started || this.#stop.signal.aborted) return
    if (this.#ticking) {
      this.#again = true
      return
    }
    clearTimeout(this.#timer)
    this.#timer = setTimeout(() => void this.tick(), 0)
  }

  /** One look at the store: starts work on what is due, up to the active limit. Resolves with how many entries it took. */
  tick(): Promise<number> {
    if (this.#ticking) {
      this.#again = true
      return this.#ticking
    }
    clearTimeout(this.#timer)
    this.#ticking = this.#claim()
      .catch((error: unknown) => {
        this.#ctx.events.emit({ type: 'error', time: this.#ctx.clock(), message: `queue ${this.#ctx.store.describe()}: scan failed`, error })
        return 0
      })
      .finally(() => {
        this.#ticking = undefined
        if (this.#stop.signal.aborted) return
        if (this.#again) {
          this.#again = false
          this.kick()
        } else this.#timer = setTimeout(() => void this.#poll(), this.#ctx.pollInterval).unref()
      })
    return this.#ticking
  }

  async #poll(): Promise<void> {
    await this.#ctx.onPoll?.().catch(() => {})
    await this.tick()
  }

  /** Resolves once no entry is being worked on. */
  async idle(): Promise<void> {
    while (this.#active.size || this.#ticking) await Promise.allSettled([...this.#active.values(), this.#ticking])
  }

  /** Stops taking work; waits up to `timeout` ms for the work under way, then aborts it (those entries are tried again after a restart). */
  async stop(timeout: number): Promise<void> {
    this.#started = false
    clearTimeout(this.#timer)
    let timer: NodeJS.Timeout | undefined
    const deadline = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeout).unref()))
    await Promise.race([Promise.allSettled([this.#ticking, ...this.#active.values()]), deadline])
    clearTimeout(timer)
    this.#stop.abort(new Error('the queue is closing'))
    await this.#ctx.destinations.close?.() // deliveries still waiting for a slot give up
    await Promise.allSettled([...this.#active.values()])
  }

  async #claim(): Promise<number> {
    const { store, destinations, clock, activeLimit } = this.#ctx
    const room = () => activeLimit - this.#active.size
    const skip = new Set(this.#active.keys())
    const before = this.#taken
    const take = (entries: readonly ClaimedEntry[]) => {
      for (const entry of entries) this.#start(entry)
      return entries.length
    }
    // A throttled destination whose backoff is over is probed with one of its waiting entries.
    for (const destination of destinations.probesDue()) {
      if (room() <= 0) break
      take(await store.claimWaiting(destination, 1, skip))
    }
    // Destinations that answered again drain their backlog, leaving room for what is due.
    for (const destination of [...this.#draining]) {
      if (room() <= 0) break
      if (!take(await store.claimWaiting(destination, Math.max(1, Math.floor(room() / 2)), skip))) this.#draining.delete(destination)
    }
    if (room() > 0) take(await store.claimDue(clock(), room(), skip))
    return this.#taken - before
  }

  #start(entry: ClaimedEntry): void {
    this.#taken++
    const id = entry.header.id
    const work = this.#process(entry)
      .catch(async (error: unknown) => {
        this.#ctx.events.emit({ type: 'error', time: this.#ctx.clock(), message: 'queue entry could not be processed', error, id })
        // Not at once again (the fault may persist), but soon.
        await entry
          .move({ kind: 'due', at: this.#ctx.clock() + this.#ctx.schedule.minimum })
          .catch(() => entry.release())
          .catch(() => {}) // the store is unreachable: a shared store's lease gives the entry back later
      })
      .finally(() => {
        this.#active.delete(id)
        this.kick()
      })
    this.#active.set(id, work)
  }

  /** Works on one entry: expire or attempt, record, notify, then place or finish it. */
  async #process(entry: ClaimedEntry): Promise<void> {
    const { clock, schedule } = this.#ctx
    const state = new EntryProgress(entry)
    const since = entry.header.requeued ?? entry.header.created
    const now = clock()
    if (state.open().length) {
      if (now - since >= schedule.lifetime) await this.#expire(state)
      else await this.#attempt(entry, state)
    }
    await this.#notify(entry, state, since)
    this.#announceFailures(entry, state)
    const open = state.open()
    if (!open.length) {
      if (await this.#undeliverableNotice(entry, state)) return
      await entry.finish()
      return
    }
    const place = this.#placeFor(entry, open, state, since)
    if (!(await entry.move(place))) return // deleted or held by an operator meanwhile
    for (const index of open) {
      if (state.attemptedNow.has(index)) {
        this.#emitAttempt(entry, state, index, 'deferred', place.kind === 'due' ? { next: place.at } : {})
      }
    }
  }

  /** Delivers the open recipients, one transaction per next hop (and per `recipientsPerDelivery`). */
  async #attempt(entry: ClaimedEntry, state: EntryProgress): Promise<void> {
    const { chain, destinations, recipientsPerDelivery } = this.#ctx
    const envelope = probeOf(entry)
    const groups: Array<{ destination: string; indexes: number[] }> = []
    const last = new Map<string, { destination: string; indexes: number[] }>()
    for (const index of state.open()) {
      const destination = chain.destinationOf!(entry.header.recipients[index]!.rcpt, envelope)
      state.destinationOf.set(index, destination)
      let group = last.get(destination)
      if (!group || group.indexes.length >= recipientsPerDelivery) {
        group = { destination, indexes: [] }
        groups.push(group)
        last.set(destination, group)
      }
      group.indexes.push(index)
    }
    await Promise.all(
      groups.map(async ({ destination, indexes }) => {
        // A throttled next hop gets no new connection: its recipients wait.
        if (destinations.blocked(destination)) return
        const release = await destinations.acquire(destination)
        if (!release) return
        let answered = true
        try {
          const results = await this.#deliver(entry, indexes)
          answered = !results.every((r) => r.status === 'deferred' && /^4\.4\./.test(statusOf(r.reply, '')))
          await state.record(results, destination, this.#ctx.clock())
          for (const r of results) if (r.status === 'delivered') this.#emitAttempt(entry, state, r.index, 'delivered', {})
        } finally {
          release(answered)
        }
      }),
    )
  }

  /** One delivery transaction of the after-queue chain for `indexes`. */
  async #deliver(entry: ClaimedEntry, indexes: readonly number[]): Promise<Result[]> {
    const { header } = entry
    const failAll = (err: unknown) => indexes.map((index) => result(index, toSmtpError(err), false))
    let tx: Awaited<ReturnType<Pipeline['begin']>>
    try {
      tx = await this.#ctx.chain.begin(sessionOf(header), header.from, {
        announce: false,
        id: header.id,
        original: header.original,
        requireRelay: false,
        maxRecipients: Infinity,
        hostname: this.#ctx.hostname,
        signal: this.#stop.signal,
      })
    } catch (err) {
      return failAll(err)
    }
    const refused = new Map<number, SmtpError>()
    for (const index of indexes) {
      await tx.addRecipient(header.recipients[index]!.rcpt).catch((err: unknown) => refused.set(index, toSmtpError(err)))
    }
    if (refused.size === indexes.length) {
      tx.abort(new Error('no recipient left'))
      return indexes.map((index) => result(index, refused.get(index)!, false))
    }
    const outcome = await tx.data({ raw: entry.content() })
    const report = outcome.report
    const response = report?.response || outcome.reply
    return indexes.map((index) => {
      const early = refused.get(index)
      if (early) return result(index, early, false)
      const rcpt = header.recipients[index]!.rcpt
      if (outcome.accepted.some((a) => a === rcpt)) return { index, status: 'delivered', reply: response, dsn: report?.dsn === true }
      // The next hop's own reply per recipient, also when it refused them all (the outcome then has one error for all).
      const error =
        report?.rejected.find((r) => sameAddress(r.rcpt, rcpt))?.error ??
        outcome.rejected.find((r) => r.rcpt === rcpt)?.error ??
        outcome.error ??
        new SmtpError(451, '4.3.0', 'Delivery failed')
      return result(index, error, false)
    })
    function result(index: number, error: SmtpError, dsn: boolean): Result {
      return { index, status: error.code >= 500 ? 'failed' : 'deferred', reply: error.toReply(), dsn }
    }
  }

  /** The lifetime is over: the open recipients are given up. */
  async #expire(state: EntryProgress): Promise<void> {
    const open = state.open()
    const now = this.#ctx.clock()
    const days = Math.round((this.#ctx.schedule.lifetime / 86_400_000) * 10) / 10
    const records: JournalRecord[] = open.map((index) => ({
      type: 'outcome',
      recipients: [index],
      status: 'expired',
      at: now,
      attempt: state.attempts[index]!,
      reply: state.replies[index] ?? `451 4.4.7 Delivery time expired (queued for ${days} days)`,
    }))
    await state.append(records)
    for (const index of open) state.attemptedNow.add(index)
  }

  /** Queues the notices the entry owes (failure, delay, success), each recorded after it is queued. */
  async #notify(entry: ClaimedEntry, state: EntryProgress, since: number): Promise<void> {
    const { header } = entry
    // Never a notice to <>, and never one about a notice.
    if (!(header.original.mailFrom ?? header.from) || header.notice) return
    const owed = (
      kind: 'failure' | 'delay' | 'success',
      notify: 'FAILURE' | 'DELAY' | 'SUCCESS',
      status: (s: RecipientStatus, i: number) => boolean,
    ) => header.recipients.flatMap((r, i) => (status(state.status[i]!, i) && !entry.notified[kind].has(i) && wants(r.rcpt, notify) ? [i] : []))
    const failed = owed('failure', 'FAILURE', (s) => s === 'failed' || s === 'expired')
    if (failed.length) {
      const notice = await this.#notice(entry, state, 'failure', failed, (i) =>
        state.status[i] === 'expired' ? '4.4.7' : statusOf(state.replies[i], '5.0.0'),
      )
      for (const i of failed) state.notices.set(i, notice)
    }
    const delayAfter = this.#ctx.schedule.delayNotice
    const delayed = delayAfter !== undefined && this.#ctx.clock() - since >= delayAfter ? owed('delay', 'DELAY', (s) => s === 'deferred') : []
    if (delayed.length) {
      const notice = await this.#notice(entry, state, 'delay', delayed, (i) => statusOf(state.replies[i], '4.0.0'))
      for (const i of delayed) this.#emitAttempt(entry, state, i, 'delayed', { notice })
    }
    // Passed on to a next hop that does not do DSN: "relayed" (RFC 3461 §6.2.3.2); no more news will come.
    const relayed = owed('success', 'SUCCESS', (s, i) => s === 'delivered' && !state.handedOver.has(i))
    if (relayed.length) await this.#notice(entry, state, 'success', relayed, (i) => statusOf(state.replies[i], '2.0.0'))
  }

  /** Queues one notice of `kind` about `indexes`, announces it, and returns its queue id. */
  async #notice(
    entry: ClaimedEntry,
    state: EntryProgress,
    kind: 'failure' | 'delay' | 'success',
    indexes: readonly number[],
    status: (i: number) => string,
  ): Promise<string> {
    const action = ({ failure: 'failed', delay: 'delayed', success: 'relayed' } as const)[kind]
    const since = entry.header.requeued ?? entry.header.created
    const ctx = { store: this.#ctx.store, hostname: this.#ctx.hostname, now: this.#ctx.clock, retryUntil: since + this.#ctx.schedule.lifetime }
    const notices = indexes.map((index) => ({
      index,
      notice: { rcpt: entry.header.recipients[index]!.rcpt, action, status: status(index), diagnostic: state.replies[index] },
    }))
    const added = await queueNotice(ctx, entry, kind, notices)
    this.#queued(added.header, entry.header)
    return added.header.id
  }

  /** Announces an entry the queue added itself (a notice, or one re-addressed to the postmaster). */
  #queued(header: EntryHeader, about: EntryHeader): void {
    const to = header.recipients.map((r) => r.rcpt.address)
    this.#ctx.events.emit({
      type: 'queued',
      time: this.#ctx.clock(),
      id: header.id,
      session: eventSessionOf(about),
      from: '<>',
      to,
      size: header.size,
      ...(header.notice ? { notice: header.notice } : {}),
    })
  }

  /** The final failures of this run, announced once their notices are queued. */
  #announceFailures(entry: ClaimedEntry, state: EntryProgress): void {
    for (const i of state.attemptedNow) {
      const status = state.status[i]
      if (status !== 'failed' && status !== 'expired') continue
      this.#emitAttempt(entry, state, i, status === 'failed' ? 'bounced' : 'expired', state.notices.has(i) ? { notice: state.notices.get(i)! } : {})
    }
  }

  /**
   * A notice of ours that nobody can take: re-addressed to the postmaster once, or held when it
   * was the postmaster's already (never deleted). Returns true if it handled the entry.
   */
  async #undeliverableNotice(entry: ClaimedEntry, state: EntryProgress): Promise<boolean> {
    const { header } = entry
    if (!header.notice) return false
    const failed = header.recipients.map((_, i) => i).filter((i) => state.status[i] === 'failed' || state.status[i] === 'expired')
    if (!failed.length || failed.every((i) => entry.notified.failure.has(i))) return false
    const postmaster = this.#ctx.postmaster
    const toPostmaster = postmaster && !failed.some((i) => header.recipients[i]!.rcpt.address.toLowerCase() === postmaster.toLowerCase())
    if (postmaster && toPostmaster) {
      const copy = await addMessage(
        { store: this.#ctx.store, now: this.#ctx.clock },
        null,
        [{ address: postmaster }],
        await contentOf(entry),
        header.notice,
      )
      await entry.record([{ type: 'notice', kind: 'failure', recipients: failed, notice: copy.header.id, at: this.#ctx.clock() }])
      this.#queued(copy.header, header)
      await entry.finish()
      return true
    }
    if (await entry.move({ kind: 'held' })) {
      const reason = `a notice that could not be delivered${postmaster ? ' to the postmaster either' : ' (no postmaster configured)'}: held, never deleted`
      this.#ctx.events.emit({
        type: 'held',
        time: this.#ctx.clock(),
        id: header.id,
        session: eventSessionOf(header),
        recipients: failed.map((i) => header.recipients[i]!.rcpt.address),
        reason,
      })
    }
    return true
  }

  /** Where an entry with open recipients goes: waiting for its throttled next hop if that is all that stops it, else due at the next retry. */
  #placeFor(entry: ClaimedEntry, open: readonly number[], state: EntryProgress, since: number): EntryPlace {
    const { destinations, clock, schedule } = this.#ctx
    const envelope = probeOf(entry)
    const hops = open.map((i) => state.destinationOf.get(i) ?? this.#ctx.chain.destinationOf!(entry.header.recipients[i]!.rcpt, envelope))
    if (hops.every((d) => destinations.blocked(d))) return { kind: 'waiting', destination: hops[0]! }
    return { kind: 'due', at: schedule.next(since, clock()) }
  }

  #emitAttempt(
    entry: ClaimedEntry,
    state: EntryProgress,
    index: number,
    type: 'delivered' | 'deferred' | 'bounced' | 'expired' | 'delayed',
    extra: { next?: number; notice?: string },
  ): void {
    const events = this.#ctx.events
    if (!events.active) return
    const { header } = entry
    const base = {
      time: this.#ctx.clock(),
      id: header.id,
      session: eventSessionOf(header),
      rcpt: header.recipients[index]!.rcpt.address,
      attempt: state.attempts[index]!,
      ...(state.destinationOf.has(index) ? { destination: state.destinationOf.get(index)! } : {}),
    }
    const reply = state.replies[index] ?? ''
    if (type === 'delivered') events.emit({ ...base, type, response: reply })
    else if (type === 'delayed') events.emit({ ...base, type, reply, notice: extra.notice! })
    else if (type === 'deferred') events.emit({ ...base, type, reply, ...(extra.next !== undefined ? { next: extra.next } : {}) })
    else events.emit({ ...base, type, reply, ...(extra.notice ? { notice: extra.notice } : {}) })
  }
}

/** An envelope-only view of an entry, for `destinationOf`. */
function probeOf(entry: ClaimedEntry): Transaction {
  return {
    id: entry.header.id,
    session: sessionOf(entry.header),
    original: entry.header.original,
    envelope: { mailFrom: entry.header.from, rcptTo: entry.header.recipients.map((r) => r.rcpt) },
    state: {},
    signal: new AbortController().signal,
  }
}

/** The state of an entry as this worker run changes it: what the journal says plus what was recorded since. */
class EntryProgress {
  readonly status: RecipientStatus[]
  readonly replies: (string | undefined)[]
  readonly attempts: number[]
  readonly handedOver: Set<number>
  /** Recipients this run attempted (their events are due). */
  readonly attemptedNow = new Set<number>()
  /** The failure notice of each recipient that got one this run. */
  readonly notices = new Map<number, string>()
  /** The next hop of each attempted recipient. */
  readonly destinationOf = new Map<number, string>()
  readonly #entry: ClaimedEntry

  constructor(entry: ClaimedEntry) {
    this.#entry = entry
    this.status = [...entry.status]
    this.replies = [...entry.replies]
    this.attempts = [...entry.attempts]
    this.handedOver = new Set(entry.handedOver)
  }

  /** Recipients not final yet. */
  open(): number[] {
    return this.status.flatMap((s, i) => (s === 'pending' || s === 'deferred' ? [i] : []))
  }

  /** Records the results of one attempt, grouped by outcome. */
  async record(results: readonly Result[], destination: string, at: number): Promise<void> {
    const groups = new Map<string, Result[]>()
    for (const r of results) {
      const key = `${r.status}\0${r.reply}\0${r.dsn}\0${this.attempts[r.index]}`
      groups.set(key, [...(groups.get(key) ?? []), r])
    }
    const records: JournalRecord[] = [...groups.values()].map((rs) => ({
      type: 'outcome',
      recipients: rs.map((r) => r.index),
      status: rs[0]!.status,
      at,
      attempt: this.attempts[rs[0]!.index]! + 1,
      reply: rs[0]!.reply,
      destination,
      ...(rs[0]!.dsn ? { dsn: true } : {}),
    }))
    // The last word on an entry all of whose recipients are now delivered, with no success notice
    // owed: its removal right after is the record. A crash before it delivers again, exactly as a
    // crash before this write would; and the common case costs no journal write and fsync.
    const header = this.#entry.header
    const done = new Set(results.flatMap((r) => (r.status === 'delivered' ? [r.index] : [])))
    const last =
      this.status.every((s, i) => s === 'delivered' || done.has(i)) &&
      (header.notice !== undefined || results.every((r) => r.dsn || !wants(header.recipients[r.index]!.rcpt, 'SUCCESS')))
    if (last) this.apply(records)
    else await this.append(records)
    for (const r of results) this.attemptedNow.add(r.index)
  }

  /** Appends records durably and applies them. */
  async append(records: readonly JournalRecord[]): Promise<void> {
    await this.#entry.record(records)
    this.apply(records)
  }

  /** Applies records to the progress in memory. */
  apply(records: readonly JournalRecord[]): void {
    for (const record of records) {
      if (record.type !== 'outcome') continue
      for (const i of record.recipients) {
        this.status[i] = record.status
        this.replies[i] = record.reply
        this.attempts[i] = Math.max(this.attempts[i]!, record.attempt)
        if (record.dsn) this.handedOver.add(i)
      }
    }
  }
}
