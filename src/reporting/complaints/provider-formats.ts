/**
 * Complaints that are not ARF: Microsoft's JMRP (a multipart/mixed report with the original
 * attached and the complaining recipient in its X-HmXmrOriginalRecipient field), Apple Mail's
 * one-click unsubscribe message (sent by the user's own address, X-Apple-Unsubscribe: true),
 * and Amazon SES complaint notifications.
 */
import type { SesNotification } from '../amazon-ses.js'
import { addressesIn } from '../header-section.js'
import type { Report } from '../message-parts.js'
import { originalHeader } from '../original-message.js'
import type { Complaint } from './types.js'

/**
 * A JMRP report, if `report` is one. JMRP says nothing of the kind of complaint: `abuse`.
 *
 * @example
 * ```ts
 * jmrpComplaint(await readReport(jmrp))  // { format: 'jmrp', feedbackType: 'abuse', recipients: ['kijitora@example.com'], ... }
 * ```
 */
export function jmrpComplaint(report: Report): Complaint | null {
  const original = originalHeader(report)
  const recipients = addressesIn(original?.get('x-hmxmroriginalrecipient'))
  if (!original || !recipients.length) return null
  return { format: 'jmrp', feedbackType: 'abuse', recipients, originalMessageId: original.get('message-id') }
}

/**
 * Apple Mail's unsubscribe message, if `report` is one: the sender is the unsubscribing user.
 *
 * @example
 * ```ts
 * appleUnsubscribe(await readReport(raw))  // { format: 'apple-unsubscribe', feedbackType: 'opt-out', recipients: ['example@icloud.com'] }
 * ```
 */
export function appleUnsubscribe(report: Report): Complaint | null {
  if (report.headers.get('x-apple-unsubscribe')?.toLowerCase() !== 'true') return null
  return { format: 'apple-unsubscribe', feedbackType: 'opt-out', recipients: addressesIn(report.headers.get('from')) }
}

/**
 * An SES complaint notification.
 *
 * @example
 * ```ts
 * const ses = sesNotification(report)
 * if (ses?.type === 'Complaint') return sesComplaint(ses)
 * ```
 */
export function sesComplaint(ses: SesNotification): Complaint {
  return {
    format: 'amazon-ses',
    feedbackType: ses.complaintFeedbackType?.toLowerCase() ?? 'abuse',
    recipients: ses.recipients.map((r) => r.emailAddress),
    originalMessageId: ses.messageId,
    originalMailFrom: ses.source,
    sourceIp: ses.sourceIp,
    arrivalDate: ses.arrivalDate,
    userAgent: ses.userAgent,
  }
}
