/**
 * Delivery status notifications (RFC 3464): the bounce a relay sends to the envelope sender for
 * recipients it accepted but could not deliver, so that no accepted recipient is dropped
 * silently. The report carries the original header section (text/rfc822-headers), never the
 * body.
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

/** A generated DSN, ready to be sent with a null sender. */
export interface Dsn {
  readonly to: Address
  readonly headers: HeaderBlock
  readonly body: Buffer
}

/** True if the recipient's NOTIFY parameter asks for failure reports (the default when absent). */
export function wantsFailureReport(rcpt: Address): boolean {
  const notify = rcpt.args?.NOTIFY
  return typeof notify !== 'string' || notify.toUpperCase().split(',').includes('FAILURE')
}

function addressType(address: string): string {
  return /[^\x00-\x7f]/.test(address) ? `utf-8; ${address}` : `rfc822; ${address}`
}

/**
 * Builds the DSN for `failed` recipients of `msg`, or returns `undefined` when none is due: the
 * message had the null sender (never bounce a bounce) or no failed recipient asked for one.
 */
export function buildDsn(msg: Message, failed: readonly FailedRecipient[], reportingMta: string): Dsn | undefined {
  const sender = msg.original.mailFrom
  const due = failed.filter((f) => wantsFailureReport(f.original ?? f.rcpt))
  if (!sender || !due.length) return undefined
  const boundary = `${msg.id}.${randomBytes(6).toString('hex')}/${reportingMta}`
  const envid = msg.original.mailFrom?.args?.ENVID
  const lines = (...l: string[]) => l.join('\r\n')

  const human = lines(
    `This is the mail system at host ${reportingMta}.`,
    '',
    'Your message could not be delivered to one or more recipients.',
    'It was delivered to any recipient not listed below.',
    '',
    ...due.map((f) => `<${f.rcpt.address}>: ${f.error.toReply()}`),
  )
  const status = lines(
    `Reporting-MTA: dns; ${reportingMta}`,
    `X-Relaychain-Queue-ID: ${msg.id}`,
    ...(typeof envid === 'string' ? [`Original-Envelope-Id: ${envid}`] : []),
    '',
    ...due.flatMap((f) => {
      const orcpt = (f.original ?? f.rcpt).args?.ORCPT
      const original = typeof orcpt === 'string' ? orcpt.replace(/^rfc822;\s*/i, '') : f.original?.address
      return [
        `Final-Recipient: ${addressType(f.rcpt.address)}`,
        ...(original && original !== f.rcpt.address ? [`Original-Recipient: ${addressType(original)}`] : []),
        'Action: failed',
        `Status: ${f.error.enhanced}`,
        `Diagnostic-Code: smtp; ${f.error.toReply()}`,
        '',
      ]
    }),
  )
  const original = msg.headers.toBuffer()
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
        'Content-Description: Undelivered Message Headers',
        'Content-Type: text/rfc822-headers',
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
    ['Subject', 'Undelivered Mail Returned to Sender'],
    ['Date', rfc5322Date()],
    ['Message-ID', `<${msg.id}.${randomBytes(4).toString('hex')}@${reportingMta}>`],
    ['Auto-Submitted', 'auto-replied'],
    ['MIME-Version', '1.0'],
    ['Content-Type', `multipart/report; report-type=delivery-status;\r\n\tboundary="${boundary}"`],
  ])
  return { to: { address: sender.address }, headers, body }
}
