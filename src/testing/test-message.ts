/** `testMessage()` and `runStage()`: build a message and run one stage on it, without a relay. */
import { Readable } from 'node:stream'
import { HeaderBlock } from '../core/body/header-block.js'
import { splitHeader } from '../core/body/split-header.js'
import { MessageImpl } from '../core/message.js'
import { createPipeline } from '../core/pipeline.js'
import type { Address, DeliveryReport, Message, Session, Stage, Transport } from '../core/types.js'
import { memoryTransport } from './memory-transport.js'

/** Options of {@link testMessage}. */
export interface TestMessageOptions {
  /** Envelope sender; `null` for the null sender. Default `sender@example.com`. */
  from?: string | Address | null
  /** Envelope recipients. Default `['rcpt@example.org']`. */
  to?: ReadonlyArray<string | Address>
  /** The message (header section and body), CRLF line endings. Default: a small text message. */
  eml?: string | Buffer
  /** Session fields to override. */
  session?: Partial<Session>
}

const DEFAULT_EML = 'From: <sender@example.com>\r\nTo: <rcpt@example.org>\r\nSubject: test\r\n\r\nHello.\r\n'

function toAddress(value: string | Address): Address {
  return typeof value === 'string' ? { address: value } : value
}

/**
 * Builds a message as the relay would hand it to stages at DATA.
 *
 * @example
 * ```ts
 * const msg = await testMessage({ from: 'alice@example.com', to: ['bob@example.org'], eml: 'Subject: hi\r\n\r\nbody\r\n' })
 * ```
 */
export async function testMessage(options: TestMessageOptions = {}): Promise<Message> {
  const session: Session = {
    id: 'test-session',
    listener: 'test',
    remoteAddress: '127.0.0.1',
    remotePort: 40000,
    localAddress: '127.0.0.1',
    localPort: 25,
    clientHostname: '[127.0.0.1]',
    heloName: 'client.example',
    secure: false,
    ...options.session,
  }
  const from = options.from === undefined ? { address: 'sender@example.com' } : options.from === null ? null : toAddress(options.from)
  const msg = new MessageImpl({ session, mailFrom: from })
  for (const rcpt of (options.to ?? ['rcpt@example.org']).map(toAddress)) msg.addOriginalRecipient(rcpt)
  msg.setEnvelope(msg.original)
  const eml = options.eml ?? DEFAULT_EML
  const split = await splitHeader(Readable.from([Buffer.from(eml)]), Infinity)
  return msg.attachContent(HeaderBlock.parse(split.head, split.separator), split.body)
}

/**
 * Runs one stage's `data` hook on a message, with `transport` (default: a fresh
 * `memoryTransport()`) as what `next()` calls.
 *
 * @example
 * ```ts
 * const transport = memoryTransport()
 * const report = await runStage(addFooter, await testMessage(), transport)
 * ```
 */
export function runStage(stage: Stage, msg: Message, transport: Transport = memoryTransport()): Promise<DeliveryReport> {
  return createPipeline({ stages: [stage], transport }).deliver(msg)
}
