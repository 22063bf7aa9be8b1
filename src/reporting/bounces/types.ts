/**
 * The vocabulary of bounce reporting: what a bounce report says about each recipient, and how
 * a failure is classified. A relay's reporting feature turns these into delivery events (as SES
 * and Postmark do); its suppression list reads `class` only: `hard` suppresses the recipient,
 * `block` points at the sender's own reputation or setup and must not suppress anyone, `soft`
 * and `undetermined` wait for more evidence.
 */

/**
 * What a failure means for the recipient address.
 *
 * - `hard`: the address will not work (the mailbox or the domain does not exist). Only a
 *   permanent (5.x.x) failure is ever `hard`.
 * - `soft`: the address exists but could not take the message now or this time (full mailbox,
 *   message too big, rate limits, timeouts, the receiver's own trouble).
 * - `block`: the receiver refused the sender, the sending host or the content (policy, spam,
 *   blocklists, failed SPF/DKIM/DMARC). Fix the sending side; never suppress the recipient.
 * - `undetermined`: a failure that says too little to tell.
 *
 * @category Reporting
 */
export type BounceClass = 'hard' | 'soft' | 'block' | 'undetermined'

/**
 * Why a delivery failed, in relaychain's own taxonomy (designed from Sisimai's list of reasons
 * and RFC 3463's subjects). {@link BOUNCE_CATEGORY_CLASS} gives the class of each.
 *
 * @category Reporting
 */
export type BounceCategory =
  /** The mailbox does not exist (X.1.1, "user unknown"). */
  | 'user-unknown'
  /** The mailbox moved and left no forwarding address (X.1.6, X.7.17). */
  | 'has-moved'
  /** The domain does not exist or takes no mail: NXDOMAIN, no MX, null MX (X.1.2, X.1.10, X.4.4). */
  | 'host-unknown'
  /** The mailbox is over its quota (X.2.2). */
  | 'mailbox-full'
  /** The mailbox exists but is disabled, suspended or frozen (X.2.1). */
  | 'mailbox-disabled'
  /** The message is over a size limit (X.2.3, X.3.4). */
  | 'message-too-big'
  /** Too many connections, recipients or messages for the receiver's limits. */
  | 'rate-limited'
  /** Greylisting: the receiver defers a first attempt on purpose and takes a retry. */
  | 'greylisted'
  /** The sending queue gave up after retrying (X.4.7). */
  | 'expired'
  /** Connections failed or timed out, or the message looped (X.4.x). */
  | 'network'
  /** The receiver's (or a local delivery agent's) own trouble: disk, directory, internal errors (X.3.x). */
  | 'system'
  /** An SMTP command or address was malformed or out of sequence (X.5.x, 50x replies). */
  | 'protocol'
  /** The recipient's filter refused the message after accepting the address (X.2.0, "unknown user" after DATA). */
  | 'filtered'
  /** The receiver's policy refused the message or the sender (X.7.0, X.7.1). */
  | 'policy'
  /** The message's form broke the receiver's rules: headers, encoding, RFC 5322 compliance (X.6.x). */
  | 'content'
  /** The content was judged to be spam. */
  | 'spam'
  /** The content carried a virus. */
  | 'virus'
  /** The sending host or domain is blocklisted, has a bad reputation or no reverse DNS. */
  | 'blocked'
  /** The receiver does not relay for the sender, or wants SMTP AUTH first. */
  | 'relay-denied'
  /** SPF, DKIM, DMARC (or Sender ID) checks failed for the sender (X.7.20-X.7.29). */
  | 'auth-failure'
  /** Nothing in the reply tells why. */
  | 'other'

/**
 * The class of each category. A transient (4.x.x) failure is never `hard` or `undetermined`:
 * {@link classifyReply} makes those `soft`.
 *
 * @category Reporting
 */
export const BOUNCE_CATEGORY_CLASS: Readonly<Record<BounceCategory, BounceClass>> = {
  'user-unknown': 'hard',
  'has-moved': 'hard',
  'host-unknown': 'hard',
  'mailbox-full': 'soft',
  'mailbox-disabled': 'soft',
  'message-too-big': 'soft',
  'rate-limited': 'soft',
  greylisted: 'soft',
  expired: 'soft',
  network: 'soft',
  system: 'soft',
  protocol: 'soft',
  filtered: 'block',
  policy: 'block',
  content: 'block',
  spam: 'block',
  virus: 'block',
  blocked: 'block',
  'relay-denied': 'block',
  'auth-failure': 'block',
  other: 'undetermined',
}

/**
 * The result of {@link classifyReply}.
 *
 * @category Reporting
 */
export interface BounceClassification {
  /** What the failure means for the address: `hard` suppresses, `block` never does. */
  readonly class: BounceClass
  /** Why it failed, in relaychain's taxonomy; `class` follows from it (transient failures are never `hard`). */
  readonly category: BounceCategory
  /** The RFC 3463 status the classification rests on (`5.1.1`), when one is known. */
  readonly status?: string
}

/**
 * The SMTP command a reply answered, when a report says so.
 *
 * @category Reporting
 */
export type SmtpPhase = 'connect' | 'helo' | 'mail' | 'rcpt' | 'data'

/**
 * One recipient a bounce report says was not delivered.
 *
 * @category Reporting
 */
export interface BounceRecipient {
  /** The recipient address the failure is about (RFC 3464 Final-Recipient, or found in the text). */
  readonly finalRecipient?: string
  /** The address as the original sender gave it (RFC 3464 Original-Recipient). */
  readonly originalRecipient?: string
  /** `failed` (given up) or `delayed` (still being retried: a warning). */
  readonly action: 'failed' | 'delayed'
  /**
   * The RFC 3464 Status field as written (its code only), when there is one. It can be vaguer
   * than the remote reply: `5.0.0` beside a `550 5.7.1` diagnostic.
   */
  readonly dsnStatus?: string
  /** The SMTP reply code of the remote server, when the report quotes one. */
  readonly replyCode?: number
  /** The server that refused (RFC 3464 Remote-MTA, without its `dns;` type). */
  readonly remoteMta?: string
  /** The diagnostic: the remote server's reply (RFC 3464 Diagnostic-Code without its type) or the report's reason text. */
  readonly diagnostic?: string
  /** The SMTP command the diagnostic answered, when the report says. */
  readonly phase?: SmtpPhase
  /** Class, category and the best-supported status (`classification.status` is always set here). */
  readonly classification: BounceClassification & {
    /** The status the classification rests on, else the report's Status field, else `5.0.0`. */
    readonly status: string
  }
}

/**
 * A parsed bounce: a delivery failure (or delay) report about a message the relay sent.
 *
 * @category Reporting
 */
export interface BounceReport {
  /** `rfc3464`: a message/delivery-status part; `text`: a plain-text bounce; `amazon-ses`: an SES notification. */
  readonly format: 'rfc3464' | 'text' | 'amazon-ses'
  /** The MTA that wrote the report (RFC 3464 Reporting-MTA, without its `dns;` type). */
  readonly reportingMta?: string
  /** When the reporting MTA received the original (RFC 3464 Arrival-Date), as written. */
  readonly arrivalDate?: string
  /** The ENVID the original was sent with (RFC 3464 Original-Envelope-Id); relaychain's queue id when it sent one. */
  readonly originalEnvelopeId?: string
  /** The Message-ID of the returned original, verbatim (angle brackets as written). */
  readonly originalMessageId?: string
  /** The recipients that failed or were delayed; never empty. */
  readonly recipients: readonly BounceRecipient[]
}
