/**
 * Finding the failed recipients in a plain-text bounce and the part of the notice about each.
 * The best evidence is an X-Failed-Recipients field, then a quoted `RCPT TO:<address>`, then
 * addresses at the start of a line (how sendmail, qmail, Exim and Postfix list them), then any
 * address in the notice. The bounce's own sender and recipient (the original sender) and
 * MAILER-DAEMON are never taken for failed recipients.
 */
import type { HeaderBlock } from '../../core/body/header-block.js'
import { ADDRESS, addressesIn } from '../header-section.js'

/** More failed recipients than any MTA lists in one notice; beyond it the rest are dropped. */
export const MAX_TEXT_RECIPIENTS = 100
const MAILER_DAEMON = /^mailer-daemon@/i

/** Addresses that name the bounce's own parties, never a failed recipient. */
function ownParties(headers: HeaderBlock): Set<string> {
  // Not X-Original-To: DragonFly puts the failed recipient there.
  const fields = ['from', 'to', 'cc', 'reply-to', 'sender', 'return-path', 'delivered-to']
  return new Set(fields.flatMap((f) => headers.getAll(f).flatMap(addressesIn)).map((a) => a.toLowerCase()))
}

/**
 * The failed recipients of a plain-text bounce, best evidence first; may be empty.
 *
 * @example
 * ```ts
 * textRecipients(headers, 'I could not deliver to:\n\n<bob@example.org>:\n550 User unknown\n', [])  // ['bob@example.org']
 * ```
 */
export function textRecipients(headers: HeaderBlock, notice: string, failedRecipients: readonly string[]): string[] {
  if (failedRecipients.length) return [...new Set(failedRecipients)].slice(0, MAX_TEXT_RECIPIENTS)
  const own = ownParties(headers)
  const usable = (a: string) => !own.has(a.toLowerCase()) && !MAILER_DAEMON.test(a)
  const tiers = [
    matches(notice, new RegExp(String.raw`RCPT TO:\s*<?(${ADDRESS})`, 'gi')),
    matches(
      notice,
      new RegExp(
        String.raw`^[ \t>*"]*(?:Recipient:\s*|Could not be delivered to:\s*|undeliverable to\s+|Unable to deliver message to:?\s*)?<?(${ADDRESS})`,
        'gim',
      ),
    ),
    matches(notice, new RegExp(`(${ADDRESS})`, 'g')),
  ]
  for (const tier of tiers) {
    const found = [...new Set(tier.filter(usable))]
    if (found.length) return found.slice(0, MAX_TEXT_RECIPIENTS)
  }
  return []
}

function matches(text: string, pattern: RegExp): string[] {
  return [...text.matchAll(pattern)].map((m) => m[1]!)
}

/**
 * The part of the notice about each recipient: from the line that starts with it to the line
 * that starts with the next. Only when every recipient starts a line of its own; otherwise (one
 * recipient, or a notice that lists addresses apart from the reasons) each gets the whole notice.
 *
 * @example
 * ```ts
 * recipientBlocks('<a@x.org>:\n550 unknown\n<b@x.org>:\n552 full\n', ['a@x.org', 'b@x.org']).get('b@x.org')  // '<b@x.org>:\n552 full\n'
 * ```
 */
export function recipientBlocks(notice: string, recipients: readonly string[]): Map<string, string> {
  const lines = notice.split('\n')
  // Where each line-leading address first starts a line: one pass, whatever the number of recipients.
  const firstLine = new Map<string, number>()
  const leading = new RegExp(`^[ \\t>*"<]*(${ADDRESS})`)
  lines.forEach((line, i) => {
    const lead = leading.exec(line)?.[1]?.toLowerCase()
    if (lead && !firstLine.has(lead)) firstLine.set(lead, i)
  })
  const starts = recipients.map((r) => firstLine.get(r.toLowerCase()) ?? -1)
  const blocks = new Map<string, string>()
  if (recipients.length < 2 || starts.some((s) => s < 0)) {
    for (const r of recipients) blocks.set(r, notice)
    return blocks
  }
  const sorted = [...starts].sort((a, b) => a - b)
  recipients.forEach((r, i) => {
    const start = starts[i]!
    const next = sorted.find((s) => s > start) ?? lines.length
    blocks.set(r, lines.slice(start, next).join('\n'))
  })
  return blocks
}
