/**
 * Amazon SES event notifications sent by e-mail (through SNS): a JSON body, bare or wrapped in
 * the SNS envelope, with `notificationType` (or `eventType`) Bounce, Complaint or Delivery.
 * Only the fields a report needs are read, each checked for its type: the JSON is untrusted.
 */
import type { Report } from './message-parts.js'

/** A recipient listed by SES. */
export interface SesRecipient {
  readonly emailAddress: string
  readonly action?: string
  readonly status?: string
  readonly diagnosticCode?: string
}

/** The parts of an SES notification that reports use. */
export interface SesNotification {
  readonly type: string
  /** `Permanent`, `Transient` or `Undetermined` for a bounce. */
  readonly bounceType?: string
  readonly bounceSubType?: string
  readonly reportingMta?: string
  readonly recipients: readonly SesRecipient[]
  readonly complaintFeedbackType?: string
  readonly userAgent?: string
  readonly arrivalDate?: string
  /** The original's Message-ID header, when SES includes the common headers. */
  readonly messageId?: string
  readonly source?: string
  readonly sourceIp?: string
}

type Json = Record<string, unknown>

const object = (v: unknown): Json | undefined => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Json) : undefined)
const string = (v: unknown): string | undefined => (typeof v === 'string' && v.length > 0 ? v : undefined)
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : [])

/**
 * The SES notification in a single-part report, or `undefined` if it is not one.
 *
 * @example
 * ```ts
 * const ses = sesNotification(await readReport(snsMail))
 * if (ses?.type === 'Bounce') console.log(ses.bounceType, ses.recipients.map((r) => r.emailAddress))
 * ```
 */
export function sesNotification(report: Report): SesNotification | undefined {
  const [part, ...others] = report.parts
  if (!part || others.length || !part.type.startsWith('text/')) return undefined
  // SNS writes the JSON on one line, followed by its unsubscribe footer; others send only JSON.
  const line = part.text.split('\n').find((l) => l.trimStart().startsWith('{'))
  const json =
    line === undefined ? undefined : (parseJson(line) ?? parseJson(part.text.slice(part.text.indexOf('{'), part.text.lastIndexOf('}') + 1)))
  const inner = json && string(json.Type) === 'Notification' ? parseJson(string(json.Message) ?? '') : json
  const type = inner && (string(inner.notificationType) ?? string(inner.eventType))
  if (!inner || !type) return undefined
  const mail = object(inner.mail) ?? {}
  const bounce = object(inner.bounce)
  const complaint = object(inner.complaint)
  const recipients = bounce ? list(bounce.bouncedRecipients) : complaint ? list(complaint.complainedRecipients) : []
  return {
    type,
    bounceType: string(bounce?.bounceType),
    bounceSubType: string(bounce?.bounceSubType),
    reportingMta: string(bounce?.reportingMTA)?.replace(/^dns;\s*/i, ''),
    recipients: recipients.map(object).flatMap((r) => {
      const emailAddress = string(r?.emailAddress)
      return emailAddress ? [{ emailAddress, action: string(r?.action), status: string(r?.status), diagnosticCode: string(r?.diagnosticCode) }] : []
    }),
    complaintFeedbackType: string(complaint?.complaintFeedbackType),
    userAgent: string(complaint?.userAgent),
    arrivalDate: string(complaint?.arrivalDate),
    messageId: string(object(mail.commonHeaders)?.messageId) ?? headerValue(mail.headers, 'message-id'),
    source: string(mail.source),
    sourceIp: string(mail.sourceIp),
  }
}

function parseJson(text: string): Json | undefined {
  try {
    return object(JSON.parse(text))
  } catch {
    return undefined
  }
}

/** A value from SES's `mail.headers` list of `{ name, value }`. */
function headerValue(headers: unknown, name: string): string | undefined {
  const found = list(headers)
    .map(object)
    .find((h) => string(h?.name)?.toLowerCase() === name)
  return string(found?.value)
}
