/**
 * Reading the message for each delivery attempt. An MX walk may hand the same message to
 * several servers (the next MX after a refusal, recipients a server deferred, recipients beyond
 * the per-transaction cap), but a message body streams once.
 *
 * - One recipient in one transaction: no copy. The body is opened only when the server has
 *   accepted DATA; an attempt that ends before that (connection refused, `421`, a `4xx` to MAIL
 *   or RCPT, a TLS policy failure) leaves it unread for the next host. Once the body has started,
 *   no other host gets the message in this delivery.
 * - Anything else: the body is spooled once (memory up to the relay's limit, then a temp file),
 *   and each attempt reads the header section and the spool. Parts forked per domain share the
 *   spool of the message they came from.
 *
 * Every stream stops at its next chunk once the transaction is aborted (the client left), so an
 * upstream never sees the final dot of a message nobody waits for.
 */
import { Readable } from 'node:stream'
import type { HeaderBlock } from '../../core/body/header-block.js'
import { abortReasonOf } from '../../core/message.js'
import type { Message, SpooledBody } from '../../core/types.js'

/** The message as attempts read it. */
export interface AttemptContent {
  /** A new stream of the whole message; nothing is read until the stream is. */
  open(): Readable
  /** Whether a stream from `open()` may still be read: always for a spool; for a single read, until one was. */
  available(): boolean
}

/**
 * The message read once, lazily (see the file header).
 *
 * @example
 * ```ts
 * const content = readOnce(msg)
 * connection.send(envelope, content.open(), done) // the body is read only after 354
 * ```
 */
export function readOnce(msg: Message): AttemptContent {
  let taken = false
  return {
    available: () => !taken,
    open() {
      return Readable.from(
        (async function* lazily() {
          if (taken) throw new Error('the message was already read by an earlier attempt')
          taken = true
          yield* msg.stream()
        })(),
        { objectMode: false },
      )
    },
  }
}

/**
 * The header section `head` followed by the spooled body of `owner` (see the file header).
 *
 * @example
 * ```ts
 * const spool = await msg.body.spool()
 * const content = readSpool(msg, part.headers, spool) // open() as often as attempts need
 * ```
 */
export function readSpool(owner: Message, head: HeaderBlock, spool: SpooledBody): AttemptContent {
  return {
    available: () => true,
    open() {
      return Readable.from(
        (async function* spooled() {
          const header = head.toBuffer()
          if (header.length) yield header
          for await (const chunk of spool.open()) {
            const aborted = abortReasonOf(owner)
            if (aborted !== undefined) throw aborted instanceof Error ? aborted : new Error(String(aborted))
            yield chunk as Buffer
          }
        })(),
        { objectMode: false },
      )
    },
  }
}
