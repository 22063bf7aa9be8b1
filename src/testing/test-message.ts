/** `testMessage()` and `runStage()`: build a message and run one stage on it, without a relay. */
import { Readable } from 'node:stream'
import { HeaderBlock } from '../core/body/header-block.js'
import { splitHeader } from '../core/body/split-header.js'
import { type RcptResult, runRcptTo as runRcptHooks } from '../core/hooks.js'
import { MessageImpl } from '../core/message.js'
import { createPipeline } from '../core/pipeline.js'

export type { RcptResult } from '../core/hooks.js'

import type { Address, DeliveryReport, Message, Session, Stage, Transport } from '../core/types.js'
import { memoryTransport } from './memory-transport.js'

/**
 * Options of {@link testMessage}.
 *
 * @category Testing
 */
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
 *
 * @category Testing
 */
export async function testMessage(options: TestMessageOptions = {}): Promise<Message> {
  const session = testSession(options.session)
  const from = options.from === undefined ? { address: 'sender@example.com' } : options.from === null ? null : toAddress(options.from)
  const msg = new MessageImpl({ session, mailFrom: from })
  for (const rcpt of (options.to ?? ['rcpt@example.org']).map(toAddress)) msg.addOriginalRecipient(rcpt)
  msg.setEnvelope(msg.original)
  const eml = options.eml ?? DEFAULT_EML
  const split = await splitHeader(Readable.from([Buffer.from(eml)]), Infinity)
  return msg.attachContent(HeaderBlock.parse(split.head, split.separator), split.body)
}

/** A session as the relay would hand it to stages, with `overrides`. */
function testSession(overrides: Partial<Session> = {}): Session {
  return {
    id: 'test-session',
    listener: 'test',
    remoteAddress: '127.0.0.1',
    remotePort: 40000,
    localAddress: '127.0.0.1',
    localPort: 25,
    clientHostname: '[127.0.0.1]',
    heloName: 'client.example',
    secure: false,
    ...overrides,
  }
}

/**
 * Options of {@link runMailFrom} and {@link runRcptTo}.
 *
 * @category Testing
 */
export interface EnvelopeHookOptions {
  /** Session fields to override (the client's address, `user` after AUTH …). */
  session?: Partial<Session>
  /** For `runRcptTo`: the sender (default `sender@example.com`) and the recipients accepted before this one. */
  from?: string | Address | null
  /** For `runRcptTo`: recipients already accepted in this transaction (what `tx.envelope.rcptTo` holds). */
  before?: ReadonlyArray<string | Address>
}

/**
 * Runs a stage's `mailFrom` hook as the relay would; resolves with the sender it leaves (the
 * same, or a rewrite), or rejects with the `SmtpError` refusing it.
 *
 * @example
 * ```ts
 * await expect(runMailFrom(relayPolicy({ senderLogin: true }), 'boss@example.com', { session: { user: 'eve' } }))
 *   .rejects.toMatchObject({ code: 553 })
 * ```
 *
 * @category Testing
 */
export async function runMailFrom(stage: Stage, from: string | Address | null, options: EnvelopeHookOptions = {}): Promise<Address | null> {
  const tx = await createPipeline({ stages: [stage], transport: memoryTransport() }).begin(
    testSession(options.session),
    from === null ? null : toAddress(from),
  )
  return tx.envelope.mailFrom
}

/**
 * Runs a stage's `rcptTo` hook for one recipient as the relay would (the envelope holds the
 * sender and the recipients accepted `before`); resolves with what the recipient became and
 * whether the stage granted relay permission, or rejects with the `SmtpError` refusing it.
 *
 * @example
 * ```ts
 * const { relay } = await runRcptTo(relayPolicy({ domains: ['example.org'] }), 'bob@example.org')
 * expect(relay).toBe(true)
 * ```
 *
 * @category Testing
 */
export async function runRcptTo(stage: Stage, to: string | Address, options: EnvelopeHookOptions = {}): Promise<RcptResult> {
  const from = options.from === undefined ? { address: 'sender@example.com' } : options.from === null ? null : toAddress(options.from)
  const msg = new MessageImpl({ session: testSession(options.session), mailFrom: from })
  const before = (options.before ?? []).map(toAddress)
  for (const rcpt of before) msg.addOriginalRecipient(rcpt)
  msg.setEnvelope({ mailFrom: from, rcptTo: before })
  return stage.rcptTo ? runRcptHooks([stage], msg, toAddress(to)) : { recipients: [toAddress(to)], relay: false, reasons: [] }
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
 *
 * @category Testing
 */
export function runStage(stage: Stage, msg: Message, transport: Transport = memoryTransport()): Promise<DeliveryReport> {
  return createPipeline({ stages: [stage], transport }).deliver(msg)
}
