/**
 * When a deferred recipient is tried again, and when its message gives up. Postfix's rule: the
 * delay grows with the message's age (the next attempt comes after about as long again as the
 * message has waited), clamped between a minimum and a maximum, with jitter so that a backlog
 * does not come back all at once; RFC 5321 §4.5.4.1 asks for at least 30 minutes between retries
 * in the long run and giving up after at least 4–5 days.
 */
import { type Duration, toMs } from '../shared/duration.js'

/**
 * The retry schedule of a queue.
 *
 * @category Queue
 */
export interface RetryOptions {
  /** The shortest delay before a retry. Default `'5m'` (Postfix `minimal_backoff_time`). */
  minimum?: Duration
  /** The longest. Default `'1h'` (Postfix `maximal_backoff_time` is 4000 s). */
  maximum?: Duration
  /** How long a message may stay queued before it expires and is bounced. Default `'5d'`. */
  lifetime?: Duration
  /** When the sender hears that delivery is delayed (once); `false` for never. Default `'4h'`. */
  delayNotice?: Duration | false
  /** Jitter as a fraction of the delay, either way. Default 0.1. */
  jitter?: number
}

/**
 * A schedule with its durations in milliseconds.
 *
 * @category Queue
 */
export interface RetrySchedule {
  /** The shortest delay before a retry. */
  readonly minimum: number
  /** The longest delay before a retry. */
  readonly maximum: number
  /** How long a message may stay queued. */
  readonly lifetime: number
  /** When the delay notice is due, after arrival; undefined for never. */
  readonly delayNotice: number | undefined
  /** When to try again: `now` plus the delay for a message created at `created`. */
  next(created: number, now: number): number
}

/**
 * The schedule for `options`; throws a `RelayError` for a bad duration.
 *
 * @example
 * ```ts
 * const schedule = retrySchedule({ minimum: '1m', maximum: '30m', lifetime: '2d' })
 * schedule.next(createdAt, Date.now()) // ms since the epoch of the next attempt
 * ```
 *
 * @category Queue
 */
export function retrySchedule(options: RetryOptions = {}, random: () => number = Math.random): RetrySchedule {
  const minimum = toMs(options.minimum ?? '5m', 'retry.minimum')
  const maximum = Math.max(minimum, toMs(options.maximum ?? '1h', 'retry.maximum'))
  const lifetime = toMs(options.lifetime ?? '5d', 'retry.lifetime')
  const delayNotice = options.delayNotice === false ? undefined : toMs(options.delayNotice ?? '4h', 'retry.delayNotice')
  const jitter = Math.min(Math.max(options.jitter ?? 0.1, 0), 0.5)
  return {
    minimum,
    maximum,
    lifetime,
    delayNotice,
    next(created, now) {
      const age = Math.max(0, now - created)
      const delay = Math.min(maximum, Math.max(minimum, age))
      return now + Math.round(delay * (1 + jitter * (2 * random() - 1)))
    },
  }
}
