/**
 * Delivery reports, made whole and translated: a transport's report must account for every
 * recipient (one it forgot is a temporary failure, never a silent success), the reply for a
 * message no recipient accepted prefers a temporary error (the client retries rather than
 * bounces), and a report on the final recipients is mapped back to the recipients the caller
 * added (a recipient expanded by a stage is accepted only if all its expansions were).
 */
import { addressKey } from '../core/address.js'
import { reject, type SmtpError } from '../core/errors.js'
import type { Address, DeliveryReport, RejectedRecipient } from '../core/types.js'

/** `report` with every recipient of `rcptTo` it lacks added as a temporary failure; `missing` lists them. */
export function completeReport(report: DeliveryReport, rcptTo: readonly Address[]): { report: DeliveryReport; missing: readonly Address[] } {
  const seen = new Set([...report.accepted, ...report.rejected.map((r) => r.rcpt)].map((a) => addressKey(a.address)))
  const missing = rcptTo.filter((r) => !seen.has(addressKey(r.address)))
  if (!missing.length) return { report, missing }
  return { report: { ...report, rejected: [...report.rejected, ...missing.map((rcpt) => ({ rcpt, error: reject.tempFail() }))] }, missing }
}

/** The reply for a message no recipient accepted: a temporary error wins, so the client retries. */
export function refusalOf(rejected: readonly RejectedRecipient[]): SmtpError {
  return (rejected.find((r) => r.error.temporary) ?? rejected[0])?.error ?? reject.tempFail()
}

/**
 * `report` (on final recipients) in terms of the recipients they came from (`origins`, by
 * {@link addressKey} of the final recipient), plus the recipients `refused` before DATA.
 */
export function mapBack(report: DeliveryReport, origins: ReadonlyMap<string, Address>, refused: readonly RejectedRecipient[] = []): DeliveryReport {
  const failed = new Map<Address, RejectedRecipient>()
  for (const r of report.rejected) {
    const origin = origins.get(addressKey(r.rcpt.address)) ?? r.rcpt
    if (!failed.has(origin)) failed.set(origin, { rcpt: origin, error: r.error })
  }
  const accepted = [...new Set(origins.values())].filter((o) => !failed.has(o))
  return { accepted, rejected: [...refused, ...failed.values()], ...(report.response ? { response: report.response } : {}) }
}
