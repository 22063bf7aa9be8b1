/**
 * The relay's log lines, built from the delivery event stream: one line per message (`message
 * relayed`, `message queued` or `message refused`) with sender, recipients, size, reply and stage
 * timings; one per refused sender or recipient; one per DSN; one per queue delivery attempt and
 * recipient (`delivered`, `deferred`, `bounced`, `expired`), per notice and per operator action;
 * one per connection a transport made (`delivery-attempt` of MX delivery: host, address, TLS,
 * policy; at `debug` when it delivered, at `info` when it did not); errors on our side at `error`
 * level. A next hop that does not answer (an `X.4.x` reply: refused, timed out, an untrusted
 * certificate) is also logged at `warn`, once per reason every ten minutes, so a wrong CA is
 * found in minutes.
 */
import type { StageTimings } from '../core/compose.js'
import type { Logger } from '../shared/logger.js'
import type { AttemptEventBase, DeliveryEvent, DeliveryEvents, DsnEvent, MessageEventBase } from './events.js'

/** How long one reason for a dead next hop stays quiet after it was logged. */
const WARN_AGAIN = 10 * 60_000

/** Subscribes `logger` to `events`; returns the unsubscribe function. */
export function logEvents(events: DeliveryEvents, logger: Logger): () => void {
  const warned = new Map<string, number>()
  return events.subscribe((event: DeliveryEvent) => {
    switch (event.type) {
      case 'accepted':
      case 'message-refused': {
        logger.info(messageFields(event), event.type === 'message-refused' ? 'message refused' : event.queued ? 'message queued' : 'message relayed')
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
        // Deliveries at once are in the message line; the queue's get a line per attempt.
        if (event.attempt !== undefined) logger.info(attemptFields({ ...event, attempt: event.attempt }, event.response), 'delivered')
        return
      case 'deferred':
        logger.info(
          {
            ...attemptFields(event, event.reply),
            ...(event.next ? { next: new Date(event.next).toISOString() } : { next: 'when its next hop answers' }),
          },
          'deferred',
        )
        if (/^4\d\d 4\.4\.\d+ /.test(event.reply)) nextHopDown(event.reply, event.destination ?? event.reply, undefined)
        return
      case 'bounced':
        return logger.info({ ...attemptFields(event, event.reply), notice: event.notice ?? 'none due' }, 'bounced')
      case 'expired':
        return logger.warn({ ...attemptFields(event, event.reply), notice: event.notice ?? 'none due' }, 'expired: the queue gave up')
      case 'delayed':
        return logger.info({ ...attemptFields(event, event.reply), notice: event.notice }, 'delay notice sent')
      case 'queued':
        // A client's message has its 'message queued' line; the queue's own notices get one here.
        if (event.notice) logger.info({ id: event.id, to: event.to, size: event.size, notice: event.notice }, 'notice queued')
        return
      case 'held':
      case 'released':
      case 'deleted':
        return logger[event.type === 'held' && event.reason !== 'operator' ? 'warn' : 'info'](
          { id: event.id, recipients: event.recipients, reason: event.reason },
          `queue entry ${event.type}`,
        )
      case 'delivery-attempt': {
        const fields: Record<string, unknown> = {
          id: event.id,
          destination: event.destination,
          to: event.recipients,
          relay: `${event.host}[${event.ip}]:${event.port}`,
          tls: event.tls ?? 'none',
          verified: event.verified,
          policy: event.policy,
          reply: event.reply,
          ms: event.ms,
        }
        if (event.reason) fields.reason = event.reason
        return logger[event.outcome === 'delivered' ? 'debug' : 'info'](fields, `delivery attempt ${event.outcome}`)
      }
      case 'error':
        // Errors are the relay's to report.
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

function attemptFields(event: Pick<AttemptEventBase, 'id' | 'rcpt' | 'attempt' | 'destination'>, reply: string): Record<string, unknown> {
  const fields: Record<string, unknown> = { id: event.id, to: event.rcpt, attempt: event.attempt }
  if (event.destination) fields.destination = event.destination
  fields.reply = reply
  return fields
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
