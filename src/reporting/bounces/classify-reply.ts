/**
 * Classifying one SMTP failure: the relay's queue calls this for the replies it gets (a 5xx to
 * bounce, a 4xx at expiry) and parseBounce for every recipient of a bounce it reads, so both
 * speak of failures the same way.
 *
 * The order of evidence follows notes/delivery.md: the RFC 3463 class decides permanent versus
 * transient; a cause the reply's words name unambiguously comes next (servers put `5.1.1` on
 * "over quota" and `5.7.1` on "invalid recipient"); then the subject/detail of the enhanced code
 * (X.1.1, X.1.2, X.1.10, X.4.4 hard; X.2.2 soft; X.7.x block); then vaguer words and the basic
 * reply code. Facts of the SMTP dialogue override the words:
 *
 * - a server that answers with its own X.7.x code refused by policy, and X.1.7/X.1.8 refuse
 *   the sender's address, whatever the words: that never suppresses the recipient;
 * - "unknown user" answered to DATA comes from a filter, since RCPT had accepted that very
 *   address (unless the server says X.1.1);
 * - a refusal at connect or of MAIL FROM is about the sender, never the recipient.
 */
import { categoryOfReplyCode, categoryOfStatus, replyIn, statusOf } from './status-codes.js'
import { strongCategoryOfText, weakCategoryOfText } from './text-patterns.js'
import { BOUNCE_CATEGORY_CLASS, type BounceCategory, type BounceClass, type BounceClassification, type SmtpPhase } from './types.js'

/**
 * What else is known about the reply.
 *
 * @category Reporting
 */
export interface ReplyContext {
  /** The command the reply answered. */
  readonly phase?: SmtpPhase
  /**
   * The status a reporting MTA assigned (a DSN's Status field) when the reply carries no
   * enhanced code of its own. It decides permanent versus transient, and names the cause when
   * the words do not; being a translation, it never vetoes what the words say.
   */
  readonly reportedStatus?: string
}

/**
 * How much text is read. An SMTP reply line is at most 512 bytes (RFC 5321 §4.5.3.1.5) and a
 * notice gives its reason first; the limit keeps hostile input from costing time.
 */
export const MAX_REASON_TEXT = 16 * 1024

const ABOUT_THE_RECIPIENT = new Set<BounceCategory>(['user-unknown', 'has-moved', 'host-unknown', 'mailbox-full', 'mailbox-disabled'])
const ABOUT_THE_SENDER = new Set<SmtpPhase | undefined>(['connect', 'helo', 'mail'])

/**
 * Classifies an SMTP failure from its reply code, enhanced status code and text. Either code
 * may be missing: one quoted in `text` is used instead.
 *
 * @param code The basic reply code (`550`), if known.
 * @param enhanced The reply's RFC 3463 code (`5.1.1`), if known.
 * @param text The reply text, or a report's reason text.
 * @param context The command the reply answered, and a reporting MTA's status, when known.
 *
 * @example
 * ```ts
 * classifyReply(550, '5.1.1', 'user unknown')
 * // { class: 'hard', category: 'user-unknown', status: '5.1.1' }
 * classifyReply(554, '5.7.1', 'Message rejected as spam')
 * // { class: 'block', category: 'spam', status: '5.7.1' }
 * classifyReply(550, '5.7.1', 'Recipient unknown')  // a policy code: never suppresses
 * // { class: 'block', category: 'policy', status: '5.7.1' }
 * classifyReply(550, undefined, 'User unknown', { phase: 'data' })
 * // { class: 'block', category: 'filtered', status: '5.0.0' }
 * ```
 *
 * @category Reporting
 */
export function classifyReply(
  code: number | undefined,
  enhanced: string | undefined,
  text: string,
  context: ReplyContext = {},
): BounceClassification {
  const words = text.slice(0, MAX_REASON_TEXT)
  const quoted = code === undefined || enhanced === undefined ? replyIn(words) : undefined
  const replyCode = code ?? quoted?.code
  const own = statusOf(enhanced) ?? quoted?.enhanced
  const status = own ?? statusOf(context.reportedStatus) ?? (replyCode === undefined ? undefined : `${String(replyCode)[0]}.0.0`)
  const fromStatus = categoryOfStatus(status)

  let category = strongCategoryOfText(words) ?? fromStatus ?? weakCategoryOfText(words) ?? categoryOfReplyCode(replyCode) ?? 'other'
  if (own && namesSenderOrPolicy(own) && isHard(category) && !isHard(fromStatus)) category = 'policy'
  if (category === 'user-unknown' && context.phase === 'data' && fromStatus !== 'user-unknown') category = 'filtered'
  if (ABOUT_THE_RECIPIENT.has(category) && ABOUT_THE_SENDER.has(context.phase)) category = 'policy'

  return { class: classOf(category, status?.startsWith('4') ?? false), category, status }
}

/** X.7.x (security or policy) and X.1.7/X.1.8 (the sender's address): the server refused us, not the recipient. */
function namesSenderOrPolicy(status: string): boolean {
  const [, subject, detail] = status.split('.')
  return subject === '7' || (subject === '1' && (detail === '7' || detail === '8'))
}

function isHard(category: BounceCategory | undefined): boolean {
  return category !== undefined && BOUNCE_CATEGORY_CLASS[category] === 'hard'
}

/** The class of a category; transient failures are never hard or undetermined. */
function classOf(category: BounceCategory, transient: boolean): BounceClass {
  const base = BOUNCE_CATEGORY_CLASS[category]
  return transient && (base === 'hard' || base === 'undetermined') ? 'soft' : base
}
