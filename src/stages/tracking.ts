/**
 * `tracking()`: open and click tracking, and one-click unsubscribe headers, for bulk mail. In
 * each HTML body part it replaces the `href` of every trackable link with a signed click URL
 * (`<baseUrl>/c/<token>`) and inserts an open pixel (`<baseUrl>/o/<token>`), changing no other
 * byte of the HTML or of the MIME structure (see `trackMessage`); it leaves `mailto:`, `tel:`,
 * fragments, links marked `data-relay-notrack` and unsubscribe links alone. It adds
 * `List-Unsubscribe: <<baseUrl>/u/<token>>[, <mailto:…>]` and `List-Unsubscribe-Post:
 * List-Unsubscribe=One-Click` (RFC 8058) unless the message has its own. Tokens bind the queue
 * id, the recipient and the link, so a message to several recipients is sent as one copy each.
 * The `trackingHandler()` serves those URLs.
 *
 * Place it before DKIM signing (it changes the body, and the unsubscribe headers must be signed):
 * the pipeline refuses the other order. With a durable queue, place it in the queue's delivery
 * chain (with the signer), not in front of the queue: the per-recipient copies share the
 * message's id, and the queue keys its entries by id.
 */

import { RelayError } from '../core/errors.js'
import type { Address, DeliveryReport, Message, Stage } from '../core/types.js'
import { signToken, type TrackingKey } from '../reporting/tracking/token.js'
import { trackMessage } from '../reporting/tracking/track-message.js'
import { isUnsubscribeLink, listUnsubscribeUrls } from '../reporting/tracking/unsubscribe.js'

/**
 * Options of {@link tracking}.
 *
 * @category Reporting
 */
export interface TrackingOptions {
  /** Where `trackingHandler()` is reachable from the internet, e.g. `https://t.example.com`. */
  readonly baseUrl: string
  /** Signing keys, newest first (see `signToken`). */
  readonly keys: readonly TrackingKey[]
  /** Insert the open pixel. Default true. */
  readonly opens?: boolean
  /** Rewrite links. Default true. */
  readonly clicks?: boolean
  /** Track URLs in text/plain parts too. Default false. */
  readonly text?: boolean
  /** Add List-Unsubscribe headers (`mailto` adds that form too). Default true. */
  readonly listUnsubscribe?:
    | boolean
    | {
        /** The address for the `mailto:` form (written with `?subject=unsubscribe`), e.g. `unsubscribe@example.com`. */
        readonly mailto?: string
      }
  /** Track only messages this accepts. Default: all. */
  readonly when?: (msg: Message) => boolean
  /** Token lifetime in seconds (the redirector refuses older ones). Default: none. */
  readonly lifetime?: number
}

/**
 * Creates the tracking stage.
 *
 * @example
 * ```ts
 * const keys = [{ id: '2027-01', secret: process.env.TRACKING_SECRET! }]
 * const stages = [
 *   relayPolicy({ requireAuth: true }),
 *   tracking({ baseUrl: 'https://t.example.com', keys, listUnsubscribe: { mailto: 'unsubscribe@example.com' } }),
 *   dkimSign({ keys: dkimKeys }),
 * ]
 * ```
 *
 * @category Reporting
 */
export function tracking(options: TrackingOptions): Stage {
  let base: string
  try {
    base = new URL(options.baseUrl).href.replace(/\/$/, '')
  } catch {
    throw new RelayError('ERR_RELAY_INVALID_OPTION', `tracking: baseUrl ${options.baseUrl} is not a URL`)
  }
  if (!/^https?:$/.test(new URL(base).protocol)) throw new RelayError('ERR_RELAY_INVALID_OPTION', 'tracking: baseUrl must be http(s)')
  const { keys } = options
  signToken({ messageId: 'check', recipient: 'check' }, keys) // checks the keys when the chain is built
  const list = options.listUnsubscribe ?? true
  const mailto = typeof list === 'object' ? list.mailto : undefined

  async function apply(msg: Message, rcpt: Address): Promise<void> {
    const expires = options.lifetime ? Math.floor(Date.now() / 1000) + options.lifetime : undefined
    const bind = { messageId: msg.id, recipient: rcpt.address, ...(expires ? { expires } : {}) }
    if (list && !msg.headers.get('list-unsubscribe')) {
      const unsubscribe = `${base}/u/${signToken(bind, keys)}`
      const mail = mailto ? `, <mailto:${mailto}?subject=unsubscribe>` : ''
      msg.headers.add('List-Unsubscribe-Post', 'List-Unsubscribe=One-Click')
      msg.headers.add('List-Unsubscribe', `<${unsubscribe}>${mail}`)
    }
    const listed = listUnsubscribeUrls(msg.headers.get('list-unsubscribe'))
    await msg.rewrite(
      trackMessage({
        rewrite: (link) =>
          options.clicks === false || isUnsubscribeLink(link, listed)
            ? undefined
            : `${base}/c/${signToken({ ...bind, link: link.index, url: link.url }, keys)}`,
        ...(options.opens === false ? {} : { pixel: `${base}/o/${signToken(bind, keys)}` }),
        ...(options.text ? { text: true } : {}),
      }),
    )
  }

  return {
    name: 'tracking',
    modifies: 'body',
    async data(msg, next): Promise<DeliveryReport> {
      if (options.when && !options.when(msg)) return next()
      const rcpts = msg.envelope.rcptTo
      if (rcpts.length === 1) {
        await apply(msg, rcpts[0]!)
        return next()
      }
      const reports: DeliveryReport[] = []
      for (let i = 0; i < rcpts.length; i++) {
        const copy = await msg.fork([rcpts[i]!], { takeBody: i === rcpts.length - 1 })
        await apply(copy, rcpts[i]!)
        reports.push(await next(copy))
      }
      return {
        accepted: reports.flatMap((r) => r.accepted),
        rejected: reports.flatMap((r) => r.rejected),
        ...(reports.at(-1)?.response ? { response: reports.at(-1)!.response! } : {}),
        ...(reports.every((r) => r.queued) ? { queued: true } : {}),
      }
    },
  }
}
