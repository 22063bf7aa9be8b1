/**
 * `senderProtection()`: per-sender protection, as SES does it. A sender domain or a tag whose
 * hard-bounce rate or complaint rate over the last days reaches a threshold is paused: its mail
 * is tempfailed with `451 4.7.1` and a reply that says why (the rate, the threshold, the window),
 * so that the sending application keeps it and its operator sees the cause; the refusal is a
 * `rejected` event (stage `sender-protection`) like any other. Rates come from the event store's
 * counts (`bounceRate` = hard bounces / recipients sent, `complaintRate` = complaints /
 * deliveries) and are judged only from a minimum volume on, so that three bounces out of ten
 * do not pause a sender. A sender resumes by itself when the rate falls under the threshold
 * (the bad days leave the window, or good mail dilutes them).
 *
 * Place it after the relay policy and before `relayTag()` (it reads the `X-Relay-Tag` field,
 * which that stage removes) and `verpReturnPath()`. The sender domain is refused at MAIL, a tag
 * at DATA.
 */
import { domainKey } from '../core/address.js'
import { RelayError, SmtpError } from '../core/errors.js'
import type { Message, Stage } from '../core/types.js'
import type { Reporting } from '../reporting/reporting.js'
import type { StatsRow } from '../reporting/store/aggregates.js'
import { tagsOf } from './relay-tag.js'

/**
 * Options of {@link senderProtection}.
 *
 * @category Reporting
 */
export interface SenderProtectionOptions {
  /** Whose event store the rates are read from; tags of a refused message are noted there. */
  readonly reporting: Pick<Reporting, 'store' | 'note'>
  /** Pause from this hard-bounce rate on (0.05 = 5 %). Default 0.05, SES's review level. */
  readonly bounceRate?: number
  /** Pause from this complaint rate on (0.001 = 0.1 %). Default 0.001, SES's review level. */
  readonly complaintRate?: number
  /** Judge a sender or tag only from this many recipients sent (bounces) or deliveries (complaints) on. Default 100. */
  readonly minimum?: number
  /** The window: today and the days before it, in UTC days. Default 7. */
  readonly days?: number
  /** What is paused: sender domains, tags or both. Default both. */
  readonly by?: ReadonlyArray<'senderDomain' | 'tag'>
  /** The field tags are read from (of authenticated senders, as `relayTag()` does). Default `X-Relay-Tag`. */
  readonly header?: string
  /** Milliseconds the rates are cached for. Default 10 000. */
  readonly recheck?: number
  /** The clock. Default `Date.now`. */
  readonly clock?: () => number
}

/**
 * A sender domain or tag that is paused, and why.
 *
 * @category Reporting
 */
export interface SenderPause {
  /** Whether a sender domain or a tag is paused. */
  readonly by: 'senderDomain' | 'tag'
  /** The sender domain or the tag. */
  readonly key: string
  /** Which rate is over its threshold. */
  readonly reason: 'bounce-rate' | 'complaint-rate'
  /** The rate over the window, 0 to 1. */
  readonly rate: number
  /** The threshold it reached. */
  readonly threshold: number
}

/**
 * The stage, with what it pauses now.
 *
 * @category Reporting
 */
export interface SenderProtection extends Stage {
  /** The sender domains and tags paused now (from the cached rates). */
  paused(): SenderPause[]
}

const percent = (n: number) => `${(n * 100).toFixed(n < 0.01 ? 2 : 1)}%`

/**
 * Creates the protection stage.
 *
 * @example
 * ```ts
 * const stages = [
 *   relayPolicy({ requireAuth: true }),
 *   senderProtection({ reporting, bounceRate: 0.05, complaintRate: 0.001 }),
 *   relayTag({ reporting }),
 *   verpReturnPath({ domain: 'bounces.example.com', keys, reporting }),
 * ]
 * ```
 *
 * @category Reporting
 */
export function senderProtection(options: SenderProtectionOptions): SenderProtection {
  const { reporting } = options
  const bounceRate = options.bounceRate ?? 0.05
  const complaintRate = options.complaintRate ?? 0.001
  const minimum = options.minimum ?? 100
  const days = options.days ?? 7
  const by = new Set<'senderDomain' | 'tag'>(options.by ?? ['senderDomain', 'tag'])
  const header = options.header ?? 'X-Relay-Tag'
  const recheck = options.recheck ?? 10_000
  const clock = options.clock ?? Date.now
  for (const [name, value] of [
    ['bounceRate', bounceRate],
    ['complaintRate', complaintRate],
  ] as const)
    if (!(value > 0 && value <= 1)) throw new RelayError('ERR_RELAY_INVALID_OPTION', `senderProtection: ${name} must be in (0, 1]`)
  if (!(Number.isInteger(days) && days >= 1)) throw new RelayError('ERR_RELAY_INVALID_OPTION', 'senderProtection: days must be a whole number from 1')

  let cached: { at: number; pauses: Map<string, SenderPause> } | undefined

  function judge(dimension: 'senderDomain' | 'tag', row: StatsRow): SenderPause | undefined {
    if (row.sent >= minimum && row.bounceRate >= bounceRate)
      return { by: dimension, key: row.key, reason: 'bounce-rate', rate: row.bounceRate, threshold: bounceRate }
    if (row.delivered >= minimum && row.complaintRate >= complaintRate)
      return { by: dimension, key: row.key, reason: 'complaint-rate', rate: row.complaintRate, threshold: complaintRate }
    return undefined
  }

  function pauses(): Map<string, SenderPause> {
    const now = clock()
    if (cached && now - cached.at < recheck && now >= cached.at) return cached.pauses
    const since = new Date(now - (days - 1) * 86_400_000).toISOString().slice(0, 10)
    const found = new Map<string, SenderPause>()
    for (const dimension of by)
      for (const row of reporting.store.stats({ by: dimension, since })) {
        const pause = judge(dimension, row)
        if (pause) found.set(`${dimension}\0${row.key}`, pause)
      }
    cached = { at: now, pauses: found }
    return found
  }

  function refuse(pause: SenderPause): never {
    const what = pause.by === 'tag' ? `tag ${pause.key}` : pause.key
    const rate = pause.reason === 'bounce-rate' ? 'bounce rate' : 'complaint rate'
    throw new SmtpError(
      451,
      '4.7.1',
      `Sending paused for ${what}: ${rate} ${percent(pause.rate)} over the last ${days} days is at or above ${percent(pause.threshold)}; try again later`,
      { reason: `sender protection (${pause.reason} ${pause.rate})` },
    )
  }

  return {
    name: 'sender-protection',
    mailFrom(tx, from) {
      if (!by.has('senderDomain')) return
      const sender = tx.original.mailFrom?.address ?? from?.address
      if (!sender?.includes('@')) return
      const pause = pauses().get(`senderDomain\0${domainKey(sender)}`)
      if (pause) refuse(pause)
    },
    async data(msg: Message, next) {
      if (by.has('tag')) {
        const tags = tagsOf(msg, header, 10)
        const all = pauses()
        const pause = tags.map((t) => all.get(`tag\0${t}`)).find(Boolean)
        if (pause) {
          reporting.note(msg.id, { tags })
          refuse(pause)
        }
      }
      return next()
    },
    paused: () => [...pauses().values()],
  }
}
