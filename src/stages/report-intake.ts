/**
 * `reportIntake()`: takes the reports that come back to the relay and turns them into events:
 * delivery status notifications (RFC 3464, and the plain-text kind) sent to a VERP return path
 * of the bounce domain (`verpReturnPath()`), and feedback-loop complaints (ARF, RFC 5965; JMRP;
 * SES) sent to the feedback addresses. It grants relay permission for exactly those addresses
 * (a bounce address with a mac that does not verify gets `550 5.1.1`), reads each report (up to
 * 10 MB), records `bounced` (source `dsn`) or `complained` events tied to the original message
 * (the queue id from the return path, else the report's Message-ID), which suppress as configured
 * in `Reporting`, and answers 250 without delivering the report anywhere. Other recipients of the
 * same transaction go on down the chain.
 *
 * Place it first: a report must not be rewritten, scanned as outgoing mail or signed.
 */
import { SmtpError } from '../core/errors.js'
import type { Address, DeliveryReport, Message, Stage } from '../core/types.js'
import { parseBounce } from '../reporting/bounces/parse-bounce.js'
import { parseComplaint } from '../reporting/complaints/parse-complaint.js'
import { derivedEventId } from '../reporting/events/event-id.js'
import type { AcceptedReportEvent } from '../reporting/events/types.js'
import type { Reporting } from '../reporting/reporting.js'
import type { TrackingKey } from '../reporting/tracking/token.js'
import { readVerp } from '../reporting/verp.js'

/**
 * Options of {@link reportIntake}.
 *
 * @category Reporting
 */
export interface ReportIntakeOptions {
  /** The hub `bounced`, `complained` (and opt-out `unsubscribed`) events are recorded in; its store ties a report to the original. */
  readonly reporting: Reporting
  /** The domain of the VERP return paths (`verpReturnPath({ domain })`). */
  readonly bounceDomain?: string
  /** Keys the return paths were signed with. */
  readonly keys?: readonly TrackingKey[]
  /** Where feedback-loop reports arrive, e.g. `fbl@example.com`. */
  readonly feedbackAddresses?: readonly string[]
  /** Largest report read, in bytes. Default 10 MB. */
  readonly maxSize?: number
}

/**
 * Creates the intake stage.
 *
 * @example
 * ```ts
 * const stages = [
 *   reportIntake({ reporting, bounceDomain: 'bounces.example.com', keys, feedbackAddresses: ['fbl@example.com'] }),
 *   relayPolicy({ requireAuth: true }),
 * ]
 * ```
 *
 * @category Reporting
 */
export function reportIntake(options: ReportIntakeOptions): Stage {
  const { reporting } = options
  const fbl = new Set((options.feedbackAddresses ?? []).map((a) => a.toLowerCase()))
  const maxSize = options.maxSize ?? 10_000_000
  const bounceDomain = options.bounceDomain?.toLowerCase()
  const kind = (address: string): 'bounce' | 'complaint' | undefined => {
    const lower = address.toLowerCase()
    if (fbl.has(lower)) return 'complaint'
    if (bounceDomain && lower.endsWith(`@${bounceDomain}`)) return 'bounce'
    return undefined
  }

  async function recipientsOf(queueId: string): Promise<readonly string[]> {
    const accepted = (await reporting.store.eventsOf(queueId)).find((e): e is AcceptedReportEvent => e.type === 'accepted')
    return accepted?.recipients ?? []
  }

  async function bounce(raw: Buffer, to: Address): Promise<void> {
    const report = await parseBounce(raw)
    if (!report) return
    const queueId =
      readVerp(to.address, bounceDomain!, options.keys ?? []) ??
      (report.originalMessageId ? reporting.store.queueIdOf(report.originalMessageId) : undefined) ??
      report.originalEnvelopeId
    for (const r of report.recipients) {
      const recipient = r.finalRecipient ?? r.originalRecipient
      if (r.action !== 'failed' || !recipient) continue
      reporting.record({
        type: 'bounced',
        id: derivedEventId(queueId, 'dsn', recipient, r.classification.status),
        ...(queueId ? { queueId } : {}),
        ...(report.originalMessageId && !queueId ? { messageId: report.originalMessageId } : {}),
        recipient,
        bounceType: r.classification.class,
        category: r.classification.category,
        status: r.classification.status,
        ...(r.remoteMta ? { remoteMta: r.remoteMta } : {}),
        diagnostic: r.diagnostic ?? '',
        source: 'dsn',
      })
    }
  }

  async function complaint(raw: Buffer): Promise<void> {
    const report = await parseComplaint(raw)
    if (!report) return
    const queueId = report.originalMessageId ? reporting.store.queueIdOf(report.originalMessageId) : undefined
    // A report that redacts the recipient still names it when the message had only one.
    const known = queueId ? await recipientsOf(queueId) : []
    const recipients = report.recipients.length ? report.recipients : known.length === 1 ? known : []
    for (const recipient of recipients) {
      const base = {
        ...(queueId ? { queueId } : {}),
        ...(report.originalMessageId && !queueId ? { messageId: report.originalMessageId } : {}),
        recipient,
      }
      reporting.record({
        type: 'complained',
        id: derivedEventId(queueId ?? report.originalMessageId, 'complained', recipient),
        ...base,
        feedbackType: report.feedbackType,
        format: report.format,
        ...(report.userAgent ? { userAgent: report.userAgent } : {}),
      })
      if (report.feedbackType === 'opt-out')
        reporting.record({ type: 'unsubscribed', id: derivedEventId(queueId, 'unsubscribed', recipient), ...base, method: 'complaint' })
    }
  }

  return {
    name: 'report-intake',
    grantsRelay: true,
    rcptTo(_tx, to) {
      const k = kind(to.address)
      if (!k) return
      if (k === 'bounce' && !readVerp(to.address, bounceDomain!, options.keys ?? [])) throw new SmtpError(550, '5.1.1', 'No such user here')
      return { relay: true, reason: `report intake (${k})` }
    },
    async data(msg, next): Promise<DeliveryReport> {
      const mine = msg.envelope.rcptTo.filter((r) => kind(r.address))
      if (!mine.length) return next()
      reporting.note(msg.id, { ignore: true })
      const rest = msg.envelope.rcptTo.filter((r) => !kind(r.address))
      const raw = await read(msg, maxSize)
      for (const to of mine) {
        if (kind(to.address) === 'bounce') await bounce(raw, to)
        else await complaint(raw)
      }
      if (!rest.length) return { accepted: mine, rejected: [], response: '250 2.0.0 Ok: report received' }
      const report = await next(await msg.fork(rest))
      return { ...report, accepted: [...report.accepted, ...mine] }
    },
  }
}

async function read(msg: Message, max: number): Promise<Buffer> {
  const spooled = await msg.body.spool()
  if (spooled.size > max) throw new SmtpError(552, '5.3.4', 'Report too big')
  const chunks: Buffer[] = []
  for await (const chunk of msg.stream()) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}
