/**
 * parseBounce: reads a message that arrived at a bounce address and says which recipients of
 * which original message failed, and why. It knows RFC 3464 delivery status notifications
 * (also nested in a forwarded message, or pasted into a text part), Amazon SES notifications,
 * and the plain-text notices of MTAs and providers that write no DSN. Anything else at a
 * bounce address (auto-replies, success notices, complaints, people) is `null`.
 *
 * The message is read with mailsplit, at most MAX_REPORT_BYTES (2 MiB) of it: a report's own
 * parts come first, and only the returned original's tail is ever left unread.
 */
import { type SesNotification, sesNotification } from '../amazon-ses.js'
import { headerSection } from '../header-section.js'
import { type Report, readReport } from '../message-parts.js'
import { ORIGINAL_TYPES, originalMessageId } from '../original-message.js'
import { reportText } from '../report-text.js'
import { bounceSignals, isTextBounce } from './bounce-signals.js'
import { DSN_TYPES, type DsnFields, dsnFields, dsnFieldsInText } from './delivery-status.js'
import { dsnRecipients } from './dsn-bounce.js'
import { toRecipients } from './recipient-evidence.js'
import { textBounceRecipients } from './text-bounce.js'
import type { BounceRecipient, BounceReport } from './types.js'

/**
 * Parses a bounce. Resolves to `null` when the message is not a bounce: an auto-reply or
 * vacation notice, a DSN that reports only deliveries (Action delivered, relayed, expanded), a
 * complaint (see `parseComplaint`), or a message that cannot be read as MIME at all.
 *
 * @param raw The whole message, as received (CRLF or LF line endings).
 *
 * @example
 * ```ts
 * const report = await parseBounce(await readFile('bounce.eml'))
 * for (const r of report?.recipients ?? []) {
 *   if (r.classification.class === 'hard') await suppress(r.finalRecipient)
 * }
 * ```
 *
 * @category Reporting
 */
export async function parseBounce(raw: Buffer | string): Promise<BounceReport | null> {
  return parseReport(raw, 1)
}

async function parseReport(raw: Buffer | string, nesting: number): Promise<BounceReport | null> {
  let report: Report
  try {
    report = await readReport(raw)
  } catch {
    return null
  }
  if (report.reportType === 'feedback-report') return null
  const ses = sesNotification(report)
  if (ses) return ses.type === 'Bounce' ? sesBounce(ses) : null

  const text = reportText(report)
  const dsn = dsnOf(report, text.notice)
  if (dsn) {
    const recipients = dsnRecipients(dsn, text.notice)
    return build(report, 'rfc3464', recipients, text.returned, dsn)
  }
  const signals = bounceSignals(report.headers, text.notice)
  if (!isTextBounce(signals)) return null
  if (nesting > 0) {
    // A notice whose DSN is inside the message it returns (some gateways wrap the real bounce).
    const nested = report.parts.find((p) => ORIGINAL_TYPES.has(p.type) && /delivery-status/i.test(headerSection(p.body).get('content-type') ?? ''))
    if (nested) {
      const inner = await parseReport(nested.body, nesting - 1)
      if (inner) return inner
    }
  }
  return build(report, 'text', textBounceRecipients(report.headers, text.notice, signals), text.returned)
}

/** The DSN fields of a delivery-status part, else ones pasted into the notice. */
function dsnOf(report: Report, notice: string): DsnFields | undefined {
  const parts = report.parts.filter((p) => DSN_TYPES.has(p.type)).map((p) => dsnFields(p.body))
  const withRecipients = parts.filter((d) => d.recipients.length > 0)
  if (withRecipients.length) {
    return { message: withRecipients[0]!.message, recipients: withRecipients.flatMap((d) => d.recipients) }
  }
  return dsnFieldsInText(notice)
}

function build(
  report: Report,
  format: BounceReport['format'],
  recipients: BounceRecipient[],
  returned: string,
  dsn?: DsnFields,
): BounceReport | null {
  if (!recipients.length) return null
  return {
    format,
    reportingMta: dsn?.message.reportingMta,
    arrivalDate: dsn?.message.arrivalDate,
    originalEnvelopeId: dsn?.message.originalEnvelopeId,
    originalMessageId: originalMessageId(report, returned),
    recipients,
  }
}

/** What SES's bounce subtypes say, in the words the classifier knows. */
const SES_SUBTYPE_WORDS: Readonly<Record<string, string>> = {
  NoEmail: 'no such user',
  MailboxFull: 'mailbox full',
  MessageTooLarge: 'message too large',
  ContentRejected: 'content rejected',
  AttachmentRejected: 'content rejected',
}

/** An SES bounce notification. SES's bounce type and subtype stand in for a missing status and diagnostic. */
function sesBounce(ses: SesNotification): BounceReport | null {
  const fallback = ses.bounceType === 'Transient' ? '4.0.0' : ses.bounceType === 'Permanent' ? '5.0.0' : undefined
  const recipients = toRecipients(
    ses.recipients.map((r) => ({
      finalRecipient: r.emailAddress,
      action: r.action === 'delayed' ? 'delayed' : 'failed',
      dsnStatus: r.status ?? fallback,
      diagnostic: r.diagnosticCode?.replace(/^\s*smtp\s*;\s*/i, ''),
      context: ses.bounceSubType && SES_SUBTYPE_WORDS[ses.bounceSubType],
    })),
  )
  if (!recipients.length) return null
  return { format: 'amazon-ses', reportingMta: ses.reportingMta, originalMessageId: ses.messageId, recipients }
}
