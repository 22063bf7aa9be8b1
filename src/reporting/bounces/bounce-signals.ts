/**
 * Telling a bounce from everything else that reaches a bounce address: auto-replies (RFC 3834
 * vacation notices, "Automatic reply:"), human replies, newsletters. A message/delivery-status
 * part settles it; without one, a bounce shows itself by who sent it (MAILER-DAEMON, postmaster,
 * a list's -admin address), an X-Failed-Recipients field, its subject, and failure wording in
 * its text. An auto-reply has none of the first three.
 */
import libmime from 'libmime'
import type { HeaderBlock } from '../../core/body/header-block.js'

/** Local parts and display names of the senders MTAs and list managers use for bounces. */
const DAEMON =
  /^(?:mailer[-_ ]?daemon|postmaster|post_master|mail ?delivery ?(?:subsystem|system)|mail deliver(?:y)? system|mail administrator|system administrator|mmsc|mdaemon|[\w.-]+-(?:admin|owner|bounces?|request))$|mailer-daemon|postmaster|ndr administrator|interscan/i

const BOUNCE_SUBJECT =
  /undeliver|undelivered|returned mail|return(?:ed)? to sender|failure notice|delivery (?:status notification|failure|failed|has failed|notification|report|problem)|mail delivery failed|message delivery has failed|could not be delivered|non-?delivery|not delivered|mail (?:system )?error|error sending|failed delivery|mail failure|delivery status|nicht zustellbar|non remis|loop alert|not member|エラー|不達|配信できません/i

const AUTO_REPLY_SUBJECT =
  /^\s*(?:auto(?:matic)?[ -]?(?:reply|response|answer|antwort)|out of (?:the )?office|away\b|abwesen|vacation|absence|r[ée]ponse automatique|自動応答)/i

/** Wordings of failure in a notice (not in an ordinary letter). */
const FAILURE_WORDS =
  /could not be delivered|couldn't be delivered|was not delivered|not (?:be )?delivered to|undeliverable|delivery (?:has )?failed|failed permanently|permanent (?:fatal )?error|unable to deliver|wasn't able to deliver|were unable to deliver|error (?:occurred )?while (?:trying to )?deliver|had (?:permanent )?(?:fatal |delivery )?(?:errors|problems)|trouble delivering|did not reach|could not be reached|delivery to the following recipients|is delayed|not a member/i

/** What the header and notice say about being a bounce. */
export interface BounceSignals {
  /** Sent by a mail system, not a person. */
  readonly daemonSender: boolean
  readonly bounceSubject: boolean
  readonly autoReplySubject: boolean
  /** The subject announces a successful delivery ("(Success)", "Delivered"). */
  readonly successSubject: boolean
  /** Sent with the null reverse-path, as RFC 5321 wants every bounce (auto-replies too). */
  readonly nullSender: boolean
  /** Addresses listed in X-Failed-Recipients (Exim, Gmail). */
  readonly failedRecipients: readonly string[]
  readonly failureWords: boolean
  /** The notice quotes a 4xx or 5xx SMTP reply. */
  readonly quotesReply: boolean
}

/**
 * Reads the signals from the report's header and its notice text.
 *
 * @example
 * ```ts
 * const report = await readReport(raw)
 * const signals = bounceSignals(report.headers, reportText(report).notice)
 * signals.daemonSender  // true for From: MAILER-DAEMON@mx.example
 * ```
 */
export function bounceSignals(headers: HeaderBlock, notice: string): BounceSignals {
  const from = headers.get('from') ?? ''
  const subject = libmime.decodeWords(headers.get('subject') ?? '')
  const name = from
    .replace(/<[^<>]*>/, '')
    .replace(/"/g, '')
    .trim()
  const local = /<?([^<>@\s"]+)@/.exec(from)?.[1] ?? from.replace(/[<>"]/g, '').trim()
  return {
    daemonSender: DAEMON.test(local) || (name.length > 0 && DAEMON.test(name)),
    bounceSubject: BOUNCE_SUBJECT.test(subject),
    autoReplySubject: AUTO_REPLY_SUBJECT.test(subject),
    successSubject: /\(success\)|\bsuccess(?:ful(?:ly)?)?\b|\bdelivered\b|\brelayed\b/i.test(subject),
    nullSender: headers.getAll('return-path').some((v) => /^<\s*>$/.test(v)),
    failedRecipients: headers.getAll('x-failed-recipients').flatMap((v) =>
      v
        .split(',')
        .map((a) => a.trim())
        .filter((a) => a.includes('@')),
    ),
    failureWords: FAILURE_WORDS.test(notice),
    quotesReply: /(?<![\w.:/@#=%&+-])[45][0-5]\d(?=[ -][^\n])/.test(notice),
  }
}

/**
 * True if the signals make a message without a delivery-status part a bounce.
 *
 * @example
 * ```ts
 * if (!isTextBounce(bounceSignals(report.headers, notice))) return null  // an auto-reply, a letter
 * ```
 */
export function isTextBounce(s: BounceSignals): boolean {
  const system = s.daemonSender || s.failedRecipients.length > 0
  if (s.autoReplySubject && !system) return false
  const failure = s.failureWords || s.quotesReply
  if (s.successSubject && !failure) return false
  if (system) return s.bounceSubject || failure || s.failedRecipients.length > 0
  return failure && (s.bounceSubject || s.nullSender)
}

/**
 * True if a notice is a delay warning (the MTA keeps trying), not a final failure.
 *
 * @example
 * ```ts
 * isDelayNotice(headers, 'THIS IS A WARNING MESSAGE ONLY.\nYOU DO NOT NEED TO RESEND YOUR MESSAGE.')  // true
 * ```
 */
export function isDelayNotice(headers: HeaderBlock, notice: string): boolean {
  const subject = libmime.decodeWords(headers.get('subject') ?? '')
  const warning =
    /\b(?:delay(?:ed)?|warning)\b/i.test(subject) ||
    /warning message only|is delayed|has been delayed|will (?:be )?retr(?:y|ied)|only a temporary failure|do not need to re-?send|still trying/i.test(
      notice,
    )
  return warning && !/permanent (?:fatal )?error|given up|gave up|will not (?:continue|retry)|not going to try again/i.test(notice)
}
