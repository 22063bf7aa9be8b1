/**
 * Webhook delivery: every event of the event store, POSTed to an endpoint as JSON, signed with
 * Standard Webhooks headers, one by one (`batch: 1`, the body is the event and `webhook-id` its
 * id) or in batches (the body is `{ "events": [...] }` and `webhook-id` names the batch). Only a
 * 2xx within `timeout` counts; anything else is retried on the schedule (by default Standard
 * Webhooks': at once, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h), in order, until it is taken or
 * the schedule ends (then the batch is written to `<name>.failed.jsonl` and delivery goes on).
 * Durable: the endpoint's position in the event log and its retry state are written to
 * `<name>.json` (write, fsync, rename) after each outcome, so after a restart (or SIGKILL) it
 * resumes where it stood: an endpoint that is down for an hour loses nothing, and what was
 * taken just before a crash may come again, with the same ids for the receiver to drop.
 */
import { mkdir, open, readFile, rename } from 'node:fs/promises'
import { join } from 'node:path'
import { RelayError } from '../../core/errors.js'
import { derivedEventId } from '../events/event-id.js'
import type { ReportEvent, ReportEventType } from '../events/types.js'
import type { EventStore } from '../store/file-store.js'
import { signWebhook, webhookKey } from './sign.js'

/**
 * One endpoint.
 *
 * @category Reporting
 */
export interface WebhookEndpoint {
  /** A name for its state file and logs: `[a-z0-9-]`. */
  readonly name: string
  /** The URL events are POSTed to (redirects are not followed). */
  readonly url: string
  /** `whsec_…`; several while rotating (each signs). */
  readonly secret: string | readonly string[]
  /** Events per request. Default 1 (one by one). */
  readonly batch?: number
  /** Only these types. Default: all. */
  readonly types?: readonly ReportEventType[]
}

/**
 * Options of {@link startWebhooks}.
 *
 * @category Reporting
 */
export interface WebhooksOptions {
  /** The event store whose log is delivered, from its start for a new endpoint. */
  readonly store: EventStore
  /** The endpoints; each reads the log at its own pace. */
  readonly endpoints: readonly WebhookEndpoint[]
  /** Where each endpoint's position and retry state are kept. */
  readonly dir: string
  /** Delays between attempts, in ms. Default Standard Webhooks' schedule. */
  readonly schedule?: readonly number[]
  /** Milliseconds to wait for a 2xx. Default 15 000. */
  readonly timeout?: number
  /** Unix time source (ms). Default `Date.now`. */
  readonly clock?: () => number
  /** Told about every attempt (metrics, logs). */
  readonly onAttempt?: (outcome: WebhookAttempt) => void
}

/**
 * One attempt's outcome.
 *
 * @category Reporting
 */
export interface WebhookAttempt {
  /** The endpoint's name. */
  readonly endpoint: string
  /** The `webhook-id` header sent: the event's id, or a `wb_…` id of the batch. */
  readonly webhookId: string
  /** How many events the request carried. */
  readonly events: number
  /** Which attempt this was for the batch (1 for the first). */
  readonly attempt: number
  /** HTTP status, or 0 when there was none (refused, timeout). */
  readonly status: number
  /** True for a 2xx: the batch was taken. */
  readonly ok: boolean
  /** True if this was the last attempt and the batch was given up. */
  readonly gaveUp: boolean
  /** How long the request took, in ms by `clock`. */
  readonly ms: number
}

/**
 * Running deliveries.
 *
 * @category Reporting
 */
export interface Webhooks {
  /** How far each endpoint is behind the event store, in bytes of its log (0: up to date); not a count of events. */
  backlog(): Record<string, number>
  /** Resolves once every endpoint is up to date with the store (or `timeout` ms passed: rejects). */
  idle(timeout?: number): Promise<void>
  /** Stops (an attempt in flight is abandoned and comes again after a restart). */
  close(): Promise<void>
}

/**
 * Standard Webhooks' retry schedule after the first attempt.
 *
 * @category Reporting
 */
export const STANDARD_WEBHOOK_SCHEDULE: readonly number[] = [0, 5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000]

interface State {
  position: number
  attempt: number
  /** When the next attempt is due (ms), while retrying. */
  due?: number
}

/**
 * Starts delivering the store's events to webhook endpoints.
 *
 * @example
 * ```ts
 * const webhooks = await startWebhooks({
 *   store,
 *   dir: 'data/webhooks',
 *   endpoints: [{ name: 'crm', url: 'https://crm.example.com/hooks/mail', secret: process.env.WEBHOOK_SECRET!, batch: 50 }],
 * })
 * ```
 *
 * @category Reporting
 */
export async function startWebhooks(options: WebhooksOptions): Promise<Webhooks> {
  const { store } = options
  const schedule = options.schedule ?? STANDARD_WEBHOOK_SCHEDULE
  const timeout = options.timeout ?? 15_000
  const clock = options.clock ?? Date.now
  await mkdir(options.dir, { recursive: true })
  const runners = await Promise.all(options.endpoints.map((endpoint) => runner(endpoint)))
  const waiters = new Set<() => void>()
  const stopAppend = store.onAppend(() => {
    for (const r of runners) r.kick()
  })
  for (const r of runners) r.kick()

  function settle(): void {
    if (runners.every((r) => r.idle())) for (const w of [...waiters]) w()
  }

  async function runner(endpoint: WebhookEndpoint) {
    if (!/^[a-z0-9-]{1,64}$/.test(endpoint.name))
      throw new RelayError('ERR_RELAY_INVALID_OPTION', `webhooks: endpoint name ${endpoint.name} must be [a-z0-9-]`)
    const secrets = typeof endpoint.secret === 'string' ? [endpoint.secret] : [...endpoint.secret]
    for (const s of secrets) webhookKey(s)
    const batch = Math.max(1, endpoint.batch ?? 1)
    const types = endpoint.types ? new Set(endpoint.types) : undefined
    const statePath = join(options.dir, `${endpoint.name}.json`)
    let state: State = { position: 0, attempt: 0 }
    try {
      state = JSON.parse(await readFile(statePath, 'utf8')) as State
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
    }
    let running = false
    let stopped = false
    let timer: NodeJS.Timeout | undefined
    let controller: AbortController | undefined

    async function save(): Promise<void> {
      const tmp = `${statePath}.tmp`
      const handle = await open(tmp, 'w')
      try {
        await handle.writeFile(JSON.stringify(state))
        await handle.datasync()
      } finally {
        await handle.close()
      }
      await rename(tmp, statePath)
    }

    async function post(events: ReportEvent[]): Promise<{ status: number; webhookId: string }> {
      const single = batch === 1
      const webhookId = single ? events[0]!.id : derivedEventId('batch', ...events.map((e) => e.id)).replace(/^ev_/, 'wb_')
      const body = JSON.stringify(single ? events[0] : { events })
      const headers = signWebhook(secrets, webhookId, Math.floor(clock() / 1000), body)
      controller = new AbortController()
      const timer = setTimeout(() => controller?.abort(), timeout)
      try {
        const res = await fetch(endpoint.url, {
          method: 'POST',
          headers: { ...headers, 'content-type': 'application/json' },
          body,
          signal: controller.signal,
          redirect: 'manual',
        })
        await res.arrayBuffer().catch(() => undefined)
        return { status: res.status, webhookId }
      } catch {
        return { status: 0, webhookId }
      } finally {
        clearTimeout(timer)
      }
    }

    /**
     * Runs, and never leaves a rejection unheard: a failure to read the store or save the state
     * (a disk error, the folder removed under a stopping sender) is tried again in a second;
     * nothing is lost, the position on disk is where the last good save left it.
     */
    function runSafely(): void {
      run().catch(() => {
        if (!stopped) timer = setTimeout(runSafely, 1000)
      })
    }

    async function run(): Promise<void> {
      if (running || stopped) return
      running = true
      try {
        while (!stopped && state.position < store.end) {
          if (state.due !== undefined && state.due > clock()) {
            timer = setTimeout(runSafely, state.due - clock())
            return
          }
          const read = await store.read(state.position, batch * 4)
          const events: ReportEvent[] = []
          let next = state.position
          // Take up to `batch` wanted events; unwanted ones are stepped over.
          for (let i = 0; i < read.events.length && events.length < batch; i++) {
            const event = read.events[i]!
            if (!types || types.has(event.type)) events.push(event)
            next = read.ends[i]!
          }
          if (!events.length) {
            state = { position: next, attempt: 0 }
            await save()
            continue
          }
          const started = clock()
          const { status, webhookId } = await post(events)
          if (stopped) return
          const ok = status >= 200 && status < 300
          const attempt = state.attempt + 1
          const gaveUp = !ok && attempt > schedule.length
          options.onAttempt?.({ endpoint: endpoint.name, webhookId, events: events.length, attempt, status, ok, gaveUp, ms: clock() - started })
          if (ok || gaveUp) {
            if (gaveUp) {
              const failed = await open(join(options.dir, `${endpoint.name}.failed.jsonl`), 'a')
              await failed.writeFile(`${JSON.stringify({ webhookId, status, events })}\n`)
              await failed.close()
            }
            state = { position: next, attempt: 0 }
          } else {
            state = { position: state.position, attempt, due: clock() + schedule[attempt - 1]! }
          }
          await save()
        }
      } finally {
        running = false
        settle()
      }
    }

    return {
      kick: runSafely,
      idle: () => state.position >= store.end && !running,
      backlog: () => store.end - state.position,
      name: endpoint.name,
      stop() {
        stopped = true
        if (timer) clearTimeout(timer)
        controller?.abort()
      },
    }
  }

  return {
    backlog: () => Object.fromEntries(runners.map((r) => [r.name, r.backlog()])),
    idle(wait = 30_000) {
      if (runners.every((r) => r.idle())) return Promise.resolve()
      return new Promise((resolve, reject) => {
        const done = () => {
          clearTimeout(t)
          waiters.delete(done)
          resolve()
        }
        const t = setTimeout(() => {
          waiters.delete(done)
          reject(new Error(`webhooks not idle after ${wait} ms: ${JSON.stringify(Object.fromEntries(runners.map((r) => [r.name, r.backlog()])))}`))
        }, wait)
        waiters.add(done)
      })
    },
    async close() {
      stopAppend()
      for (const r of runners) r.stop()
    },
  }
}
