/** A durable queue for a test: a temp directory, a recording sink as its next hop, a clock moved by hand. */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  type Address,
  type DeliveryEvent,
  type DurableQueue,
  type DurableQueueOptions,
  durableQueue,
  type EntrySummary,
  type QueueStore,
  smtpTransport,
  type Transport,
} from '../../src/index.js'
import { type Sink, type SinkOptions, startSink, testMessage } from '../../src/testing/index.js'

export const START = Date.UTC(2026, 11, 1, 12, 0, 0)
export const MINUTE = 60_000
export const HOUR = 60 * MINUTE

/** Time that moves only when told. */
export interface ManualClock {
  (): number
  advance(ms: number): void
}

export function manualClock(start = START): ManualClock {
  let now = start
  const clock = (() => now) as ManualClock
  clock.advance = (ms) => void (now += ms)
  return clock
}

export interface QueueHarness {
  readonly dir: string
  readonly sink: Sink
  readonly clock: ManualClock
  readonly queue: DurableQueue
  readonly events: DeliveryEvent[]
  /** Events of one type. */
  of<T extends DeliveryEvent['type']>(type: T): Extract<DeliveryEvent, { type: T }>[]
  /** Queues a message (as a relay would after DATA); resolves with its queue id. */
  send(options?: { from?: string | Address | null; to?: ReadonlyArray<string | Address>; eml?: string }): Promise<string>
  /** Every entry left in the queue. */
  entries(): Promise<EntrySummary[]>
  close(): Promise<void>
}

export interface QueueHarnessOptions {
  sink?: SinkOptions
  queue?: Partial<DurableQueueOptions>
  /** The transport after the queue. Default: SMTP to the sink. */
  deliver?: (sink: Sink) => Transport
  dir?: string
  /** The store for `dir` (default: the directory store in it); the same `dir` gives the same store's data again. */
  store?: (dir: string) => QueueStore
}

export async function startQueue(options: QueueHarnessOptions = {}): Promise<QueueHarness> {
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), 'relaychain-queue-')))
  const sink = await startSink(options.sink)
  const clock = manualClock()
  const events: DeliveryEvent[] = []
  const queue = durableQueue({
    ...(options.store ? { store: options.store(dir) } : { dir }),
    deliver: options.deliver?.(sink) ?? smtpTransport({ host: sink.host, port: sink.port, name: 'relay.test', pool: false }),
    clock,
    random: () => 0.5,
    hostname: 'relay.test',
    ...options.queue,
  })
  queue.events.subscribe((e) => events.push(e))
  await queue.open()
  return {
    dir,
    sink,
    clock,
    queue,
    events,
    of: <T extends DeliveryEvent['type']>(type: T) => events.filter((e): e is Extract<DeliveryEvent, { type: T }> => e.type === type),
    async send(message = {}) {
      const msg = await testMessage({
        from: message.from === undefined ? 'alice@example.com' : message.from,
        to: message.to ?? ['bob@example.org'],
        eml:
          message.eml ??
          'From: <alice@example.com>\r\nTo: <bob@example.org>\r\nSubject: queued\r\nMessage-ID: <q1@example.com>\r\n\r\nHello through the queue.\r\n',
      })
      await queue.send(msg)
      return msg.id
    },
    async entries() {
      const all: EntrySummary[] = []
      for await (const e of queue.list()) all.push(e)
      return all
    },
    async close() {
      await queue.close({ timeout: 2000 })
      await sink.close()
      if (!options.dir) await rm(dir, { recursive: true, force: true })
    },
  }
}
