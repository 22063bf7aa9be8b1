/**
 * rate-limit: messages and recipients per authenticated user, client IP or sender domain over
 * time windows — "500 messages a day per user", as mail providers enforce (Postfix anvil's
 * `smtpd_client_message_rate_limit` / `smtpd_client_recipient_rate_limit`) — and a cap on
 * recipients per message. Messages are counted at MAIL (`451 4.7.1` once the window is used up),
 * recipients are checked at RCPT (`452 4.7.1`) and counted when the message is sent, so that
 * recipients refused for another reason do not count. Counters live in this process, or in Redis
 * for several relay processes (rate-limiter-flexible).
 *
 * Place it after `relay-policy`, so that only relayed mail is counted.
 */
import { domainKey } from '../core/address.js'
import { RelayError, reject, SmtpError } from '../core/errors.js'
import type { Stage, Transaction } from '../core/types.js'
import type { Clock } from '../shared/clock.js'
import { type Duration, describeSeconds, toSeconds } from '../shared/duration.js'
import { normalizeIp } from '../shared/ip.js'
import { counters, type SharedStore } from '../shared/store.js'

/**
 * One limit: at most `messages` and/or `recipients` per `key` within `window`.
 *
 * @category Stages
 */
export interface RateLimitRule {
  /**
   * What is counted: the authenticated `'user'`, the client `'ip'`, the `'sender-domain'`, or a
   * function returning the key (`undefined`: this transaction is not counted by the rule).
   * Transactions without a user (or with the null sender) are not counted by those rules.
   */
  key: 'user' | 'ip' | 'sender-domain' | ((tx: Transaction) => string | undefined)
  /** Messages per window. */
  messages?: number
  /** Recipients per window, summed over messages. */
  recipients?: number
  /** The window, in whole seconds, e.g. `'1d'`, `'1h'`, `'30s'`. */
  window: Duration
}

/**
 * Options of {@link rateLimit}.
 *
 * @category Stages
 */
export interface RateLimitOptions {
  /** The limits, each counted on its own: over a message limit MAIL gets `451 4.7.1`, over a recipient limit RCPT gets `452 4.7.1`. */
  limits?: readonly RateLimitRule[]
  /** Recipients in one message; more get `452 4.5.3` (the client sends them in another transaction). */
  recipientsPerMessage?: number
  /** Where counters live: `'memory'` (default) or `{ redis }`, shared by every relay process. */
  store?: SharedStore
  /** Milliseconds since the epoch, for in-memory windows; injectable for tests (Redis counts in its own time). Default `Date.now`. */
  clock?: Clock
}

/**
 * Creates the rate-limit stage.
 *
 * @example
 * ```ts
 * rateLimit({
 *   limits: [{ key: 'user', messages: 500, window: '1d' }, { key: 'ip', recipients: 2000, window: '1h' }],
 *   recipientsPerMessage: 100,
 *   store: { redis: 'redis://127.0.0.1:6379' },
 * })
 * ```
 *
 * @category Stages
 */
export function rateLimit(options: RateLimitOptions): Stage {
  const store = counters(options.store, options.clock)
  const cap = options.recipientsPerMessage
  if (cap !== undefined && !(Number.isInteger(cap) && cap > 0))
    throw new RelayError('ERR_RELAY_INVALID_OPTION', 'recipientsPerMessage must be a positive integer')
  const rules = (options.limits ?? []).map((rule, i) => {
    const seconds = toSeconds(rule.window, `rateLimit limits[${i}].window`)
    for (const what of ['messages', 'recipients'] as const) {
      const n = rule[what]
      if (n !== undefined && !(Number.isInteger(n) && n > 0))
        throw new RelayError('ERR_RELAY_INVALID_OPTION', `rateLimit limits[${i}].${what} must be a positive integer`)
    }
    if (!rule.messages && !rule.recipients)
      throw new RelayError('ERR_RELAY_INVALID_OPTION', `rateLimit limits[${i}] limits neither messages nor recipients`)
    const name = typeof rule.key === 'function' ? `custom${i}` : rule.key
    const counter = (what: 'messages' | 'recipients') => store.get({ prefix: `rate:${name}:${what}:${seconds}`, points: rule[what]!, seconds })
    return { ...rule, seconds, counter, keyOf: keyFunction(rule.key) }
  })
  if (!rules.length && !cap) throw new RelayError('ERR_RELAY_INVALID_OPTION', 'rateLimit needs limits or recipientsPerMessage')

  const exceeded = (code: 451 | 452, what: string, limit: number, seconds: number, key: string) =>
    new SmtpError(
      code,
      '4.7.1',
      `Rate limit exceeded: at most ${limit} ${limit === 1 ? what.slice(0, -1) : what} per ${describeSeconds(seconds)}, try again later`,
      {
        reason: `${what} limit ${limit} per ${seconds}s reached for ${key}`,
      },
    )

  return {
    name: 'rate-limit',

    async mailFrom(tx, from) {
      for (const rule of rules) {
        const key = rule.keyOf(tx, from?.address)
        if (!rule.messages || key === undefined) continue
        // Counted here, atomically: concurrent transactions cannot overshoot the limit.
        const limiter = await rule.counter('messages')
        const counted = await limiter.add(key, 1).catch((err: unknown) => {
          throw reject.tempFail(err, 'rate-limit store failed')
        })
        if (counted.consumedPoints > rule.messages) throw exceeded(451, 'messages', rule.messages, rule.seconds, key)
      }
    },

    async rcptTo(tx) {
      const inMessage = tx.envelope.rcptTo.length + 1
      if (cap && inMessage > cap) throw reject.tooManyRecipients()
      for (const rule of rules) {
        const key = rule.keyOf(tx, tx.envelope.mailFrom?.address)
        if (!rule.recipients || key === undefined) continue
        const used = (await (await rule.counter('recipients')).get(key))?.consumedPoints ?? 0
        if (used + inMessage > rule.recipients) throw exceeded(452, 'recipients', rule.recipients, rule.seconds, key)
      }
    },

    async data(msg, next) {
      const count = msg.envelope.rcptTo.length
      for (const rule of rules) {
        const key = rule.keyOf(msg, msg.envelope.mailFrom?.address)
        if (rule.recipients && key !== undefined) await (await rule.counter('recipients')).add(key, count)
      }
      return next()
    },

    close: () => store.close(),
  }
}

function keyFunction(key: RateLimitRule['key']): (tx: Transaction, sender: string | undefined) => string | undefined {
  if (typeof key === 'function') return (tx) => key(tx)
  if (key === 'user') return (tx) => tx.session.user?.toLowerCase()
  if (key === 'ip') return (tx) => normalizeIp(tx.session.remoteAddress)
  if (key === 'sender-domain') return (_tx, sender) => (sender ? domainKey(sender) : undefined)
  throw new RelayError('ERR_RELAY_INVALID_OPTION', `rateLimit key must be 'user', 'ip', 'sender-domain' or a function, got ${JSON.stringify(key)}`)
}
