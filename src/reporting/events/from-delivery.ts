/**
 * From the engine's delivery stream to reporting events. The engine and the queue announce each
 * outcome once (`DeliveryEvent`); this maps them, adding what reporting needs that the queue's
 * events do not carry (Message-ID, the sender before VERP, tags), from the message's context.
 * Events that can repeat (a queue that retries after a crash) get ids derived from what they
 * are about, so the repeat keeps its id. The queue's own notices (DSNs to senders) and operator
 * actions are not reported.
 */
import type { DeliveryEvent } from '../../delivery/events.js'
import { classifyReply } from '../bounces/classify-reply.js'
import { derivedEventId, randomEventId } from './event-id.js'
import type { NewReportEvent } from './types.js'

/**
 * What reporting knows about an accepted message, by queue id.
 *
 * @category Reporting
 */
export interface MessageContext {
  /** The message's Message-ID field, as written (angle brackets included). */
  readonly messageId?: string
  /** The envelope sender: as a stage noted it (before VERP), else the final one; `<>` for the null sender. */
  readonly sender?: string
  /** The message's tags, as stages noted them in DATA (empty if none). */
  readonly tags: readonly string[]
}

const REPLY = /^([245]\d\d)(?:[ -]([245]\.\d{1,3}\.\d{1,3}))?/

/** Splits a reply line into its code, enhanced code and text. */
export function splitReply(reply: string): { code?: number; enhanced?: string; text: string } {
  const m = REPLY.exec(reply)
  if (!m) return { text: reply }
  return { code: Number(m[1]), ...(m[2] ? { enhanced: m[2] } : {}), text: reply }
}

function contextFields(ctx: MessageContext | undefined): { messageId?: string; sender?: string; tags: readonly string[] } {
  if (!ctx) return { tags: [] }
  return { ...(ctx.messageId ? { messageId: ctx.messageId } : {}), ...(ctx.sender ? { sender: ctx.sender } : {}), tags: ctx.tags }
}

/**
 * Maps one delivery event. `context` answers for queue ids reporting saw accepted; events about
 * other queue entries (the queue's own notices) map to nothing. `pending` holds what stages
 * noted about a message still in DATA (tags, the sender before VERP), read at `accepted`.
 */
export function fromDelivery(
  event: DeliveryEvent,
  context: (queueId: string) => MessageContext | undefined,
  pending: (queueId: string) => Partial<MessageContext> | undefined = () => undefined,
): NewReportEvent[] {
  switch (event.type) {
    case 'sender-refused':
      return [
        {
          type: 'rejected',
          id: randomEventId(),
          time: event.time,
          queueId: event.id,
          sender: event.from,
          phase: 'mail',
          reply: event.reply,
          ...stageOf(event.stage),
          tags: [],
        },
      ]
    case 'recipient-refused': {
      const ctx = context(event.id)
      const base = { queueId: event.id, recipient: event.final ?? event.rcpt, time: event.time, ...contextFields(ctx) }
      if (event.phase === 'rcpt')
        return [{ type: 'rejected', id: randomEventId(), phase: 'rcpt', reply: event.reply, ...stageOf(event.stage), ...base }]
      return [bounce(event.id, base, event.reply, 'relay')]
    }
    case 'message-refused':
      if (event.aborted) return []
      return [
        {
          type: 'rejected',
          id: randomEventId(),
          time: event.time,
          queueId: event.id,
          sender: pending(event.id)?.sender ?? event.from,
          phase: 'data',
          reply: event.reply,
          ...stageOf(event.stage),
          ...(event.messageId ? { messageId: event.messageId } : {}),
          tags: pending(event.id)?.tags ?? [],
        },
      ]
    case 'accepted': {
      const noted = pending(event.id)
      return [
        {
          type: 'accepted',
          id: derivedEventId(event.id, 'accepted'),
          time: event.time,
          queueId: event.id,
          sender: noted?.sender ?? event.from,
          recipients: event.to,
          size: event.size,
          ...(event.messageId ? { messageId: event.messageId } : {}),
          ...(event.session.user ? { user: event.session.user } : {}),
          tags: noted?.tags ?? [],
        },
      ]
    }
    case 'queued': {
      const ctx = context(event.id)
      if (event.notice || !ctx) return []
      return [
        {
          type: 'queued',
          id: derivedEventId(event.id, 'queued'),
          time: event.time,
          queueId: event.id,
          recipients: event.to,
          size: event.size,
          ...contextFields(ctx),
        },
      ]
    }
    case 'delivered': {
      const ctx = context(event.id)
      if (!ctx) return []
      const recipient = event.final ?? event.rcpt
      return [
        {
          type: 'delivered',
          id: derivedEventId(event.id, 'delivered', recipient),
          time: event.time,
          queueId: event.id,
          recipient,
          response: event.response,
          ...(event.attempt !== undefined ? { attempt: event.attempt } : {}),
          ...(event.destination ? { remoteMta: event.destination } : {}),
          ...contextFields(ctx),
        },
      ]
    }
    case 'deferred': {
      const ctx = context(event.id)
      if (!ctx) return []
      return [
        {
          type: 'deferred',
          id: derivedEventId(event.id, 'deferred', event.rcpt, event.attempt),
          time: event.time,
          queueId: event.id,
          recipient: event.rcpt,
          reply: event.reply,
          attempt: event.attempt,
          ...(event.next !== undefined ? { next: event.next } : {}),
          ...(event.destination ? { remoteMta: event.destination } : {}),
          ...contextFields(ctx),
        },
      ]
    }
    case 'bounced':
    case 'expired': {
      const ctx = context(event.id)
      if (!ctx) return []
      const base = {
        queueId: event.id,
        recipient: event.rcpt,
        time: event.time,
        ...contextFields(ctx),
        ...(event.destination ? { remoteMta: event.destination } : {}),
      }
      return [bounce(event.id, base, event.reply, event.type === 'bounced' ? 'relay' : 'expired')]
    }
    default:
      return []
  }
}

function stageOf(stage: string | undefined): { stage?: string } {
  return stage ? { stage } : {}
}

function bounce(
  queueId: string,
  base: { queueId: string; recipient: string; time: number; tags: readonly string[]; messageId?: string; sender?: string; remoteMta?: string },
  reply: string,
  source: 'relay' | 'expired',
): NewReportEvent {
  const { code, enhanced, text } = splitReply(reply)
  const classified = classifyReply(code, enhanced, text)
  // The queue giving up is no evidence about the address: a soft bounce, whatever the last reply was.
  const expired = source === 'expired'
  return {
    type: 'bounced',
    id: derivedEventId(queueId, 'bounced', base.recipient),
    ...base,
    bounceType: expired ? 'soft' : classified.class,
    category: expired ? 'expired' : classified.category,
    status: expired
      ? classified.status?.startsWith('4.') || !classified.status
        ? '4.4.7'
        : classified.status
      : (classified.status ?? `${String(code ?? 5)[0]}.0.0`),
    diagnostic: reply,
    source,
  }
}
