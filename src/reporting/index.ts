/**
 * Reporting: reading what comes back after sending. `parseBounce` turns a bounce (an RFC 3464
 * DSN, an Amazon SES notification or a plain-text notice) into classified failed recipients;
 * `parseComplaint` turns a feedback-loop report (ARF, JMRP, Apple's unsubscribe, SES) into
 * complaining recipients; `classifyReply` classifies one SMTP failure the same way for the
 * relay's own queue. Each result names the original Message-ID, to match it to what was sent.
 *
 * @module relaychain/reporting
 */

export type { ReplyContext } from './bounces/classify-reply.js'
export { classifyReply } from './bounces/classify-reply.js'
export { parseBounce } from './bounces/parse-bounce.js'
export type { BounceCategory, BounceClass, BounceClassification, BounceRecipient, BounceReport, SmtpPhase } from './bounces/types.js'
export { BOUNCE_CATEGORY_CLASS } from './bounces/types.js'
export { parseComplaint } from './complaints/parse-complaint.js'
export type { Complaint, ComplaintFormat } from './complaints/types.js'
export { MAX_REPORT_BYTES } from './message-parts.js'
