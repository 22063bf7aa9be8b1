/**
 * The reporting events: one typed union for the whole life of a message, as relay services
 * report it (SES, SendGrid, Mailgun, Postmark), with a unique id per event so that a webhook
 * receiver can drop repeats. They are mapped from the engine's delivery stream (see
 * `from-delivery.ts`) and added by reporting's own parts (suppression drops, ingested bounces
 * and complaints, opens, clicks, unsubscribes); the event store, webhooks and metrics read them.
 */
import type { BounceCategory, BounceClass } from '../bounces/types.js'

/**
 * Fields every reporting event has.
 *
 * @category Reporting
 */
export interface ReportEventBase {
  /** Unique id (`ev_…`, URL-safe); the same event always carries the same id, retried or replayed. */
  readonly id: string
  /** Milliseconds since the epoch. */
  readonly time: number
  /** The relay's transaction (queue) id, as in the 250 reply. */
  readonly queueId?: string
  /** The message's Message-ID field, as written (angle brackets included). */
  readonly messageId?: string
  /** The envelope sender (`<>` for the null sender). */
  readonly sender?: string
  /** The recipient the event is about (absent on message-wide events). */
  readonly recipient?: string
  /** Campaign or stream names (`X-Relay-Tag` from an authenticated sender, or a stage's `msg.state.tags`). */
  readonly tags: readonly string[]
}

/**
 * The relay accepted the message (the client got 250).
 *
 * @category Reporting
 */
export interface AcceptedReportEvent extends ReportEventBase {
  /** The event's kind. */
  readonly type: 'accepted'
  /** The envelope recipients, as the chain left them. */
  readonly recipients: readonly string[]
  /** Bytes received. */
  readonly size: number
  /** The authenticated login that submitted it, if any. */
  readonly user?: string
}

/**
 * The relay refused a sender, a recipient or the message before the queue (policy, virus, spam, relay denied).
 *
 * @category Reporting
 */
export interface RejectedReportEvent extends ReportEventBase {
  /** The event's kind. */
  readonly type: 'rejected'
  /** `mail`, `rcpt` or `data`: which command was refused. */
  readonly phase: 'mail' | 'rcpt' | 'data'
  /** The reply the client got, e.g. `554 5.7.1 Message refused`. */
  readonly reply: string
  /** The stage that refused, if one did. */
  readonly stage?: string
}

/**
 * A suppressed recipient was not sent to.
 *
 * @category Reporting
 */
export interface DroppedReportEvent extends ReportEventBase {
  /** The event's kind. */
  readonly type: 'dropped'
  readonly recipient: string
  /** Why the address is suppressed: `hard-bounce`, `complaint`, `unsubscribe`, `manual`. */
  readonly reason: string
  /** `rejected`: the client got a 5xx; `silent`: it got 250 and nothing was sent. */
  readonly mode: 'rejected' | 'silent'
}

/**
 * The queue stored the message durably.
 *
 * @category Reporting
 */
export interface QueuedReportEvent extends ReportEventBase {
  /** The event's kind. */
  readonly type: 'queued'
  /** The recipients queued. */
  readonly recipients: readonly string[]
  /** The message's size in bytes. */
  readonly size: number
}

/**
 * The next hop accepted the message for a recipient.
 *
 * @category Reporting
 */
export interface DeliveredReportEvent extends ReportEventBase {
  /** The event's kind. */
  readonly type: 'delivered'
  readonly recipient: string
  /** The next hop's reply. */
  readonly response: string
  /** From the queue: which attempt this was (1 for the first). */
  readonly attempt?: number
  /** The next hop (remote MTA or route), when known. */
  readonly remoteMta?: string
}

/**
 * An attempt failed temporarily; the queue tries again.
 *
 * @category Reporting
 */
export interface DeferredReportEvent extends ReportEventBase {
  /** The event's kind. */
  readonly type: 'deferred'
  readonly recipient: string
  /** The next hop's reply, or the relay's own when it gave none (`451 4.4.1 …` for a refused connection). */
  readonly reply: string
  /** Which attempt failed (1 for the first). */
  readonly attempt: number
  /** When it is tried again (ms since the epoch), if scheduled. */
  readonly next?: number
  /** The next hop (remote MTA or route), when known. */
  readonly remoteMta?: string
}

/**
 * A recipient bounced: refused permanently, given up by the queue, or reported by a DSN that came back.
 *
 * @category Reporting
 */
export interface BouncedReportEvent extends ReportEventBase {
  /** The event's kind. */
  readonly type: 'bounced'
  readonly recipient: string
  /**
   * `hard`: the address does not work (suppressed); `soft`: it could not take the message this
   * time; `block`: the receiver refused the sender or the content (policy, X.7.x: never
   * suppresses); `undetermined`: too little to tell.
   */
  readonly bounceType: BounceClass
  /** Why it bounced (`expired` when the queue gave up). */
  readonly category: BounceCategory
  /** The RFC 3463 status, e.g. `5.1.1`. */
  readonly status: string
  /** The remote MTA that refused, when known. */
  readonly remoteMta?: string
  /** The remote reply or the report's diagnostic. */
  readonly diagnostic: string
  /** `relay`: the next hop refused the relay's own attempt; `expired`: the queue gave up; `dsn`: an asynchronous bounce that came back. */
  readonly source: 'relay' | 'expired' | 'dsn'
}

/**
 * A recipient complained (a feedback-loop report).
 *
 * @category Reporting
 */
export interface ComplainedReportEvent extends ReportEventBase {
  /** The event's kind. */
  readonly type: 'complained'
  readonly recipient: string
  /** The ARF Feedback-Type (`abuse`, `fraud`, `opt-out` …). */
  readonly feedbackType: string
  /** The report's format (`arf`, `jmrp`, `amazon-ses` …). */
  readonly format: string
  /** The software that wrote the report (its User-Agent field), when given. */
  readonly userAgent?: string
}

/**
 * What opens and clicks share.
 *
 * @category Reporting
 */
export interface EngagementFields extends ReportEventBase {
  readonly recipient: string
  /** True for a proxy, scanner or prefetch (Apple Mail Privacy Protection, a HEAD request, a fetch right after delivery): not a human. */
  readonly machine: boolean
  /** The request's User-Agent header (at most 256 characters), when sent. */
  readonly userAgent?: string
  /** The address the request came from (the socket's peer: a proxy's, behind one). */
  readonly ip?: string
}

/**
 * The open pixel was loaded.
 *
 * @category Reporting
 */
export interface OpenedReportEvent extends EngagementFields {
  /** The event's kind. */
  readonly type: 'opened'
}

/**
 * A tracked link was followed.
 *
 * @category Reporting
 */
export interface ClickedReportEvent extends EngagementFields {
  /** The event's kind. */
  readonly type: 'clicked'
  /** The link's original target, as signed into the click token (where the client was redirected). */
  readonly url: string
  /** The link's index in the message. */
  readonly link: number
}

/**
 * A recipient unsubscribed.
 *
 * @category Reporting
 */
export interface UnsubscribedReportEvent extends ReportEventBase {
  /** The event's kind. */
  readonly type: 'unsubscribed'
  readonly recipient: string
  /** `one-click`: RFC 8058 POST; `page`: the confirmation page's button; `mailto`; `complaint`: a feedback-loop opt-out. */
  readonly method: 'one-click' | 'page' | 'mailto' | 'complaint'
}

/**
 * Every reporting event.
 *
 * @category Reporting
 */
export type ReportEvent =
  | AcceptedReportEvent
  | RejectedReportEvent
  | DroppedReportEvent
  | QueuedReportEvent
  | DeliveredReportEvent
  | DeferredReportEvent
  | BouncedReportEvent
  | ComplainedReportEvent
  | OpenedReportEvent
  | ClickedReportEvent
  | UnsubscribedReportEvent

/**
 * The `type` of a reporting event.
 *
 * @category Reporting
 */
export type ReportEventType = ReportEvent['type']

/**
 * Every type, in lifecycle order.
 *
 * @category Reporting
 */
export const REPORT_EVENT_TYPES: readonly ReportEventType[] = [
  'accepted',
  'rejected',
  'dropped',
  'queued',
  'delivered',
  'deferred',
  'bounced',
  'complained',
  'opened',
  'clicked',
  'unsubscribed',
]

/**
 * A reporting event before it has an id and a time (what a part of reporting hands to `record`).
 *
 * @category Reporting
 */
export type NewReportEvent = ReportEvent extends infer E
  ? E extends ReportEvent
    ? Omit<E, 'id' | 'time' | 'tags'> & {
        /** Default: a random `ev_…` id; pass a derived one for an event that can repeat. */
        id?: string
        /** Milliseconds since the epoch. Default: now, by the hub's clock. */
        time?: number
        /** Default: the tags of the message's context (none without one). */
        tags?: readonly string[]
      }
    : never
  : never
