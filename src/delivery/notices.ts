/**
 * Handing a delivery status notification to its sender. A DSN for recipients refused after DATA
 * leaves through the notices transport (by default the pipeline's own transport), not back
 * through the inbound chain: policy stages do not judge the relay's own bounce. The hand-over
 * never holds the client's reply: the notice is sent in the background, tracked so that
 * `close()` waits for it, and its outcome is announced as a `dsn` event.
 *
 * Until the durable queue exists, a notice whose sending fails is lost: the `dsn` event (and the
 * error-level log line built from it) carries the sender, the recipients and the replies, so an
 * application can keep it; the relay does not retry.
 */
import { Readable } from 'node:stream'
import type { SpoolOptions } from '../core/body/spool.js'
import { reject, toSmtpError } from '../core/errors.js'
import { MessageImpl } from '../core/message.js'
import type { Message, Transport } from '../core/types.js'
import { buildDsn, type FailedRecipient } from './dsn.js'
import type { DeliveryEvents, EventSession } from './events.js'

/** Where and how notices are sent. */
export interface NoticeSender {
  readonly transport: Transport
  readonly events: DeliveryEvents
  /** Notices still being sent (close() waits for them). */
  readonly pending: Set<Promise<void>>
}

/** Builds the DSN for `failed` recipients of `msg` and starts sending it; returns at once. */
export function sendFailureNotice(
  sender: NoticeSender,
  msg: Message,
  failed: readonly FailedRecipient[],
  context: { hostname: string; session: EventSession; spool: SpoolOptions },
): void {
  const base = { time: Date.now(), id: msg.id, session: context.session }
  const listed = failed.map((f) => ({ rcpt: f.rcpt.address, reply: f.error.toReply() }))
  const dsn = buildDsn(msg, failed, context.hostname)
  if (!dsn) {
    sender.events.emit({ ...base, type: 'dsn', outcome: 'not-due', failed: listed, reason: msg.original.mailFrom ? 'NOTIFY' : 'null sender' })
    return
  }
  const notice = new MessageImpl({ session: msg.session, mailFrom: null })
  notice.addOriginalRecipient(dsn.to)
  notice.setEnvelope({ mailFrom: null, rcptTo: [dsn.to] })
  notice.attachContent(dsn.headers, Readable.from([dsn.body]), context.spool)
  const sending = (async () => {
    try {
      const report = await sender.transport.send(notice)
      if (!report.accepted.length) throw report.rejected[0]?.error ?? reject.tempFail()
      sender.events.emit({ ...base, time: Date.now(), type: 'dsn', outcome: 'sent', to: dsn.to.address, dsnId: notice.id, failed: listed })
    } catch (err) {
      sender.events.emit({
        ...base,
        time: Date.now(),
        type: 'dsn',
        outcome: 'failed',
        to: dsn.to.address,
        dsnId: notice.id,
        failed: listed,
        reason: toSmtpError(err).toReply(),
      })
    } finally {
      await notice.dispose()
    }
  })()
  sender.pending.add(sending)
  void sending.finally(() => sender.pending.delete(sending))
}
