/**
 * The machine-readable half of an RFC 3464 delivery status notification: the fields of a
 * message/delivery-status part (RFC 6533's message/global-delivery-status too), one group for
 * the message and one per recipient. Some MTAs (Amazon WorkMail, for one) paste these fields
 * into a text/plain part instead; `dsnFieldsInText` finds them there.
 */
import type { HeaderBlock } from '../../core/body/header-block.js'
import { addressIn, fieldGroups } from '../header-section.js'
import { oneLine } from './smtp-transcript.js'
import { statusOf } from './status-codes.js'

/** The per-message fields. */
export interface DsnMessageFields {
  readonly reportingMta?: string
  readonly arrivalDate?: string
  readonly originalEnvelopeId?: string
}

/** One recipient group, values as written (types such as `rfc822;` removed). */
export interface DsnRecipientFields {
  readonly finalRecipient?: string
  readonly originalRecipient?: string
  /** Lower-case, as written (`failed`, `delayed`, `delivered`, `relayed`, `expanded`, or a non-standard word). */
  readonly action?: string
  /** The code of the Status field (`5.1.1`), if it has one. */
  readonly status?: string
  readonly remoteMta?: string
  /** The Diagnostic-Code text without its type (`smtp;`). */
  readonly diagnostic?: string
  /** The Diagnostic-Code type, lower-case (`smtp`, `x-unix`, `x-postfix`). */
  readonly diagnosticType?: string
}

/** A parsed delivery-status body. */
export interface DsnFields {
  readonly message: DsnMessageFields
  readonly recipients: readonly DsnRecipientFields[]
}

/** The types that the body of a delivery-status part can have. */
export const DSN_TYPES: ReadonlySet<string> = new Set(['message/delivery-status', 'message/global-delivery-status'])

/**
 * Parses the body of a delivery-status part.
 *
 * @example
 * ```ts
 * dsnFields(Buffer.from('Reporting-MTA: dns; mx\n\nFinal-Recipient: rfc822; a@b\nAction: failed\nStatus: 5.1.1\n'))
 * // { message: { reportingMta: 'mx', ... }, recipients: [{ finalRecipient: 'a@b', action: 'failed', status: '5.1.1', ... }] }
 * ```
 */
export function dsnFields(body: Buffer): DsnFields {
  const groups = fieldGroups(body)
  const recipients = groups.filter(isRecipientGroup)
  const perMessage = groups.find((g) => !isRecipientGroup(g))
  return { message: perMessage ? messageFields(perMessage) : {}, recipients: recipients.map(recipientFields) }
}

/**
 * DSN fields pasted into a text part, if it holds a Final-Recipient with an Action or Status.
 *
 * @example
 * ```ts
 * dsnFieldsInText('Technical report:\n\nAction: failed\nFinal-Recipient: rfc822; a@b\nStatus: 5.3.5\n')?.recipients[0]?.status // '5.3.5'
 * ```
 */
export function dsnFieldsInText(text: string): DsnFields | undefined {
  const start = text.search(/^(?:Reporting-MTA|Final-Recipient|Original-Recipient|Action):/im)
  if (start < 0) return undefined
  const found = dsnFields(Buffer.from(text.slice(start), 'utf8'))
  return found.recipients.some((r) => r.finalRecipient && (r.action || r.status)) ? found : undefined
}

function isRecipientGroup(group: HeaderBlock): boolean {
  return group.has('final-recipient') || group.has('original-recipient') || (group.has('action') && !group.has('reporting-mta'))
}

function messageFields(group: HeaderBlock): DsnMessageFields {
  return {
    reportingMta: untyped(group.get('reporting-mta')),
    arrivalDate: group.get('arrival-date'),
    originalEnvelopeId: group.get('original-envelope-id'),
  }
}

function recipientFields(group: HeaderBlock): DsnRecipientFields {
  const diagnostic = group.get('diagnostic-code')
  const typed = diagnostic === undefined ? undefined : /^\s*([\w.-]+)\s*;\s*([\s\S]*)$/.exec(diagnostic)
  return {
    // Some gateways (McAfee) write only Original-Recipient: it is then the address that failed.
    finalRecipient: addressIn(group.get('final-recipient') ?? group.get('original-recipient')),
    originalRecipient: addressIn(group.get('original-recipient')),
    action: group.get('action')?.toLowerCase().split(/[\s(]/)[0],
    status: statusOf(group.get('status')),
    remoteMta: untyped(group.get('remote-mta')),
    diagnostic: diagnostic === undefined ? undefined : oneLine(typed ? typed[2]! : diagnostic) || undefined,
    diagnosticType: typed ? typed[1]?.toLowerCase() : undefined,
  }
}

/** A value without its RFC 3464 type (`dns; mx.example` → `mx.example`). */
function untyped(value: string | undefined): string | undefined {
  const rest = value?.replace(/^\s*[\w.-]+\s*;\s*/, '').trim()
  return rest || undefined
}
