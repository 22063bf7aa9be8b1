/**
 * `verpReturnPath()`: sets the envelope sender of outgoing mail to a signed VERP address on the
 * relay's bounce domain (`bounces+<queue id>.<mac>@bounces.example.com`), so that a bounce that
 * comes back later, as a DSN to that address, names the message it is about (`reportIntake()`
 * reads it). The original sender is kept for reporting. Mail with the null sender (bounces
 * themselves) is left alone.
 *
 * Place it after the policy stages that look at the sender (SPF alignment of the bounce domain is
 * the operator's to set up: the bounce domain needs SPF for the relay's addresses).
 */
import type { Stage } from '../core/types.js'
import type { Reporting } from '../reporting/reporting.js'
import type { TrackingKey } from '../reporting/tracking/token.js'
import { verpAddress } from '../reporting/verp.js'

/**
 * Options of {@link verpReturnPath}.
 *
 * @category Reporting
 */
export interface VerpReturnPathOptions {
  /** The domain whose mail `reportIntake()` takes, e.g. `bounces.example.com`. */
  readonly domain: string
  /** Keys for the mac (the tracking keys will do). */
  readonly keys: readonly TrackingKey[]
  /** Told the original sender. */
  readonly reporting?: Pick<Reporting, 'note'>
  /** Rewrite only mail this accepts. Default: all with a sender. */
  readonly when?: (sender: string) => boolean
}

/**
 * Creates the VERP stage.
 *
 * @example
 * ```ts
 * const stages = [relayPolicy({ requireAuth: true }), verpReturnPath({ domain: 'bounces.example.com', keys, reporting })]
 * ```
 *
 * @category Reporting
 */
export function verpReturnPath(options: VerpReturnPathOptions): Stage {
  return {
    name: 'verp-return-path',
    mailFrom(tx, from) {
      if (!from || (options.when && !options.when(from.address))) return
      options.reporting?.note(tx.id, { sender: from.address })
      return { ...from, address: verpAddress(tx.id, options.domain, options.keys) }
    },
  }
}
