/**
 * Delivery status notifications (RFC 3464): what the relay tells an envelope sender about
 * recipients it accepted: failed (a permanent refusal, or the queue gave up), delayed (still
 * trying), or delivered/relayed (the sender asked with NOTIFY=SUCCESS). It honours NOTIFY, RET
 * and ENVID (RFC 3461), names each recipient's ORCPT, and carries the original header section
 * (text/rfc822-headers), or the whole message with RET=FULL when it is small enough.
 */
import { randomBytes } from 'node:crypto'
import { HeaderBlock } from '../core/body/header-block.js'
import type { SmtpError } from '../core/errors.js'
import type { Address, Message } from '../core/types.js'
import { rfc5322Date } from '../shared/date.js'

/** A recipient the DSN reports as failed. */
export interface FailedRecipient {
  /** The recipient as delivered to. */
  readonly rcpt: Address
  /** The recipient as the client gave it, if different (alias expansion, rewrite). */
  readonly original?: Address
  readonly error: SmtpError
}

/** What a notice says about one recipient. */
export interface NoticeRecipient {
  readonly rcpt: Address
  readonly original?: Address | undefined
  /** RFC 3464 Action. */
  readonly action: 'failed' | 'delayed' | 'delivered' | 'relayed'
  /** RFC 3463 status, e.g. `5.1.1`. */
  readonly status: string
  /** The reply that decided it, e.g. `550 5.1.1 No such user`. */
  readonly diagnostic?: string | undefined
  readonly remoteMta?: string | undefined
}

/** A generated DSN, ready to be sent with a null sender. */
export interface Dsn {
  readonly to: Address
  readonly headers: HeaderBlock
  readonly body: Buffer
}

/** Which notices a recipient asked for (RFC 3461 §4.1): without NOTIFY, failures and delays. */
export function wants(rcpt: Address, kind: 'FAILURE' | 'DELAY' | 'SUCCESS'): boolean {
  const notify = rcpt.args?.NOTIFY
  if (typeof notify !== 'string') return kind !== 'SUCCESS'
  return notify.toUpperCase().split(',').includes(kind)
}

/** True if the recipient's NOTIFY parameter asks for failure reports (the default when absent). */
export function wantsFailureReport(rcpt: Address): boolean {
  return wants(rcpt, 'FAILURE')
}

/** What a notice is about. */
export interface NoticeOptions {
  /** The queue id of the message it is about. */
  readonly id: string
  /** The envelope sender as the client gave it, with its parameters (RET, ENVID). */
  readonly sender: Address
  readonly recipients: readonly NoticeRecipient[]
  /** The name of this host (Reporting-MTA, From). */
  readonly reportingMta: string
  /** The original header section. */
  readonly headers: HeaderBlock
  /** The whole original message, for RET=FULL (left out when larger than `fullLimit`). */
  readonly full?: Buffer | undefined
  /** Default 100 KiB. */
  readonly fullLimit?: number
  /** For delays: until when the queue keeps trying. */
  readonly retryUntil?: number | undefined
}

const SUBJECTS = {
  failed: 'Undelivered Mail Returned to Sender',
  delayed: 'Delayed Mail (still being retried)',
  delivered: 'Successful Mail Delivery Report',
  relayed: 'Successful Mail Delivery Report',
} as const

const INTROS = {
  failed: ['Your message could not be delivered to one or more recipients.', 'It was delivered to any recipient not listed below.'],
  delayed: ['Delivery of your message is delayed; the mail system keeps trying.', 'You do not need to send it again.'],
  delivered: ['Your message was delivered to the recipients listed below.'],
  relayed: ['Your message was passed on to the recipients listed below;', 'no further notice of its delivery may follow.'],
} as const

function addressType(address: string): string {
  return /[^\x00-\x7f]/.test(address) ? `utf-8; ${address}` : `rfc822; ${address}`
}

/** A DSN with `recipients` for `sender`: one notice, all of one kind of action. */
export function buildNotice(options: NoticeOptions): Dsn {
  const { id, sender, recipients, reportingMta } = options
  const action = recipients[0]?.action ?? 'failed'
  const boundary = `${id}.${randomBytes(6).toString('hex')}/${reportingMta}`
  const envid = sender.args?.ENVID
  const lines = (...l: string[]) => l.join('\r\n')
  const human = lines(
    `This is the mail system at host ${reportingMta}.`,
    '',
    ...INTROS[action],
    '',
    ...recipients.map((r) => `<${r.rcpt.address}>: ${r.diagnostic ?? r.status}`),
  )
  const status = lines(
    `Reporting-MTA: dns; ${reportingMta}`,
    `X-Relaychain-Queue-ID: ${id}`,
    ...(typeof envid === 'string' ? [`Original-Envelope-Id: ${envid}`] : []),
    '',
    ...recipients.flatMap((r) => {
      const orcpt = (r.original ?? r.rcpt).args?.ORCPT
      const original = typeof orcpt === 'string' ? orcpt.replace(/^rfc822;\s*/i, '') : r.original?.address
      return [
        `Final-Recipient: ${addressType(r.rcpt.address)}`,
        ...(original && original !== r.rcpt.address ? [`Original-Recipient: ${addressType(original)}`] : []),
        `Action: ${r.action}`,
        `Status: ${r.status}`,
        ...(r.remoteMta ? [`Remote-MTA: dns; ${r.remoteMta}`] : []),
        ...(r.diagnostic ? [`Diagnostic-Code: smtp; ${r.diagnostic}`] : []),
        ...(r.action === 'delayed' && options.retryUntil ? [`Will-Retry-Until: ${rfc5322Date(options.retryUntil)}`] : []),
        '',
      ]
    }),
  )
  // RET=FULL asks for the whole message back; within reason, as Postfix's bounce_size_limit.
  const full = sender.args?.RET === 'FULL' && options.full && options.full.length <= (options.fullLimit ?? 100 * 1024) ? options.full : undefined
  const original = full ?? options.headers.toBuffer()
  const eightBit = /[^\x00-\x7f]/.test(original.toString('latin1'))
  const body = Buffer.concat([
    Buffer.from(
      lines(
        `--${boundary}`,
        'Content-Description: Notification',
        'Content-Type: text/plain; charset=utf-8',
        '',
        human,
        '',
        `--${boundary}`,
        'Content-Description: Delivery report',
        'Content-Type: message/delivery-status',
        '',
        status,
        `--${boundary}`,
        full ? 'Content-Description: Undelivered Message' : 'Content-Description: Undelivered Message Headers',
        full ? 'Content-Type: message/rfc822' : 'Content-Type: text/rfc822-headers',
        ...(eightBit ? ['Content-Transfer-Encoding: 8bit'] : []),
        '',
        '',
      ),
    ),
    original,
    Buffer.from(`\r\n--${boundary}--\r\n`),
  ])
  const headers = HeaderBlock.from([
    ['From', `Mail Delivery System <MAILER-DAEMON@${reportingMta}>`],
    ['To', `<${sender.address}>`],
    ['Subject', SUBJECTS[action]],
    ['Date', rfc5322Date()],
    ['Message-ID', `<${id}.${randomBytes(4).toString('hex')}@${reportingMta}>`],
    ['Auto-Submitted', 'auto-replied'],
    ['MIME-Version', '1.0'],
    ['Content-Type', `multipart/report; report-type=delivery-status;\r\n\tboundary="${boundary}"`],
  ])
  return { to: { address: sender.address }, headers, body }
}

/**
 * Builds the DSN for `failed` recipients of `msg` (recipients refused after DATA in pass-through
 * mode), or returns `undefined` when none is due: the message had the null sender (never bounce a
 * bounce) or no failed recipient asked for one.
 */
export function buildDsn(msg: Message, failed: readonly FailedRecipient[], reportingMta: string): Dsn | undefined {
  const sender = msg.original.mailFrom
  const due = failed.filter((f) => wantsFailureReport(f.original ?? f.rcpt))
  if (!sender || !due.length) return undefined
  const recipients = due.map((f) => ({
    rcpt: f.rcpt,
    original: f.original,
    action: 'failed' as const,
    status: f.error.enhanced,
    diagnostic: f.error.toReply(),
  }))
  return buildNotice({ id: msg.id, sender, recipients, reportingMta, headers: msg.headers })
}
