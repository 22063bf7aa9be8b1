/**
 * The delivery event stream: every outcome the engine decides is announced here, once, as a
 * typed event, and everything that reports on mail (the log line per message, webhooks,
 * metrics, an application's own dashboard) reads this stream instead of deciding again.
 *
 * Listeners are called synchronously, in the order they subscribed, after the outcome is final;
 * they cannot change it. A listener that throws is reported as an `error` event (and never
 * rethrown); one that returns a promise is not awaited. The queue adds the events of each
 * delivery attempt and operator action (`queued`, `deferred`, `bounced` …).
 *
 * The engine announces outcomes; a transport may announce what it did on the way (each delivery
 * attempt of direct MX delivery) with {@link announce}, which reaches the stream of the message's
 * transaction: the only thing a transport holds is the message.
 */
import type { StageTimings } from '../core/compose.js'
import { MessageImpl } from '../core/message.js'
import type { Message } from '../core/types.js'

/**
 * Who an event is about, on the SMTP side.
 *
 * @category Delivery
 */
export interface EventSession {
  /** Connection id. */
  readonly id: string
  /** The client's IP address. */
  readonly client: string
  /** The listener (ingress) the message came in on. */
  readonly listener: string
  /** The authenticated login, if any. */
  readonly user?: string
}

/**
 * Fields every event has.
 *
 * @category Delivery
 */
export interface EventBase {
  /** Milliseconds since the epoch. */
  readonly time: number
  /** The transaction (queue) id; the same in the 250 reply and every log line. */
  readonly id: string
  /** The client connection the transaction belongs to. */
  readonly session: EventSession
}

/**
 * MAIL FROM was refused by a stage.
 *
 * @category Delivery
 */
export interface SenderRefusedEvent extends EventBase {
  /** The event's kind. */
  readonly type: 'sender-refused'
  /** The sender as given, `<>` for the null sender. */
  readonly from: string
  /** The reply line the client got, e.g. `550 5.7.1 …`. */
  readonly reply: string
  /** The stage that refused it, if a stage did. */
  readonly stage?: string
  /** Why, for the log; never sent to the client. */
  readonly reason?: string
}

/**
 * A recipient was refused: at RCPT (by a stage or for lack of relay permission), or by the next hop after DATA.
 *
 * @category Delivery
 */
export interface RecipientRefusedEvent extends EventBase {
  /** The event's kind. */
  readonly type: 'recipient-refused'
  /** When: at RCPT (`'rcpt'`), or by the next hop after DATA (`'data'`). */
  readonly phase: 'rcpt' | 'data'
  /** The recipient as the client gave it. */
  readonly rcpt: string
  /** The recipient the next hop refused, when a stage rewrote or expanded it. */
  readonly final?: string
  /** The reply that refused it (at RCPT, the one the client got; after DATA, the next hop's). */
  readonly reply: string
  /** The stage that refused it, if a stage did. */
  readonly stage?: string
  /** Why, for the log; never sent to the client. */
  readonly reason?: string
}

/**
 * What the message-level events share.
 *
 * @category Delivery
 */
export interface MessageEventBase extends EventBase {
  /** The final envelope sender, `<>` for the null sender. */
  readonly from: string
  /** The final recipients the chain delivered to. */
  readonly to: readonly string[]
  /** Bytes received. */
  readonly size: number
  /** The reply the client got, e.g. `250 2.0.0 Ok: queued as 8PQ2…`. */
  readonly reply: string
  /** How many recipients the next hop accepted. */
  readonly accepted: number
  /** How many recipients the next hop refused. */
  readonly rejected: number
  /** Milliseconds from the start of DATA to the reply. */
  readonly ms: number
  /** Milliseconds each stage spent in its own code, by name. */
  readonly stages: StageTimings
  /** The Message-ID field, if the message has one. */
  readonly messageId?: string
}

/**
 * The message was accepted: the client got 250 (delivered to at least one recipient, or stored).
 *
 * @category Delivery
 */
export interface AcceptedEvent extends MessageEventBase {
  /** The event's kind. */
  readonly type: 'accepted'
  /** True if the transport stored it for later delivery (a queue): `queued` and later events follow. */
  readonly queued?: boolean
}

/**
 * The message was refused after DATA: by a stage, the content checks, or every recipient's next hop.
 *
 * @category Delivery
 */
export interface MessageRefusedEvent extends MessageEventBase {
  /** The event's kind. */
  readonly type: 'message-refused'
  /** The stage that refused it, if a stage did. */
  readonly stage?: string
  /** Why, for the log; never sent to the client. */
  readonly reason?: string
  /** True if the client left (or the reply time ran out) before the outcome: nobody got the reply. */
  readonly aborted?: boolean
}

/**
 * The next hop accepted the message for one recipient (at once, or from the queue: then with the attempt).
 *
 * @category Delivery
 */
export interface DeliveredEvent extends EventBase {
  /** The event's kind. */
  readonly type: 'delivered'
  /** The recipient as the client gave it. */
  readonly rcpt: string
  /** The recipient as delivered, when a stage rewrote or expanded it. */
  readonly final?: string
  /** The next hop's reply. */
  readonly response: string
  /** From the queue: which attempt this was (1 for the first). */
  readonly attempt?: number
  /** From the queue: the next hop (see `Transport.destinationOf`). */
  readonly destination?: string
}

/**
 * The queue stored a message durably: the client got its 250.
 *
 * @category Delivery
 */
export interface QueuedEvent extends EventBase {
  /** The event's kind. */
  readonly type: 'queued'
  /** The envelope sender; `''` for the null sender. */
  readonly from: string
  /** The recipients queued. */
  readonly to: readonly string[]
  /** The message's size in bytes. */
  readonly size: number
  /** Set on the queue's own notices (DSNs). */
  readonly notice?: 'failure' | 'delay' | 'success'
}

/**
 * What the queue's events about one recipient's attempt share.
 *
 * @category Delivery
 */
export interface AttemptEventBase extends EventBase {
  /** The recipient. */
  readonly rcpt: string
  /** The attempt number (1 for the first). */
  readonly attempt: number
  /** The next hop's reply, or ours when it gave none (`451 4.4.1 …` for a refused connection). */
  readonly reply: string
  /** The next hop (see `Transport.destinationOf`). */
  readonly destination?: string
}

/**
 * An attempt failed temporarily; the recipient stays queued until `next`.
 *
 * @category Delivery
 */
export interface DeferredEvent extends AttemptEventBase {
  /** The event's kind. */
  readonly type: 'deferred'
  /** When it is tried again (ms since the epoch), or undefined while its next hop is throttled. */
  readonly next?: number
}

/**
 * The next hop refused a queued recipient permanently.
 *
 * @category Delivery
 */
export interface BouncedEvent extends AttemptEventBase {
  /** The event's kind. */
  readonly type: 'bounced'
  /** The queue id of the failure notice (DSN) to the sender, if one is due. */
  readonly notice?: string
}

/**
 * A queued recipient outlived the queue's lifetime and is given up.
 *
 * @category Delivery
 */
export interface ExpiredEvent extends AttemptEventBase {
  /** The event's kind. */
  readonly type: 'expired'
  /** The queue id of the failure notice (DSN) to the sender, if one is due. */
  readonly notice?: string
}

/**
 * A queued recipient's delivery is taking long: the sender was sent a delay notice (once).
 *
 * @category Delivery
 */
export interface DelayedEvent extends AttemptEventBase {
  /** The event's kind. */
  readonly type: 'delayed'
  /** The queue id of the delay notice. */
  readonly notice: string
}

/**
 * What the events about a whole queue entry share.
 *
 * @category Delivery
 */
export interface QueueEntryEventBase extends EventBase {
  /** Its recipients not yet delivered. */
  readonly recipients: readonly string[]
  /** Who did it and why, e.g. `operator`. */
  readonly reason: string
}

/**
 * A queue entry was held: by an operator, or by the queue for a notice nobody can take.
 *
 * @category Delivery
 */
export interface HeldEvent extends QueueEntryEventBase {
  /** The event's kind. */
  readonly type: 'held'
}

/**
 * A held queue entry was released (or requeued) by an operator: due now.
 *
 * @category Delivery
 */
export interface ReleasedEvent extends QueueEntryEventBase {
  /** The event's kind. */
  readonly type: 'released'
}

/**
 * An operator deleted a queue entry.
 *
 * @category Delivery
 */
export interface DeletedEvent extends QueueEntryEventBase {
  /** The event's kind. */
  readonly type: 'deleted'
}

/**
 * A delivery status notification for recipients refused after DATA: sent, failed, or not due.
 *
 * @category Delivery
 */
export interface DsnEvent extends EventBase {
  /** The event's kind. */
  readonly type: 'dsn'
  /** `'sent'`: the notice left; `'failed'`: sending it failed; `'not-due'`: none was owed (null sender, `NOTIFY=NEVER`). */
  readonly outcome: 'sent' | 'failed' | 'not-due'
  /** Where it went: the original sender. */
  readonly to?: string
  /** The id of the notice itself. */
  readonly dsnId?: string
  /** The recipients it reports, with the reply each got. */
  readonly failed: ReadonlyArray<{
    /** The recipient as the client gave it. */
    readonly rcpt: string
    /** The reply that refused it. */
    readonly reply: string
  }>
  /** Why it was not sent, or why sending it failed. */
  readonly reason?: string
}

/**
 * How a delivery attempt treated TLS: `'dane'` (TLSA records, RFC 7672), `'dane-encrypt'` (TLSA
 * records but none usable: encrypted, not authenticated), `'mta-sts'` (an enforced MTA-STS
 * policy), `'mta-sts-testing'` (a policy in testing mode: checked and reported, not enforced),
 * `'require-tls'` (the transport's own `requireTls` for the destination, or REQUIRETLS asked by
 * the message), `'opportunistic'` (STARTTLS when offered, cleartext otherwise).
 *
 * @category Delivery
 */
export type TlsPolicyName = 'dane' | 'dane-encrypt' | 'mta-sts' | 'mta-sts-testing' | 'require-tls' | 'opportunistic'

/**
 * One attempt of a transport to hand recipients to one server (an MX host at one address),
 * announced as it ends, before the transport returns. A message may see several: the next MX
 * after a failure, a second session in cleartext after a failed STARTTLS handshake. It is about
 * the connection (host, address, TLS, policy); what became of each recipient in the end is in
 * the events about recipients: `delivered` at once, or the queue's `delivered`, `deferred`,
 * `bounced` (with the same `destination`) when a queue is in front of the transport.
 *
 * @category Delivery
 */
export interface DeliveryAttemptEvent extends EventBase {
  /** The event's kind. */
  readonly type: 'delivery-attempt'
  /** The transport that made the attempt, e.g. `mx`. */
  readonly transport: string
  /** The next hop, as `Transport.destinationOf` names it (for MX delivery: the recipient domain). */
  readonly destination: string
  /** The recipients this attempt was for. */
  readonly recipients: readonly string[]
  /** Those the server accepted (after the message was sent). */
  readonly accepted: readonly string[]
  /** The server's name: the MX host, or the domain itself for an implicit MX. */
  readonly host: string
  /** The address connected to. */
  readonly ip: string
  /** The port connected to (25 unless configured). */
  readonly port: number
  /** The negotiated TLS version (`TLSv1.3`); absent for a session in cleartext or one that never got that far. */
  readonly tls?: string
  /** True when the server's certificate was authenticated (DANE, or PKIX and the host name). */
  readonly verified: boolean
  /** The TLS policy that applied to this host. */
  readonly policy: TlsPolicyName
  /**
   * `delivered`: some recipients accepted; `failed`: refused permanently (5xx); `deferred`: a
   * temporary failure, the next host may be tried. The words of the queue's recipient status.
   */
  readonly outcome: 'delivered' | 'failed' | 'deferred'
  /** The server's last reply, or the reply we made of its absence (`451 4.4.1 …`, `451 4.7.5 …`). */
  readonly reply: string
  /** Why, for the log: what failed and where. */
  readonly reason?: string
  /** Milliseconds the attempt took, connection included. */
  readonly ms: number
}

/**
 * An error on our side (a stage or transport bug, an outage): never a client's misbehaviour.
 *
 * @category Delivery
 */
export interface ErrorEvent {
  /** The event's kind. */
  readonly type: 'error'
  /** Milliseconds since the epoch. */
  readonly time: number
  /** What failed, as in the log line: `'unexpected error in chain'`, `'listener error'` … */
  readonly message: string
  /** What was thrown. */
  readonly error: unknown
  /** The transaction (queue) id, if a message was involved. */
  readonly id?: string
  /** The connection id, if a connection was involved. */
  readonly session?: string
  /** The client's IP address, if a connection was involved. */
  readonly client?: string
  /** The listener, if the error belongs to one. */
  readonly listener?: string
  /** The stage that threw, if one did. */
  readonly stage?: string
}

/**
 * Every event of the delivery stream.
 *
 * @category Delivery
 */
export type DeliveryEvent =
  | SenderRefusedEvent
  | RecipientRefusedEvent
  | AcceptedEvent
  | MessageRefusedEvent
  | DeliveredEvent
  | DsnEvent
  | QueuedEvent
  | DeferredEvent
  | BouncedEvent
  | ExpiredEvent
  | DelayedEvent
  | HeldEvent
  | ReleasedEvent
  | DeletedEvent
  | DeliveryAttemptEvent
  | ErrorEvent

/**
 * The events a transport may announce about its message (see {@link announce}).
 *
 * @category Delivery
 */
export type TransportEvent = DeliveryAttemptEvent

/**
 * A transport event without the fields {@link announce} fills in.
 *
 * @category Delivery
 */
export type TransportEventFields = TransportEvent extends infer E ? (E extends TransportEvent ? Omit<E, keyof EventBase> : never) : never

/**
 * A subscriber; see the file header for when it is called.
 *
 * @category Delivery
 */
export type DeliveryListener = (event: DeliveryEvent) => void

/**
 * The stream of one pipeline.
 *
 * @category Delivery
 */
export interface DeliveryEvents {
  /** Adds a listener; returns the function that removes it. */
  subscribe(listener: DeliveryListener): () => void
  /** True if anyone listens (so that events nobody reads are not even built). */
  readonly active: boolean
  /** Announces an event. Ingresses call it; stages never need to. */
  emit(event: DeliveryEvent): void
}

/**
 * Creates an event stream.
 *
 * @example
 * ```ts
 * const events = createEventStream()
 * const stop = events.subscribe((e) => {
 *   if (e.type === 'recipient-refused') metrics.refused.inc()
 * })
 * ```
 *
 * @category Delivery
 */
export function createEventStream(): DeliveryEvents {
  let listeners: DeliveryListener[] = []
  const stream: DeliveryEvents = {
    subscribe(listener) {
      listeners = [...listeners, listener]
      return () => {
        listeners = listeners.filter((l) => l !== listener)
      }
    },
    get active() {
      return listeners.length > 0
    },
    emit(event) {
      for (const listener of listeners) {
        try {
          listener(event)
        } catch (error) {
          // A listener's bug is ours to report, but never twice in a loop.
          if (event.type !== 'error') stream.emit({ type: 'error', time: Date.now(), message: 'event listener threw', error })
        }
      }
    },
  }
  return stream
}

/**
 * Announces a transport's event about `msg` on the stream of the transaction the message belongs
 * to (forks and nested pipelines included), filling in the time, the transaction id and the
 * session. A message made outside an engine transaction has no stream: nothing happens. Like
 * every event, it is not even emitted when nobody listens.
 *
 * @example
 * ```ts
 * announce(msg, { type: 'delivery-attempt', transport: 'mx', destination: domain, recipients, accepted, host, ip, port,
 *   verified: true, policy: 'dane', outcome: 'delivered', reply: '250 2.0.0 Ok', ms })
 * ```
 *
 * @category Delivery
 */
export function announce(msg: Message, event: TransportEventFields): void {
  const events = msg instanceof MessageImpl ? msg.events : undefined
  if (!events?.active) return
  const s = msg.session
  const session: EventSession = s.user
    ? { id: s.id, client: s.remoteAddress, listener: s.listener, user: s.user }
    : { id: s.id, client: s.remoteAddress, listener: s.listener }
  events.emit({ ...event, time: Date.now(), id: msg.id, session })
}
