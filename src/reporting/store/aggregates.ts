/**
 * The counts a sender asks for, kept up to date in memory as events are appended (and rebuilt
 * from the log when the store opens): per UTC day and per sender domain, tag and recipient
 * domain, so that a query adds up a few buckets instead of reading events. Unique opens and
 * clicks count distinct (message, recipient) pairs within the range asked.
 */
import { domainKey } from '../../core/address.js'
import type { ReportEvent } from '../events/types.js'

/**
 * What a statistics query groups by.
 *
 * @category Reporting
 */
export type StatsDimension = 'day' | 'senderDomain' | 'tag' | 'recipientDomain'

/**
 * The counts of one group.
 *
 * @category Reporting
 */
export interface StatsCounts {
  /** Messages accepted. */
  readonly accepted: number
  /** Recipients accepted (sent to). */
  readonly sent: number
  /** Refusals before the queue: a sender, a recipient or a message. */
  readonly rejected: number
  /** Recipients not sent to because they are suppressed. */
  readonly dropped: number
  /** Recipients the next hop accepted. */
  readonly delivered: number
  /** Temporary failures: every failed attempt counts. */
  readonly deferred: number
  /** Bounces of every type. */
  readonly bounced: number
  /** Hard bounces (the address does not work). */
  readonly hardBounced: number
  /** Soft bounces, the queue giving up included. */
  readonly softBounced: number
  /** Policy blocks (X.7.x): the sender's problem, not the recipient's. */
  readonly blocked: number
  /** Complaints (feedback-loop reports). */
  readonly complained: number
  /** Human opens (pixel loads not marked `machine`). */
  readonly opens: number
  /** Distinct (message, recipient) pairs with a human open in the range. */
  readonly uniqueOpens: number
  /** Pixel loads marked `machine` (proxies, scanners, prefetch). */
  readonly machineOpens: number
  /** Human clicks (clicks marked `machine` are not counted). */
  readonly clicks: number
  /** Distinct (message, recipient) pairs with a human click in the range. */
  readonly uniqueClicks: number
  /** Unsubscribes, by any method. */
  readonly unsubscribed: number
}

/**
 * One row of a statistics query: the counts and the rates derived from them.
 *
 * @category Reporting
 */
export interface StatsRow extends StatsCounts {
  /** The group: a day `2026-12-02`, a domain, or a tag. */
  readonly key: string
  /** delivered / sent. */
  readonly deliveryRate: number
  /** Hard bounces / sent (as SES counts a sender's bounce rate). */
  readonly bounceRate: number
  /** Complaints / delivered. */
  readonly complaintRate: number
  /** Unique human opens / delivered. */
  readonly openRate: number
  /** Unique human clicks / delivered. */
  readonly clickRate: number
  /** Unsubscribes / delivered. */
  readonly unsubscribeRate: number
}

type Counter = Exclude<keyof StatsCounts, 'uniqueOpens' | 'uniqueClicks'>

interface Bucket {
  counts: Record<Counter, number>
  opened: Set<string>
  clicked: Set<string>
}

const COUNTERS: readonly Counter[] = [
  'accepted',
  'sent',
  'rejected',
  'dropped',
  'delivered',
  'deferred',
  'bounced',
  'hardBounced',
  'softBounced',
  'blocked',
  'complained',
  'opens',
  'machineOpens',
  'clicks',
  'unsubscribed',
]

const days = new Map<number, string>()

/** The UTC day of a time, `YYYY-MM-DD`. */
export function dayOf(time: number): string {
  const n = Math.floor(time / 86_400_000)
  let day = days.get(n)
  if (day === undefined) {
    day = new Date(n * 86_400_000).toISOString().slice(0, 10)
    if (days.size > 10_000) days.clear()
    days.set(n, day)
  }
  return day
}

function domainOf(address: string | undefined): string | undefined {
  if (!address || address === '<>' || !address.includes('@')) return undefined
  return domainKey(address)
}

/** In-memory aggregates. */
export class Aggregates {
  /** dimension → value → day → bucket (for `day`, the value is the day). */
  readonly #buckets = new Map<StatsDimension, Map<string, Map<string, Bucket>>>()

  add(event: ReportEvent): void {
    const day = dayOf(event.time)
    const keys: Array<[StatsDimension, string]> = [['day', day]]
    const sender = domainOf(event.sender)
    if (sender) keys.push(['senderDomain', sender])
    for (const tag of event.tags) keys.push(['tag', tag])
    if (event.type === 'accepted') {
      // A message to several domains counts once per domain in that grouping, with its recipients there.
      const perDomain = new Map<string, number>()
      for (const r of event.recipients) {
        const d = domainOf(r)
        if (d) perDomain.set(d, (perDomain.get(d) ?? 0) + 1)
      }
      for (const [by, value] of keys) this.#count(by, value, day, event.recipients.length)
      for (const [d, n] of perDomain) this.#count('recipientDomain', d, day, n)
      return
    }
    const rcpt = domainOf(event.recipient)
    if (rcpt) keys.push(['recipientDomain', rcpt])
    const pair = `${event.queueId ?? event.messageId ?? ''}\0${event.recipient ?? ''}`
    for (const [by, value] of keys) {
      const bucket = this.#bucket(by, value, day)
      const c = bucket.counts
      switch (event.type) {
        case 'bounced':
          c.bounced++
          if (event.bounceType === 'hard') c.hardBounced++
          else if (event.bounceType === 'block') c.blocked++
          else if (event.bounceType === 'soft') c.softBounced++
          break
        case 'opened':
          if (event.machine) c.machineOpens++
          else {
            c.opens++
            bucket.opened.add(pair)
          }
          break
        case 'clicked':
          if (!event.machine) {
            c.clicks++
            bucket.clicked.add(pair)
          }
          break
        case 'queued':
          break
        default:
          c[event.type]++
      }
    }
  }

  /** Rows grouped by `by`, over the days from `since` to `until` (inclusive, `YYYY-MM-DD`). */
  query(by: StatsDimension, since?: string, until?: string): StatsRow[] {
    const groups = new Map<string, Bucket[]>()
    for (const [value, perDay] of this.#buckets.get(by) ?? []) {
      const list: Bucket[] = []
      for (const [day, bucket] of perDay) if (!((since && day < since) || (until && day > until))) list.push(bucket)
      if (list.length) groups.set(value, list)
    }
    const rows = [...groups].map(([key, buckets]) => row(key, buckets))
    return rows.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
  }

  #bucket(by: StatsDimension, value: string, day: string): Bucket {
    let values = this.#buckets.get(by)
    if (!values) this.#buckets.set(by, (values = new Map()))
    let perDay = values.get(value)
    if (!perDay) values.set(value, (perDay = new Map()))
    let bucket = perDay.get(day)
    if (!bucket) {
      bucket = { counts: Object.fromEntries(COUNTERS.map((c) => [c, 0])) as Record<Counter, number>, opened: new Set(), clicked: new Set() }
      perDay.set(day, bucket)
    }
    return bucket
  }

  #count(by: StatsDimension, value: string, day: string, recipients: number): void {
    const c = this.#bucket(by, value, day).counts
    c.accepted += 1
    c.sent += recipients
  }
}

function row(key: string, buckets: readonly Bucket[]): StatsRow {
  const sum = Object.fromEntries(COUNTERS.map((c) => [c, 0])) as Record<Counter, number>
  const opened = new Set<string>()
  const clicked = new Set<string>()
  for (const b of buckets) {
    for (const c of COUNTERS) sum[c] += b.counts[c]
    for (const p of b.opened) opened.add(p)
    for (const p of b.clicked) clicked.add(p)
  }
  const ratio = (n: number, d: number) => (d ? n / d : 0)
  return {
    key,
    ...sum,
    uniqueOpens: opened.size,
    uniqueClicks: clicked.size,
    deliveryRate: ratio(sum.delivered, sum.sent),
    bounceRate: ratio(sum.hardBounced, sum.sent),
    complaintRate: ratio(sum.complained, sum.delivered),
    openRate: ratio(opened.size, sum.delivered),
    clickRate: ratio(clicked.size, sum.delivered),
    unsubscribeRate: ratio(sum.unsubscribed, sum.delivered),
  }
}
