/** `memoryTransport()`: a transport that keeps what it is sent, for unit tests of stages and chains. */
import { buffer } from 'node:stream/consumers'
import type { SmtpError } from '../core/errors.js'
import type { Address, DeliveryReport, Envelope, Message, Transport } from '../core/types.js'

/**
 * What a memory transport recorded for one message.
 *
 * @category Testing
 */
export interface MemoryDelivery {
  /** The transaction id of the delivered message. */
  readonly id: string
  /** The envelope the transport was handed (after every rewrite). */
  readonly envelope: Envelope
  /** The whole message as the transport read it. */
  readonly raw: Buffer
  /** The message object itself: its headers and state as they were at delivery. */
  readonly message: Message
}

/**
 * Options of {@link memoryTransport}.
 *
 * @category Testing
 */
export interface MemoryTransportOptions {
  /** Reject chosen recipients (after reading the message) with the returned error. */
  reject?: (rcpt: Address, msg: Message) => SmtpError | undefined
  /** Fail the whole message with the returned error, or throw it. */
  fail?: (msg: Message) => SmtpError | undefined
}

/**
 * A transport that records deliveries in `messages`.
 *
 * @category Testing
 */
export interface MemoryTransport extends Transport {
  /** Deliveries so far, in order. */
  readonly messages: readonly MemoryDelivery[]
}

/**
 * Creates a memory transport.
 *
 * @example
 * ```ts
 * const transport = memoryTransport()
 * await runStage(myStage, await testMessage({ from: 'a@example.com', to: ['b@example.org'], eml }), transport)
 * expect(transport.messages[0].raw.toString()).toContain('X-Checked: yes')
 * ```
 *
 * @category Testing
 */
export function memoryTransport(options: MemoryTransportOptions = {}): MemoryTransport {
  const messages: MemoryDelivery[] = []
  return {
    name: 'memory',
    messages,
    async send(msg): Promise<DeliveryReport> {
      const raw = await buffer(msg.stream())
      const failure = options.fail?.(msg)
      if (failure) throw failure
      const rejected = msg.envelope.rcptTo.flatMap((rcpt) => {
        const error = options.reject?.(rcpt, msg)
        return error ? [{ rcpt, error }] : []
      })
      const accepted = msg.envelope.rcptTo.filter((r) => !rejected.some((x) => x.rcpt === r))
      if (accepted.length) messages.push({ id: msg.id, envelope: { mailFrom: msg.envelope.mailFrom, rcptTo: accepted }, raw, message: msg })
      return { accepted, rejected, response: `250 2.0.0 Ok: memory ${messages.length}` }
    },
  }
}
