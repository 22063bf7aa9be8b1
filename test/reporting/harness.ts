/**
 * A relay with reporting for tests: a real SMTP relay on loopback (AUTH allowed in clear text on
 * loopback), a durable queue on a manual clock delivering to a recording sink, an event store and
 * a suppression list in a temporary directory.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createTransport } from 'nodemailer'
import {
  createPipeline,
  createRelay,
  type DurableQueue,
  durableQueue,
  type Relay,
  type Stage,
  smtpTransport,
  staticAuthenticator,
} from '../../src/index.js'
import type { ReportEvent } from '../../src/reporting/events/types.js'
import { createReporting, type Reporting } from '../../src/reporting/reporting.js'
import { type EventStore, openEventStore } from '../../src/reporting/store/file-store.js'
import { openSuppressionList, type SuppressionList } from '../../src/reporting/suppression/list.js'
import { type Sink, type SinkOptions, startSink } from '../../src/testing/index.js'
import { type ManualClock, manualClock } from '../helpers/queue.js'

export const allowAll: Stage = { name: 'allow-all', grantsRelay: true, rcptTo: () => ({ relay: true }) }

export interface ReportingHarness {
  dir: string
  sink: Sink
  clock: ManualClock
  queue: DurableQueue
  relay: Relay
  port: number
  store: EventStore
  suppressions: SuppressionList
  reporting: Reporting
  events: ReportEvent[]
  of<T extends ReportEvent['type']>(type: T): Extract<ReportEvent, { type: T }>[]
  send(mail: {
    from?: string
    to: string[]
    headers?: Record<string, string>
    html?: string
    text?: string
    auth?: boolean
    messageId?: string
  }): Promise<unknown>
  drain(): Promise<void>
  close(): Promise<void>
}

export async function startReporting(
  options: {
    stages?: (reporting: Reporting, suppressions: SuppressionList) => Stage[]
    /** Stages of the queue's delivery chain (after the queue). */
    after?: Stage[]
    sink?: SinkOptions
    dir?: string
  } = {},
): Promise<ReportingHarness> {
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), 'relaychain-reporting-')))
  const sink = await startSink(options.sink)
  const clock = manualClock()
  const store = await openEventStore({ dir: join(dir, 'events') })
  const suppressions = await openSuppressionList({ file: join(dir, 'suppressions.jsonl'), clock })
  const reporting = createReporting({ store, suppressions, clock })
  const queue = durableQueue({
    dir: join(dir, 'queue'),
    deliver: createPipeline({
      name: 'after-queue',
      stages: options.after ?? [],
      transport: smtpTransport({ host: sink.host, port: sink.port, name: 'relay.test', pool: false }),
    }),
    clock,
    random: () => 0.5,
    hostname: 'relay.test',
  })
  const relay = createRelay({
    hostname: 'relay.test',
    stages: options.stages?.(reporting, suppressions) ?? [allowAll],
    transport: queue,
    listeners: [{ host: '127.0.0.1', port: 0, mode: 'submission' }],
    auth: { authenticator: staticAuthenticator({ news: 'letters-secret' }), allowInsecure: true },
  })
  const events: ReportEvent[] = []
  reporting.subscribe((e) => events.push(e))
  reporting.attach(relay.events)
  const [bound] = await relay.listen()
  const port = bound!.port
  return {
    dir,
    sink,
    clock,
    queue,
    relay,
    port,
    store,
    suppressions,
    reporting,
    events,
    of: <T extends ReportEvent['type']>(type: T) => events.filter((e): e is Extract<ReportEvent, { type: T }> => e.type === type),
    async send(mail) {
      const client = createTransport({
        host: '127.0.0.1',
        port,
        secure: false,
        ignoreTLS: true,
        ...(mail.auth === false ? {} : { auth: { user: 'news', pass: 'letters-secret' } }),
      })
      try {
        return await client.sendMail({
          envelope: { from: mail.from ?? 'news@shop.example', to: mail.to },
          from: mail.from ?? 'news@shop.example',
          to: mail.to,
          subject: 'Spring sale',
          messageId: mail.messageId ?? `<${Math.random().toString(36).slice(2)}@shop.example>`,
          headers: mail.headers ?? {},
          ...(mail.html ? { html: mail.html } : {}),
          text: mail.text ?? 'Hello',
        })
      } finally {
        client.close()
      }
    },
    async drain() {
      await queue.runDue()
    },
    async close() {
      await relay.close({ timeout: 5000 })
      await sink.close()
      await store.close()
      suppressions.close()
      if (!options.dir) await rm(dir, { recursive: true, force: true })
    },
  }
}
