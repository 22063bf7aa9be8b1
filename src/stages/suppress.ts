/**
 * `suppress()`: never mail an address that hard-bounced, complained or unsubscribed. Checks each
 * recipient at RCPT against the suppression list (for the sender's domain, then for every
 * sender) and reports a `dropped` event. By default the client gets `550 5.7.1` for that
 * recipient (a submitting application learns at once); `mode: 'silent'` accepts the recipient
 * and sends nothing to it, as SES and SendGrid do, so the sender cannot tell.
 *
 * Place it first in the chain, before anything that rewrites or expands recipients is irrelevant:
 * it checks the address as the client gave it.
 */
import { SmtpError } from '../core/errors.js'
import type { Address, DeliveryReport, Stage } from '../core/types.js'
import type { Reporting } from '../reporting/reporting.js'
import type { SuppressionList } from '../reporting/suppression/list.js'

/**
 * Options of {@link suppress}.
 *
 * @category Reporting
 */
export interface SuppressOptions {
  /** The suppression list each recipient is checked against at RCPT. */
  readonly list: SuppressionList
  /** Where `dropped` events go. */
  readonly reporting?: Pick<Reporting, 'record'>
  /** `reject` (default): `550 5.7.1` at RCPT; `silent`: accept and drop. */
  readonly mode?: 'reject' | 'silent'
}

const dropped = new WeakMap<object, Set<string>>()

/**
 * Creates the suppression check.
 *
 * @example
 * ```ts
 * const suppressions = await openSuppressionList({ file: 'data/suppressions.jsonl' })
 * const stages = [suppress({ list: suppressions, reporting }), relayPolicy({ requireAuth: true })]
 * ```
 *
 * @category Reporting
 */
export function suppress(options: SuppressOptions): Stage {
  const mode = options.mode ?? 'reject'
  return {
    name: 'suppress',
    rcptTo(tx, to) {
      // The sender as the client gave it: a VERP return path set at MAIL is not who sends.
      const sender = tx.original.mailFrom?.address
      const found = options.list.check(to.address, sender)
      if (!found) return
      options.reporting?.record({
        type: 'dropped',
        queueId: tx.id,
        recipient: to.address,
        ...(sender ? { sender } : {}),
        reason: found.reason,
        mode: mode === 'silent' ? 'silent' : 'rejected',
      })
      if (mode === 'reject')
        throw new SmtpError(550, '5.7.1', 'Delivery to this recipient is not permitted', { reason: `suppressed (${found.reason})` })
      let set = dropped.get(tx.state)
      if (!set) dropped.set(tx.state, (set = new Set()))
      set.add(to.address.toLowerCase())
    },
    async data(msg, next): Promise<DeliveryReport> {
      const set = dropped.get(msg.state)
      if (!set?.size) return next()
      const silent: Address[] = []
      const rest: Address[] = []
      for (const r of msg.envelope.rcptTo) (set.has(r.address.toLowerCase()) ? silent : rest).push(r)
      if (!rest.length) {
        return { accepted: silent, rejected: [], response: '250 2.0.0 Ok' }
      }
      const report = await next(await msg.fork(rest, { takeBody: true }))
      return { ...report, accepted: [...report.accepted, ...silent] }
    },
  }
}
