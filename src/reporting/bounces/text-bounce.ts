/**
 * Bounces without RFC 3464 fields (Exim, qmail, Exchange 2003, Lotus Notes, Gmail's and
 * Yahoo's notices, many appliances): the recipients are found in the notice, and each one's
 * reason is the part of the notice about it, with the remote reply quoted in it when there is
 * one. A notice that says the MTA is still trying makes the recipients `delayed`.
 */
import type { HeaderBlock } from '../../core/body/header-block.js'
import type { BounceSignals } from './bounce-signals.js'
import { isDelayNotice } from './bounce-signals.js'
import { toRecipients } from './recipient-evidence.js'
import { phaseIn, quotedReply } from './smtp-transcript.js'
import { recipientBlocks, textRecipients } from './text-recipients.js'
import type { BounceRecipient } from './types.js'

/**
 * The recipients of a plain-text bounce; one without an address when the notice names none.
 *
 * @example
 * ```ts
 * const { notice } = reportText(report)
 * textBounceRecipients(report.headers, notice, bounceSignals(report.headers, notice))
 * ```
 */
export function textBounceRecipients(headers: HeaderBlock, notice: string, signals: BounceSignals): BounceRecipient[] {
  const action = isDelayNotice(headers, notice) ? 'delayed' : 'failed'
  const addresses = textRecipients(headers, notice, signals.failedRecipients)
  const blocks = recipientBlocks(notice, addresses)
  const about = addresses.length ? addresses.map((a) => [a, blocks.get(a) ?? notice] as const) : [[undefined, notice] as const]
  return toRecipients(
    about.map(([address, text]) => ({
      finalRecipient: address,
      action,
      diagnostic: quotedReply(text)?.text ?? summary(text, address),
      reasonText: text,
      phase: phaseIn(text),
      localDelivery: /pipe to \|/i.test(text),
    })),
  )
}

/**
 * The notice's words about a failure when it quotes no reply: the rest of the line that names
 * the address and the lines after it (rules and banners left out), at most 500 characters.
 */
function summary(text: string, address: string | undefined): string | undefined {
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => /\p{L}/u.test(l))
  const at = address ? lines.findIndex((l) => l.includes(address)) : -1
  const rest = at >= 0 ? lines[at]!.slice(lines[at]!.indexOf(address!) + address!.length).replace(/^[\s>:,\]]+/, '') : ''
  const words = [rest, ...lines.slice(at + 1, at + 3)].join(' ').replace(/\s+/g, ' ').trim()
  return words.slice(0, 500) || undefined
}
