/**
 * Turning what a report says about one recipient into a classified BounceRecipient, the same
 * way for every format: the status is the remote server's own enhanced code when the report
 * quotes one (a DSN's Status field is often a vaguer 5.0.0), else the Status field, else the
 * class of the reply code, else what the action implies (failed 5.0.0, delayed 4.0.0).
 */
import { classifyReply } from './classify-reply.js'
import { replyIn } from './status-codes.js'
import type { BounceRecipient, SmtpPhase } from './types.js'

/** What a report says about one recipient. */
export interface RecipientEvidence {
  readonly finalRecipient?: string
  readonly originalRecipient?: string
  readonly action: 'failed' | 'delayed'
  readonly dsnStatus?: string
  readonly remoteMta?: string
  /** The remote reply or the report's reason, on one line; its codes are the reply's. */
  readonly diagnostic?: string
  /** The text to classify, when more than the diagnostic: a plain-text notice's part about this recipient. */
  readonly reasonText?: string
  /** More of the notice, consulted only when the reason names no cause at all. */
  readonly context?: string
  readonly phase?: SmtpPhase
  /** The failure came from a local delivery program (a pipe, procmail), not an SMTP server. */
  readonly localDelivery?: boolean
}

const GENERIC = /^[245]\.0\.0$/

/**
 * Classifies the recipients of one report. Recipients that share their evidence (a DSN listing
 * thousands of addresses beside one notice) are classified once: the cost follows the distinct
 * evidence, not the size of the list.
 *
 * @example
 * ```ts
 * toRecipients([{ finalRecipient: 'bob@example.org', action: 'failed', diagnostic: '550 5.1.1 User unknown' }])
 * // [{ finalRecipient: 'bob@example.org', action: 'failed', replyCode: 550, ..., classification: { class: 'hard', category: 'user-unknown', status: '5.1.1' } }]
 * ```
 */
export function toRecipients(evidence: readonly RecipientEvidence[]): BounceRecipient[] {
  const texts = new Map<string, number>()
  const id = (text: string | undefined) => (text === undefined ? -1 : (texts.get(text) ?? texts.set(text, texts.size).get(text)!))
  const done = new Map<string, Assessment>()
  return evidence.map((e) => {
    const key = JSON.stringify([e.action, e.dsnStatus, e.diagnostic, id(e.reasonText), id(e.context), e.phase, e.localDelivery])
    let assessment = done.get(key)
    if (!assessment) done.set(key, (assessment = assess(e)))
    return {
      finalRecipient: e.finalRecipient,
      originalRecipient: e.originalRecipient,
      action: e.action,
      dsnStatus: e.dsnStatus,
      replyCode: assessment.replyCode,
      remoteMta: e.remoteMta,
      diagnostic: e.diagnostic,
      phase: e.phase,
      classification: assessment.classification,
    }
  })
}

interface Assessment {
  readonly replyCode: number | undefined
  readonly classification: BounceRecipient['classification']
}

function assess(e: RecipientEvidence): Assessment {
  const reply = replyIn(e.diagnostic ?? '')
  // The remote's own code, unless it is a bare X.0.0 beside a more specific Status field.
  const own = reply.enhanced && !(GENERIC.test(reply.enhanced) && e.dsnStatus && !GENERIC.test(e.dsnStatus)) ? reply.enhanced : undefined
  const reportedStatus = e.dsnStatus ?? (reply.code === undefined ? (e.action === 'delayed' ? '4.0.0' : '5.0.0') : undefined)
  const context = { reportedStatus, phase: e.phase }
  // A wrapper's words in front of the remote reply (SES: "5.1.0 - Unknown address error 550-...") are not the reason.
  const reason = e.reasonText ?? e.diagnostic?.slice(reply.at) ?? ''
  let classified = classifyReply(reply.code, own, reason, context)
  if (classified.category === 'other' && e.context) classified = classifyReply(reply.code, own, e.context, context)
  const category = e.localDelivery && classified.class !== 'block' ? 'system' : classified.category
  const cls = category === classified.category ? classified.class : 'soft'
  return { replyCode: reply.code, classification: { class: cls, category, status: classified.status ?? reportedStatus ?? '5.0.0' } }
}
