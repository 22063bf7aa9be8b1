/**
 * The vocabulary of complaint reporting: a recipient (or their mailbox provider, on their
 * behalf) reported a message the relay sent, as spam, fraud, an authentication failure or an
 * unsubscribe. A relay's reporting feature turns these into complaint events (SES, Postmark)
 * and usually stops mailing the complaining recipients.
 */

/**
 * Where a complaint came from.
 *
 * @category Reporting
 */
export type ComplaintFormat =
  /** RFC 5965 Abuse Reporting Format (and RFC 6591 authentication failure reports). */
  | 'arf'
  /** Microsoft's JMRP: the original attached, the complaining recipient in X-HmXmrOriginalRecipient. */
  | 'jmrp'
  /** Apple Mail's one-click unsubscribe message (X-Apple-Unsubscribe: true). */
  | 'apple-unsubscribe'
  /** An Amazon SES complaint notification. */
  | 'amazon-ses'

/**
 * A parsed complaint.
 *
 * @category Reporting
 */
export interface Complaint {
  /** The kind of report it was parsed from. */
  readonly format: ComplaintFormat
  /**
   * The report's Feedback-Type, lower-case: `abuse`, `fraud`, `other`, `virus` (RFC 5965),
   * `auth-failure` (RFC 6591), `not-spam` (RFC 6430), `opt-out` (pre-RFC ARF, and Apple's
   * unsubscribe). Reports that carry none (JMRP) are `abuse`.
   */
  readonly feedbackType: string
  /**
   * The complaining recipients: Original-Rcpt-To, else Removal-Recipient, else the embedded
   * original's X-HmXmrOriginalRecipient or To. Empty when the report redacts them.
   */
  readonly recipients: readonly string[]
  /** The Message-ID of the reported original, verbatim (angle brackets as written, or none). */
  readonly originalMessageId?: string
  /** The envelope sender of the original (Original-Mail-From, without angle brackets). */
  readonly originalMailFrom?: string
  /** The MTA that wrote the report (Reporting-MTA, without its `dns;` type). */
  readonly reportingMta?: string
  /** The IP address the original came from (Source-IP). */
  readonly sourceIp?: string
  /** When the original arrived (Arrival-Date, or the older Received-Date), as written. */
  readonly arrivalDate?: string
  /** The software that wrote the report (User-Agent). */
  readonly userAgent?: string
}
