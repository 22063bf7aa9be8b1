/**
 * Reporting: where the reporting events of a relay come together. It reads the engine's delivery
 * stream (`attach`), takes the events its own parts produce (`record`: suppression drops,
 * ingested bounces and complaints, opens, clicks, unsubscribes), gives each its id, time and the
 * message's context, drops repeats by id, appends it to the event store (webhooks read from
 * there) and keeps the suppression list: a hard bounce suppresses the address for every sender,
 * a complaint or an unsubscribe for the sender's domain. Policy blocks never suppress.
 */
import { domainKey } from '../core/address.js'
import type { DeliveryEvent, DeliveryEvents } from '../delivery/events.js'
import { randomEventId } from './events/event-id.js'
import { fromDelivery, type MessageContext } from './events/from-delivery.js'
import type { NewReportEvent, ReportEvent } from './events/types.js'
import type { EventStore } from './store/file-store.js'
import type { SuppressionList, SuppressionReason } from './suppression/list.js'

/**
 * Options of {@link createReporting}.
 *
 * @category Reporting
 */
export interface ReportingOptions {
  /** Where events are kept (see `openEventStore`). */
  readonly store: EventStore
  /** The suppression list hard bounces, complaints and unsubscribes add to. */
  readonly suppressions?: SuppressionList
  /** The clock for event times. Default `Date.now`. */
  readonly clock?: () => number
  /**
   * The sender scope of an automatic suppression: `*` (every sender) or a sender domain.
   * Default: `*` for a hard bounce, the sender's domain for a complaint or an unsubscribe.
   */
  readonly scope?: (reason: SuppressionReason, event: ReportEvent) => string
}

/**
 * The hub; see the file header.
 *
 * @category Reporting
 */
export interface Reporting {
  /** The event store every recorded event is appended to (`ReportingOptions.store`). */
  readonly store: EventStore
  /** The suppression list automatic suppressions go to, if one was given. */
  readonly suppressions?: SuppressionList
  /** Maps a relay's (or pipeline's, or queue's) delivery events into reporting events; returns the function that stops it. */
  attach(events: DeliveryEvents): () => void
  /** Records an event: returns it with its id, time and context, or undefined when it repeats one already recorded. */
  record(event: NewReportEvent): ReportEvent | undefined
  /** What a stage knows about a message still in DATA (its tags, its sender before VERP), read when it is accepted. */
  note(queueId: string, noted: { readonly tags?: readonly string[]; readonly sender?: string; readonly ignore?: boolean }): void
  /** Calls `listener` with every event recorded; returns the function that removes it. */
  subscribe(listener: (event: ReportEvent) => void): () => void
  /** The message context of a queue id (Message-ID, sender, tags). */
  contextOf(queueId: string): MessageContext | undefined
}

const RECENT_IDS = 100_000

/**
 * Creates the reporting hub.
 *
 * @example
 * ```ts
 * const store = await openEventStore({ dir: 'data/events' })
 * const suppressions = await openSuppressionList({ file: 'data/suppressions.jsonl' })
 * const reporting = createReporting({ store, suppressions })
 * reporting.attach(relay.events)
 * reporting.subscribe((e) => e.type === 'bounced' && console.log(e.recipient, e.bounceType, e.status))
 * ```
 *
 * @category Reporting
 */
export function createReporting(options: ReportingOptions): Reporting {
  const { store, suppressions } = options
  const clock = options.clock ?? Date.now
  const pending = new Map<string, { tags?: readonly string[]; sender?: string; ignore?: boolean }>()
  const dropped = new Set<string>()
  const queued = new Map<string, DeliveryEvent>()
  const recent = new Set<string>()
  const listeners = new Set<(event: ReportEvent) => void>()
  const scope =
    options.scope ??
    ((reason: SuppressionReason, event: ReportEvent) => (reason === 'hard-bounce' || !event.sender?.includes('@') ? '*' : domainKey(event.sender)))

  function suppress(event: ReportEvent): void {
    if (!suppressions || !event.recipient) return
    const reason: SuppressionReason | undefined =
      event.type === 'bounced' && event.bounceType === 'hard'
        ? 'hard-bounce'
        : event.type === 'complained'
          ? 'complaint'
          : event.type === 'unsubscribed'
            ? 'unsubscribe'
            : undefined
    if (reason && !suppressions.check(event.recipient, event.sender))
      suppressions.add({ target: event.recipient, scope: scope(reason, event), reason, eventId: event.id })
  }

  const reporting: Reporting = {
    store,
    ...(suppressions ? { suppressions } : {}),
    attach(events) {
      const map = (delivery: DeliveryEvent) => {
        // The queue announces a message stored before the engine announces it accepted: hold it until then.
        if ('id' in delivery && delivery.id && pending.get(delivery.id)?.ignore) {
          // A report the relay took in (reportIntake): not mail the relay sent.
          if (delivery.type === 'accepted' || delivery.type === 'message-refused') pending.delete(delivery.id)
          return
        }
        if (delivery.type === 'queued' && !delivery.notice && !store.contextOf(delivery.id)) return void queued.set(delivery.id, delivery)
        const mapped = fromDelivery(
          delivery,
          (id) => store.contextOf(id),
          (id) => pending.get(id),
        )
        if (delivery.type === 'accepted' || delivery.type === 'message-refused') pending.delete(delivery.id)
        for (const event of mapped) {
          if (event.type === 'delivered' && event.queueId && dropped.delete(`${event.queueId}\0${event.recipient.toLowerCase()}`)) continue
          reporting.record(event)
        }
        if (delivery.type === 'accepted' || delivery.type === 'message-refused') {
          const held = queued.get(delivery.id)
          queued.delete(delivery.id)
          if (held && delivery.type === 'accepted') map(held)
        }
      }
      return events.subscribe(map)
    },
    record(input) {
      const ctx = input.queueId && input.type !== 'accepted' ? store.contextOf(input.queueId) : undefined
      const event = {
        ...(ctx?.messageId ? { messageId: ctx.messageId } : {}),
        ...(ctx?.sender ? { sender: ctx.sender } : {}),
        ...input,
        id: input.id ?? randomEventId(),
        time: input.time ?? clock(),
        tags: input.tags?.length ? input.tags : (ctx?.tags ?? []),
      } as ReportEvent
      if (recent.has(event.id)) return undefined
      recent.add(event.id)
      if (recent.size > RECENT_IDS) recent.delete(recent.values().next().value!)
      if (event.type === 'dropped' && event.mode === 'silent' && event.queueId) dropped.add(`${event.queueId}\0${event.recipient.toLowerCase()}`)
      store.append(event)
      suppress(event)
      for (const listener of listeners) {
        try {
          listener(event)
        } catch {
          // A listener's failure is its own; the event is recorded.
        }
      }
      return event
    },
    note(queueId, noted) {
      pending.set(queueId, { ...pending.get(queueId), ...noted })
    },
    subscribe(listener) {
      listeners.add(listener)
      return () => listeners.delete(listener)
    },
    contextOf: (queueId) => store.contextOf(queueId),
  }
  return reporting
}
