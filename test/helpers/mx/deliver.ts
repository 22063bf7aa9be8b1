/**
 * Sending one message through a transport the way the relay does (an engine transaction of a
 * pipeline with no stages), so that the transport's report, the outcome and every event it
 * announced are seen as an application would see them.
 */
import { createPipeline } from '../../../src/core/pipeline.js'
import type { TransactionOutcome } from '../../../src/core/transaction.js'
import type { MessageState, Transport } from '../../../src/core/types.js'
import type { DeliveryAttemptEvent, DeliveryEvent } from '../../../src/delivery/events.js'
import { testMessage } from '../../../src/testing/test-message.js'

export interface Sent {
  readonly outcome: TransactionOutcome
  readonly events: readonly DeliveryEvent[]
  readonly attempts: readonly DeliveryAttemptEvent[]
  /** `rcpt → reply` for the refused ones. */
  readonly refused: Readonly<Record<string, string>>
}

export const eml = (subject = 'test') =>
  `From: <app@example.com>\r\nTo: <someone@example.org>\r\nSubject: ${subject}\r\nMessage-ID: <${subject}@example.com>\r\n\r\nHello.\r\n`

/** Sends `eml` from `from` to `to` through `transport` (see the file header). */
export async function send(
  transport: Transport,
  to: readonly string[],
  options: { from?: string | null; fromArgs?: Record<string, string | true>; raw?: string; state?: Partial<MessageState> } = {},
): Promise<Sent> {
  const pipeline = createPipeline({ transport })
  const events: DeliveryEvent[] = []
  pipeline.events.subscribe((e) => events.push(e))
  const session = (await testMessage()).session
  const from = options.from === null ? null : { address: options.from ?? 'app@example.com', ...(options.fromArgs ? { args: options.fromArgs } : {}) }
  const tx = await pipeline.begin(session, from, options.state ? { state: options.state } : {})
  for (const address of to) await tx.addRecipient({ address })
  const outcome = await tx.data({ raw: options.raw ?? eml() })
  const refused = Object.fromEntries((outcome.report?.rejected ?? outcome.rejected).map((r) => [r.rcpt.address, r.error.toReply()]))
  return { outcome, events, attempts: events.filter((e): e is DeliveryAttemptEvent => e.type === 'delivery-attempt'), refused }
}
