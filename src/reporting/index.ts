/**
 * Reporting, as relay services do it: one typed event for every step of a message's life (from
 * the engine's delivery stream, the queue, the relay's own stages and the tracking endpoints),
 * an embedded event store with the queries a sender asks, signed webhooks (Standard Webhooks)
 * that survive restarts, a suppression list fed by hard bounces, complaints and unsubscribes,
 * bounce and complaint intake (RFC 3464 DSNs to VERP return paths, ARF feedback loops), open and
 * click tracking with signed tokens, one-click unsubscribe (RFC 8058) and a dashboard.
 *
 * @example
 * ```ts
 * import { createReporting, openEventStore, openSuppressionList, startWebhooks, suppress, tracking, trackingHandler } from 'relaychain/reporting'
 * const store = await openEventStore({ dir: 'data/events' })
 * const suppressions = await openSuppressionList({ file: 'data/suppressions.jsonl' })
 * const reporting = createReporting({ store, suppressions })
 * reporting.attach(relay.events)
 * await startWebhooks({ store, dir: 'data/webhooks', endpoints: [{ name: 'app', url, secret }] })
 * createServer(trackingHandler({ reporting, keys })).listen(8080)
 * ```
 *
 * @module relaychain/reporting
 */

export { type RelayTagOptions, relayTag } from '../stages/relay-tag.js'
export { type ReportIntakeOptions, reportIntake } from '../stages/report-intake.js'
export { type SenderPause, type SenderProtection, type SenderProtectionOptions, senderProtection } from '../stages/sender-protection.js'
export { type SuppressOptions, suppress } from '../stages/suppress.js'
export { type TrackingOptions, tracking } from '../stages/tracking.js'
export { type VerpReturnPathOptions, verpReturnPath } from '../stages/verp-return-path.js'
export type { ReplyContext } from './bounces/classify-reply.js'
export { classifyReply } from './bounces/classify-reply.js'
export { parseBounce } from './bounces/parse-bounce.js'
export type { BounceCategory, BounceClass, BounceClassification, BounceRecipient, BounceReport, SmtpPhase } from './bounces/types.js'
export { BOUNCE_CATEGORY_CLASS } from './bounces/types.js'
export { parseComplaint } from './complaints/parse-complaint.js'
export type { Complaint, ComplaintFormat } from './complaints/types.js'
export type { MessageContext } from './events/from-delivery.js'
export type {
  AcceptedReportEvent,
  BouncedReportEvent,
  ClickedReportEvent,
  ComplainedReportEvent,
  DeferredReportEvent,
  DeliveredReportEvent,
  DroppedReportEvent,
  EngagementFields,
  NewReportEvent,
  OpenedReportEvent,
  QueuedReportEvent,
  RejectedReportEvent,
  ReportEvent,
  ReportEventBase,
  ReportEventType,
  UnsubscribedReportEvent,
} from './events/types.js'
export { REPORT_EVENT_TYPES } from './events/types.js'
export type { TrackingHandlerOptions, TrackingRequestHandler } from './http/handler.js'
export { trackingHandler } from './http/handler.js'
export { MAX_REPORT_BYTES } from './message-parts.js'
export type { Reporting, ReportingOptions } from './reporting.js'
export { createReporting } from './reporting.js'
export type { StatsCounts, StatsDimension, StatsRow } from './store/aggregates.js'
export type { EventStore, EventStoreOptions, StatsQuery } from './store/file-store.js'
export { openEventStore } from './store/file-store.js'
export type { Suppression, SuppressionInput, SuppressionList, SuppressionListOptions, SuppressionReason } from './suppression/list.js'
export { openSuppressionList } from './suppression/list.js'
export { NOTRACK_ATTRIBUTE, UNSUBSCRIBE_ATTRIBUTE } from './tracking/link-rules.js'
export type { LinkCandidate, LinkInfo, RewriteHtmlOptions, RewriteHtmlResult, RewrittenLink } from './tracking/rewrite-html.js'
export { pixelTag, rewriteHtml } from './tracking/rewrite-html.js'
export type { MimePartInfo, MimePartResult, TransferEncoding } from './tracking/rewrite-part.js'
export { rewriteMimePart } from './tracking/rewrite-part.js'
export type { RewriteTextOptions, RewriteTextResult } from './tracking/rewrite-text.js'
export { rewriteText } from './tracking/rewrite-text.js'
export type { TokenPayload, TrackingKey } from './tracking/token.js'
export { signToken, verifyToken } from './tracking/token.js'
export type { TrackMessageOptions } from './tracking/track-message.js'
export { trackMessage } from './tracking/track-message.js'
export type { UnsubscribeCandidate } from './tracking/unsubscribe.js'
export { isUnsubscribeLink, listUnsubscribeUrls } from './tracking/unsubscribe.js'
export { readVerp, verpAddress } from './verp.js'
export { newWebhookSecret, signWebhook } from './webhooks/sign.js'
export type { WebhookAttempt, WebhookEndpoint, Webhooks, WebhooksOptions } from './webhooks/webhooks.js'
export { STANDARD_WEBHOOK_SCHEDULE, startWebhooks } from './webhooks/webhooks.js'
