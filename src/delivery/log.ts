/**
 * The relay's log lines, built from the delivery event stream: one line per message (`message
 * relayed` / `message refused`) with sender, recipients, size, reply and stage timings; one per
 * refused sender or recipient; one per DSN; errors on our side at `error` level. A next hop that
 * does not answer (an `X.4.x` reply: refused, timed out, an untrusted certificate) is also logged
 * at `warn`, once per reason every ten minutes, so a wrong CA is found in minutes.
 */
import type { StageTimings } from '../core/compose.js'
import type { Logger } from '../shared/logger.js'
import type { DeliveryEvent, DeliveryEvents, DsnEvent, MessageEventBase } from './events.js'

/** How long one reason for a dead next hop stays quiet after it was logged. */
const WARN_AGAIN = 10 * 60_000

/** Subscribes `logger` to `events`; returns the unsubscribe function. */
export function logEvents(events: DeliveryEvents, logger: Logger): () => void {
  const warned = new Map<string, number>()
  return events.subscribe((event: DeliveryEvent) => {
    switch (event.type) {
      case 'accepted':
      case 'message-refused': {
        logger.info(messageFields(event), event.type === 'accepted' ? 'message relayed' : 'message refused')
        if (event.type === 'message-refused' && / 4\.4\.\d+ /.test(event.reply) && event.reason) nextHopDown(event.reply, event.reason, event.stage)
        return
      }
      case 'sender-refused':
        return logger.info(
          { session: event.session.id, from: event.from, reply: event.reply, stage: event.stage, reason: event.reason },
          'sender refused',
        )
      case 'recipient-refused':
        if (event.phase === 'rcpt') {
          logger.info(
            { session: event.session.id, id: event.id, rcpt: event.rcpt, reply: event.reply, stage: event.stage, reason: event.reason },
            'recipient refused',
          )
        }
        return
      case 'dsn':
        return logDsn(logger, event)
      case 'delivered':
      case 'error':
        // Per-recipient deliveries are in the message line; errors are the relay's to report.
        return
    }
  })

  function nextHopDown(reply: string, reason: string, stage: string | undefined): void {
    const now = Date.now()
    if (now - (warned.get(reason) ?? -Infinity) < WARN_AGAIN) return
    if (warned.size > 100) warned.clear()
    warned.set(reason, now)
    logger.warn(
      { reply, reason, stage },
      'next hop unavailable: every message to it is deferred with 451 (check its address, port, TLS and certificate)',
    )
  }
}

function messageFields(event: MessageEventBase & { stage?: string; reason?: string }): Record<string, unknown> {
  // Plain assignments, not conditional spreads: this runs for every message.
  const fields: Record<string, unknown> = { id: event.id, session: event.session.id, client: event.session.client }
  if (event.session.user) fields.user = event.session.user
  fields.from = event.from
  fields.to = event.to
  fields.size = event.size
  fields.accepted = event.accepted
  fields.rejected = event.rejected
  fields.reply = event.reply
  if (event.stage) fields.stage = event.stage
  if (event.reason) fields.reason = event.reason
  fields.ms = Math.round(event.ms)
  fields.stages = roundAll(event.stages)
  return fields
}

function logDsn(logger: Logger, event: DsnEvent): void {
  const fields = { id: event.id, failed: event.failed.map((f) => `${f.rcpt} (${f.reply})`) }
  if (event.outcome === 'not-due') logger.warn(fields, 'recipients failed after DATA; no DSN due (null sender or NOTIFY)')
  else if (event.outcome === 'sent') logger.info({ ...fields, dsn: event.dsnId, to: event.to }, 'sent DSN for failed recipients')
  else logger.error({ ...fields, dsn: event.dsnId, to: event.to, err: event.reason }, 'DSN for failed recipients could not be delivered')
}

function roundAll(timings: StageTimings): StageTimings {
  const out: StageTimings = {}
  for (const key in timings) out[key] = Math.round(timings[key]! * 100) / 100
  return out
}
