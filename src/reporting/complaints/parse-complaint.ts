/**
 * parseComplaint: reads a message that arrived at a feedback-loop or abuse address and says
 * who complained about which original message, and how. It knows RFC 5965 ARF reports
 * (`multipart/report; report-type=feedback-report`, RFC 6591 authentication failure reports
 * included), Microsoft JMRP reports, Apple Mail's unsubscribe messages and Amazon SES complaint
 * notifications. Anything else, bounces included, is `null`.
 *
 * The message is read with mailsplit, at most 2 MiB of it (the reported original comes last).
 */
import { sesNotification } from '../amazon-ses.js'
import { addressesIn, addressIn, headerSection } from '../header-section.js'
import { type Report, readReport } from '../message-parts.js'
import { originalHeader, originalMessageId } from '../original-message.js'
import { appleUnsubscribe, jmrpComplaint, sesComplaint } from './provider-formats.js'
import type { Complaint } from './types.js'

/**
 * Parses a complaint. Resolves to `null` when the message is not a complaint report (a
 * bounce, an auto-reply, a person writing), or cannot be read as MIME at all.
 *
 * @param raw The whole message, as received (CRLF or LF line endings).
 *
 * @example
 * ```ts
 * const complaint = await parseComplaint(await readFile('fbl.eml'))
 * if (complaint && complaint.feedbackType !== 'not-spam') {
 *   for (const rcpt of complaint.recipients) await unsubscribe(rcpt, complaint.originalMessageId)
 * }
 * ```
 *
 * @category Reporting
 */
export async function parseComplaint(raw: Buffer | string): Promise<Complaint | null> {
  let report: Report
  try {
    report = await readReport(raw)
  } catch {
    return null
  }
  const feedback = report.parts.find((p) => p.type === 'message/feedback-report')
  if (feedback) return arfComplaint(report, feedback.body)
  if (report.reportType === 'delivery-status') return null
  const ses = sesNotification(report)
  if (ses) return ses.type === 'Complaint' ? sesComplaint(ses) : null
  return jmrpComplaint(report) ?? appleUnsubscribe(report)
}

/** An ARF report: the fields of its message/feedback-report part, and the original it carries. */
function arfComplaint(report: Report, body: Buffer): Complaint {
  const fields = headerSection(withoutLeadingBlankLines(body))
  const original = originalHeader(report)
  const listed = fields.getAll('original-rcpt-to').flatMap(addressesIn)
  const removal = fields.getAll('removal-recipient').flatMap(addressesIn)
  const embedded = addressesIn(original?.get('x-hmxmroriginalrecipient') ?? original?.get('to'))
  return {
    format: 'arf',
    feedbackType: fields.get('feedback-type')?.toLowerCase() || 'abuse',
    recipients: listed.length ? listed : removal.length ? removal : embedded,
    originalMessageId: originalMessageId(report),
    originalMailFrom: addressIn(fields.get('original-mail-from')),
    reportingMta: fields.get('reporting-mta')?.replace(/^\s*[\w.-]+\s*;\s*/, '') || undefined,
    sourceIp: fields.get('source-ip'),
    arrivalDate: fields.get('arrival-date') ?? fields.get('received-date'),
    userAgent: fields.get('user-agent'),
  }
}

function withoutLeadingBlankLines(body: Buffer): Buffer {
  const text = body.toString('latin1')
  return Buffer.from(text.replace(/^(?:[ \t]*\r?\n)+/, ''), 'latin1')
}
