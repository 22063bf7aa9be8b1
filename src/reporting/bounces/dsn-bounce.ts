/**
 * Bounces with RFC 3464 fields: per recipient, the Action says whether it failed, the
 * Diagnostic-Code quotes the remote server and the Status gives the code. What the fields leave
 * out (many MTAs write no Diagnostic-Code; Postfix says "in reply to RCPT TO command" only in its
 * notice) is read from the notice part about that recipient.
 */
import type { DsnFields, DsnRecipientFields } from './delivery-status.js'
import { toRecipients } from './recipient-evidence.js'
import { phaseIn, type QuotedReply, quotedReply } from './smtp-transcript.js'
import { recipientBlocks } from './text-recipients.js'
import type { BounceRecipient, SmtpPhase } from './types.js'

/** Actions that report a delivery, not a failure (RFC 3464 §2.3.3; `deliverable` is seen in the wild). */
const DELIVERED = new Set(['delivered', 'relayed', 'expanded', 'deliverable'])
const DELAYED = new Set(['delayed', 'delay', 'deferred', 'transient'])

/**
 * The failed and delayed recipients of the DSN; empty when every recipient was delivered.
 *
 * @example
 * ```ts
 * const part = report.parts.find((p) => p.type === 'message/delivery-status')!
 * dsnRecipients(dsnFields(part.body), reportText(report).notice)
 * ```
 */
export function dsnRecipients(dsn: DsnFields, notice: string): BounceRecipient[] {
  const addresses = dsn.recipients.flatMap((r) => (r.finalRecipient ? [r.finalRecipient] : []))
  const blocks = recipientBlocks(notice, addresses)
  // Most recipients share the whole notice: read each distinct text once.
  const read = new Map<string, { reply: QuotedReply | undefined; phase: SmtpPhase | undefined }>()
  const readText = (text: string) => read.get(text) ?? read.set(text, { reply: quotedReply(text), phase: phaseIn(text) }).get(text)!
  return toRecipients(
    dsn.recipients.flatMap((r) => {
      const action = actionOf(r)
      if (!action) return []
      const about = (r.finalRecipient && blocks.get(r.finalRecipient)) || notice
      const { reply, phase } = readText(about)
      return [
        {
          finalRecipient: r.finalRecipient,
          originalRecipient: r.originalRecipient,
          action,
          dsnStatus: r.status,
          remoteMta: r.remoteMta,
          diagnostic: r.diagnostic ?? reply?.text,
          // Without a Diagnostic-Code the notice is the only account of the failure.
          reasonText: r.diagnostic ? undefined : about,
          context: r.diagnostic ? about : undefined,
          phase: phase ?? phaseIn(r.diagnostic ?? ''),
          localDelivery: r.diagnosticType === 'x-unix' || r.finalRecipient?.startsWith('|'),
        },
      ]
    }),
  )
}

/** failed or delayed; `undefined` for a delivery. An unknown or missing Action goes by the Status class. */
function actionOf(r: DsnRecipientFields): 'failed' | 'delayed' | undefined {
  if (r.action && DELIVERED.has(r.action)) return undefined
  if (r.action && DELAYED.has(r.action)) return 'delayed'
  if (!r.action && r.status?.startsWith('2')) return undefined
  return 'failed'
}
