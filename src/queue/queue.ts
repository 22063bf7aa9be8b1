/**
 * `durableQueue()`: a transport that stores each message durably before the client hears 250,
 * then delivers it in the background through an after-queue chain, retrying what is deferred,
 * bouncing what fails or expires, with per-destination limits and a throttle for dead next hops.
 * It is the relay's store and forward: a backup MX, a smarthost that outlives its upstream's
 * outages. Operators list, hold, release, flush, delete and requeue entries through its methods
 * or the `relaychain queue` command, also while the relay runs.
 */
import { hostname as osHostname } from 'node:os'
import { RelayError } from '../core/errors.js'
import { createPipeline, type Pipeline } from '../core/pipeline.js'
import type { DeliveryReport, Message, Transport } from '../core/types.js'
import { createEventStream, type DeliveryEvents } from '../delivery/events.js'
import type { Clock } from '../shared/clock.js'
import { type Duration, toMs } from '../shared/duration.js'
import { type DestinationGate, type DestinationLimits, Destinations } from './destinations.js'
import { dirStore } from './dir-store.js'
import { queueNotice } from './notices.js'
import { type RetryOptions, retrySchedule } from './schedule.js'
import type { EntryHeader, EntrySummary, JournalRecord, QueueEntry, QueueStore } from './types.js'
import { eventSessionOf, QueueWorker } from './worker.js'

/**
 * Options of {@link durableQueue}. Give `dir` or `store`.
 *
 * @category Queue
 */
export interface DurableQueueOptions {
  /** The queue directory (the embedded store, {@link dirStore}). */
  dir?: string
  /** A store of your own (or a shared one). */
  store?: QueueStore
  /**
   * Where queued mail goes: any transport (`smtpTransport`, `routeTransport`, MX delivery), or a
   * pipeline of after-queue stages (DKIM signing, say) ending at one.
   */
  deliver: Transport
  /** The retry schedule, lifetime and delay notice; see {@link RetryOptions}. */
  retry?: RetryOptions
  /** Per-destination concurrency and the dead-destination throttle. */
  destinations?: DestinationLimits
  /** Entries worked on at once (the rest stay on disk). Default 100. */
  activeLimit?: number
  /** Recipients per delivery transaction. Default 50 (Postfix's default). */
  recipientsPerDelivery?: number
  /**
   * Where a notice (DSN) goes that cannot be delivered to its sender, as Postfix sends a double
   * bounce to the postmaster. Without it such a notice is held (`relaychain queue list` shows it),
   * never deleted.
   */
  postmaster?: string
  /** The name in notices (Reporting-MTA). Default `os.hostname()`. */
  hostname?: string
  /** How often the worker looks for due entries when nothing wakes it. Default `'1s'`. */
  pollInterval?: Duration
  /** Time (tests move it by hand). Default `Date.now`. */
  clock?: Clock
  /** Jitter of the retry schedule (tests fix it). Default `Math.random`. */
  random?: () => number
}

/**
 * The queue: a transport, with the operations on its entries.
 *
 * @category Queue
 */
export interface DurableQueue extends Transport {
  readonly name: 'queue'
  /** Where the entries live (the directory store for `dir`). */
  readonly store: QueueStore
  /** The queue's events: queued, delivered, deferred, bounced, expired, delayed, held, released, deleted. A relay forwards them to its own. */
  readonly events: DeliveryEvents
  /** Takes the queue directory (refused if another process has it) and starts the worker. Relays call it on `listen()`. */
  open(): Promise<void>
  /** Every entry, streamed. */
  list(): AsyncIterable<EntrySummary>
  /** One entry by id. */
  show(id: string): Promise<QueueEntry | undefined>
  /** Holds an entry: it is not delivered until released. False if there is no such entry. */
  hold(id: string): Promise<boolean>
  /** Makes a held entry due now. */
  release(id: string): Promise<boolean>
  /** Makes every entry due now and forgets the throttles of dead destinations; returns how many entries moved. */
  flush(): Promise<number>
  /** Deletes an entry; with `notify`, its sender gets a failure notice for the recipients not delivered. */
  delete(id: string, options?: { notify?: boolean }): Promise<boolean>
  /** Gives every recipient not delivered and not bounced a fresh start: due now, a new lifetime. */
  requeue(id: string): Promise<boolean>
  /** Delivers what is due now and waits for it (tests that move the clock). */
  runDue(): Promise<void>
  /** Resolves once no delivery is under way. */
  idle(): Promise<void>
  /** Stops the worker (waiting up to `timeout` ms, default 30 000, for deliveries under way), closes the store and the transport. */
  close(options?: { timeout?: number }): Promise<void>
}

/**
 * Creates a durable queue.
 *
 * @example
 * ```ts
 * const queue = durableQueue({
 *   dir: '/var/spool/relaychain',
 *   deliver: smtpTransport({ host: 'mx.internal.example', port: 25 }),
 *   retry: { lifetime: '5d', delayNotice: '4h' },
 * })
 * const relay = createRelay({ stages: [relayPolicy({ domains: ['example.com'] })], transport: queue })
 * await relay.listen() // opens the queue
 * ```
 *
 * @category Queue
 */
export function durableQueue(options: DurableQueueOptions): DurableQueue {
  if (!options.dir === !options.store) throw new RelayError('ERR_RELAY_INVALID_OPTION', 'durableQueue needs dir or store (one of them)')
  if (!options.deliver || typeof options.deliver.send !== 'function')
    throw new RelayError('ERR_RELAY_INVALID_OPTION', 'durableQueue needs a deliver transport')
  const events = createEventStream()
  const store: QueueStore = options.store ?? dirStore(options.dir!, { onCorrupt: (id, reason) => corrupt(id, reason) })
  const clock = options.clock ?? Date.now
  const schedule = retrySchedule(options.retry, options.random)
  const hostname = options.hostname ?? osHostname()
  const chain: Pipeline = isPipeline(options.deliver) ? options.deliver : createPipeline({ transport: options.deliver, name: 'after-queue', events })
  // A pipeline of the application's own reports its errors on its stream, and its transport's
  // connection attempts (MX delivery): they are the queue's too (its own outcomes it announces itself).
  if (chain.events !== events) chain.events.subscribe((e) => (e.type === 'error' || e.type === 'delivery-attempt') && events.emit(e))
  const onUp = (name: string) => worker.destinationUp(name)
  // A shared store keeps the limits for every node; the directory store leaves them to this process.
  const destinations: DestinationGate =
    store.destinations?.(options.destinations ?? {}, clock, onUp) ?? new Destinations(options.destinations ?? {}, clock, onUp)
  const worker = new QueueWorker({
    store,
    chain,
    schedule,
    destinations,
    clock,
    events,
    hostname,
    postmaster: options.postmaster,
    activeLimit: whole(options.activeLimit ?? 100, 'activeLimit'),
    recipientsPerDelivery: whole(options.recipientsPerDelivery ?? 50, 'recipientsPerDelivery'),
    pollInterval: toMs(options.pollInterval ?? '1s', 'pollInterval'),
    onPoll: async () => {
      if (await store.flushRequested()) destinations.reset()
      await destinations.sync?.()
    },
  })
  let opened: Promise<void> | undefined

  function corrupt(id: string, reason: string): void {
    events.emit({ type: 'error', time: clock(), message: `queue entry moved to quarantine: ${reason}`, error: new Error(reason), id })
  }

  function entryEvent(type: 'held' | 'released' | 'deleted', entry: QueueEntry, reason: string): void {
    const recipients = entry.header.recipients.flatMap((r, i) => (entry.status[i] === 'delivered' ? [] : [r.rcpt.address]))
    events.emit({ type, time: clock(), id: entry.header.id, session: eventSessionOf(entry.header), recipients, reason })
  }

  /** Moves an entry and announces it. */
  async function move(id: string, type: 'held' | 'released', place: Parameters<QueueStore['place']>[1]): Promise<boolean> {
    const entry = await store.get(id)
    if (!entry || !(await store.place(id, place))) return false
    entryEvent(type, entry, 'operator')
    worker.kick()
    return true
  }

  /** Entries made per transaction (forks share its envelope object), to give each fork an id of its own. */
  const sent = new WeakMap<object, number>()
  const queue: DurableQueue = {
    name: 'queue',
    store,
    events,
    describe: () =>
      `queue ${store.describe()} → ${(chain === options.deliver ? chain.describe() : (options.deliver.describe?.() ?? options.deliver.name)).split('\n').join('\n  ')}`,
    destinationOf: (rcpt, tx) => chain.destinationOf!(rcpt, tx),

    open() {
      opened ??= (async () => {
        await store.open()
        await destinations.sync?.()
        await options.deliver.open?.()
        await worker.start()
      })()
      return opened
    },

    async send(msg: Message): Promise<DeliveryReport> {
      await queue.open()
      const { session } = msg
      // Forks of one message (a stage's next(fork) per recipient group) share its id: each gets an
      // entry of its own, or the second would be renamed over the first.
      const forks = sent.get(msg.original) ?? 0
      sent.set(msg.original, forks + 1)
      const id = forks ? `${msg.id}-${forks + 1}` : msg.id
      const header: EntryHeader = {
        id,
        created: clock(),
        from: msg.envelope.mailFrom,
        recipients: msg.envelope.rcptTo.map((rcpt) => ({ rcpt })),
        original: msg.original,
        size: 0,
        client: { ip: session.remoteAddress, session: session.id, listener: session.listener, ...(session.user ? { user: session.user } : {}) },
      }
      // The content is streamed to disk; a stream that fails (size limit, client gone) leaves nothing.
      const size = await store.add(header, msg.stream())
      if (events.active) {
        events.emit({
          type: 'queued',
          time: clock(),
          id,
          session: eventSessionOf(header),
          from: header.from?.address ?? '<>',
          to: header.recipients.map((r) => r.rcpt.address),
          size,
        })
      }
      worker.kick()
      return { accepted: msg.envelope.rcptTo, rejected: [], response: `250 2.0.0 Ok: queued as ${id}`, queued: true }
    },

    list: () => store.list(),
    show: (id) => store.get(id),
    hold: (id) => move(id, 'held', { kind: 'held' }),
    release: (id) => move(id, 'released', { kind: 'due', at: clock() }),

    async flush() {
      const moved = await store.flush(clock())
      destinations.reset()
      await store.flushRequested() // ours: already done
      worker.kick()
      return moved
    },

    async delete(id, { notify = false } = {}) {
      const entry = await store.claim(id)
      if (!entry) {
        // Being delivered right now (or gone): removed without a notice; the attempt under way may still deliver.
        const busy = await store.get(id)
        if (!busy || !(await store.remove(id))) return false
        entryEvent('deleted', busy, 'operator (while being delivered)')
        return true
      }
      const open = entry.header.recipients.map((_, i) => i).filter((i) => entry.status[i] === 'pending' || entry.status[i] === 'deferred')
      if (notify && open.length && (entry.header.original.mailFrom ?? entry.header.from) && !entry.header.notice) {
        const ctx = { store, hostname, now: clock, retryUntil: 0 }
        await queueNotice(
          ctx,
          entry,
          'failure',
          open.map((index) => ({
            index,
            notice: {
              rcpt: entry.header.recipients[index]!.rcpt,
              action: 'failed' as const,
              status: '5.3.0',
              diagnostic: '550 5.3.0 Deleted from the queue by the mail administrator',
            },
          })),
        )
      }
      entryEvent('deleted', entry, notify ? 'operator, sender notified' : 'operator')
      await entry.finish()
      return true
    },

    async requeue(id) {
      const entry = await store.claim(id)
      if (!entry) return false
      // Kept: what was delivered and what the sender was told. Everything else starts again.
      const keep = (i: number) => entry.status[i] === 'delivered' || entry.notified.failure.has(i)
      const kept = entry.header.recipients.map((_, i) => i).filter(keep)
      const now = clock()
      const records: JournalRecord[] = kept.map((i) => ({
        type: 'outcome',
        recipients: [i],
        status: entry.status[i] === 'delivered' ? 'delivered' : 'failed',
        at: now,
        attempt: entry.attempts[i]!,
        reply: entry.replies[i] ?? '',
      }))
      for (const kind of ['failure', 'delay', 'success'] as const) {
        const notified = [...entry.notified[kind]]
        if (notified.length) records.push({ type: 'notice', kind, recipients: notified, notice: '(before requeue)', at: now })
      }
      await entry.replace({ ...entry.header, requeued: now }, records, { kind: 'due', at: now })
      entryEvent('released', entry, 'requeued by the operator')
      worker.kick()
      return true
    },

    async runDue() {
      await queue.open()
      // Until a look finds nothing: the notices an attempt queued are due at once too.
      do await worker.idle()
      while ((await worker.tick()) > 0)
      await worker.idle()
    },

    idle: () => worker.idle(),

    async close({ timeout = 30_000 } = {}) {
      await worker.stop(timeout)
      try {
        await chain.close({ timeout: 0 }) // the after-queue stages and the transport
      } finally {
        await store.close()
      }
    },
  }
  return queue
}

function isPipeline(transport: Transport): transport is Pipeline {
  return typeof (transport as Pipeline).begin === 'function' && typeof (transport as Pipeline).events?.subscribe === 'function'
}

function whole(value: number, option: string): number {
  if (!Number.isInteger(value) || value < 1)
    throw new RelayError('ERR_RELAY_INVALID_OPTION', `${option} must be a whole number ≥ 1, got ${String(value)}`)
  return value
}
