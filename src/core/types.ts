/**
 * The contracts of relaychain: what a stage is, what it is handed, when each hook runs, what it
 * may change and what throwing means. Everything here is an interface; the behaviour lives in
 * `pipeline.ts` (running the hooks), `relay.ts` (the SMTP ingress) and `transports/`.
 *
 * Lifecycle, for one SMTP connection:
 *
 * ```text
 * accept  ─▶ connection limits (in all, per client, rate) ─ 421 4.3.2 / 421 4.7.0, closed
 * connect ─▶ stage.connect (each stage, in order) ─────── throw → 554 5.7.1 / 421 4.3.2, connection closed
 * AUTH    ─▶ the relay's Authenticator (after TLS) ───── 235 2.7.0 / 535 5.7.8 / 454 4.7.0; 538 5.7.11 before TLS
 * MAIL    ─▶ address checks, then stage.mailFrom (may rewrite the sender)
 *            bad or routing address ──────────────────── 501 5.1.7 / 553 5.1.7 / 553 5.6.7
 *            throw ──────────────────────────────────── the error (550 5.7.1, 451 4.3.0 …)
 * RCPT    ─▶ stage.rcptTo, per recipient (may rewrite, expand, grant relay)
 *            no stage granted relay ───────────────────── 554 5.7.1 Relay access denied (this recipient only)
 * DATA    ─▶ stage[0].data ─▶ stage[1].data ─▶ … ─▶ transport.send(msg)
 *            ◀── code after `await next()` sees the DeliveryReport
 *            250 only when the transport accepted the message (delivered, or durably queued)
 * ```
 */
import type { Readable, Transform } from 'node:stream'
import type { DeliveryEvents } from '../delivery/events.js'
import type { HeaderBlock } from './body/header-block.js'
import type { SmtpError } from './errors.js'

/**
 * A value or a promise of it.
 *
 * @category Core
 */
export type Awaitable<T> = T | Promise<T>

/**
 * A mailbox in the SMTP envelope, with the ESMTP parameters it came with.
 *
 * @category Core
 */
export interface Address {
  /** The address without angle brackets, e.g. `alice@example.com`. Never empty: the null sender is `null`. */
  readonly address: string
  /**
   * ESMTP parameters of the MAIL FROM / RCPT TO command, keys upper case (`BODY`, `SMTPUTF8`,
   * `RET`, `ENVID`, `NOTIFY`, `ORCPT`); `true` for a keyword without a value. Values are
   * decoded from xtext (`ENVID=a+2Bb` arrives as `a+b`).
   */
  readonly args?: Readonly<Record<string, string | true>>
}

/**
 * Who a message is from and for, as the SMTP transaction says (not the headers).
 *
 * @category Core
 */
export interface Envelope {
  /** The sender; `null` for the null sender `MAIL FROM:<>` (bounces, DSNs). */
  readonly mailFrom: Address | null
  /** The recipients, in order, without duplicates. */
  readonly rcptTo: readonly Address[]
}

/**
 * One SMTP connection. The object is live: `heloName`, `secure` and `user` change as the client
 * sends EHLO, STARTTLS and AUTH. Stages read it; nothing writes it but the relay.
 *
 * @category Core
 */
export interface Session {
  /** Connection id, unique per relay process; appears in every log line of the connection. */
  readonly id: string
  /** Name of the listener the client connected to (see `ListenerOptions.name`). */
  readonly listener: string
  /**
   * The client's IP address. Behind a load balancer speaking the PROXY protocol, or after XCLIENT
   * from a trusted host, the address of the real client, not of the balancer.
   */
  readonly remoteAddress: string
  /** The client's TCP port (the real client's, as for `remoteAddress`). */
  readonly remotePort: number
  /** The relay's address the client connected to. */
  readonly localAddress: string
  /** The relay's port the client connected to. */
  readonly localPort: number
  /** Reverse-resolved client name, or `[ip]` when reverse lookup is off or failed. */
  readonly clientHostname: string
  /** The name the client gave with HELO/EHLO; `''` before it did. */
  readonly heloName: string
  /** True once the connection is encrypted (implicit TLS or after STARTTLS). */
  readonly secure: boolean
  /** The authenticated login name, once the client authenticated (SMTP AUTH). */
  readonly user?: string | undefined
  /** The authenticated identity, once the client authenticated: who it is and which senders it owns. */
  readonly auth?: AuthIdentity | undefined
}

/**
 * Who a client authenticated as (SMTP AUTH), as an {@link Authenticator} answered.
 *
 * @category Auth
 */
export interface AuthIdentity {
  /** The login name; becomes `Session.user` and the `user` of log lines. */
  readonly user: string
  /**
   * Envelope senders this identity owns, for `relayPolicy({ senderLogin: true })` (Postfix
   * `smtpd_sender_login_maps`): addresses (`alice@example.com`) or whole domains
   * (`@example.com`). Without it the identity owns only its login, if that is an address.
   */
  readonly senders?: readonly string[]
}

/**
 * Checks a user name and password for SMTP AUTH (PLAIN, LOGIN). Resolves with the identity, or
 * `null` for wrong credentials — the same answer, and ideally the same time, for an unknown user
 * and a wrong password, so a client cannot learn which names exist.
 *
 * Called by the relay once per attempt, only over TLS (unless `auth.allowInsecure`), and never
 * for a client or user name that is locked out after repeated failures. Throwing means the check
 * could not be made: the client gets `454 4.7.0` and may retry; the error is logged.
 *
 * @category Auth
 */
export interface Authenticator {
  (user: string, password: string, session: Session): Awaitable<AuthIdentity | null>
  /**
   * The plaintext password of `user`, or `null`. Only needed for CRAM-MD5, which proves knowledge
   * of the password without sending it and so needs it stored in plaintext: authenticators over
   * hashed passwords cannot offer it. The relay then calls the authenticator itself with this
   * secret to get the identity.
   */
  readonly secret?: (user: string, session: Session) => Awaitable<string | null>
}

/**
 * Per-message state shared by stages, typed by declaration merging (one field is built in,
 * `requireTls`):
 *
 * ```ts
 * declare module 'relaychain' {
 *   interface MessageState { spamScore: number }
 * }
 * ```
 *
 * @category Core
 */
export interface MessageState {
  /**
   * Deliver this message only over TLS with an authenticated server certificate, or not at all
   * (RFC 8689 REQUIRETLS): set by a stage for messages that must not travel in the clear.
   * `mxTransport` honours it (and passes REQUIRETLS on; servers must support it); `smtpTransport`
   * does not look at it: its TLS is what its options say (`requireTls`, `tls`).
   */
  requireTls?: boolean
}

/**
 * A mail transaction before its content arrived: what the MAIL and RCPT hooks are handed.
 * The same object becomes the {@link Message} at DATA.
 *
 * @category Core
 */
export interface Transaction {
  /** Transaction id (the "queue id"): unique, appears in the 250 reply and in every log line. */
  readonly id: string
  /** The SMTP connection the transaction arrived on. */
  readonly session: Session
  /** The envelope as the client sent it; for DSNs and traces. */
  readonly original: Envelope
  /**
   * The current envelope, with one meaning in every hook, at the relay and in a nested pipeline
   * alike: in `mailFrom` hooks, the sender as the stages before rewrote it and no recipients yet;
   * in `rcptTo` hooks, the final sender and the final recipients accepted so far (not the one
   * being decided); in `data`, the final envelope. Stages change it only through hook return
   * values.
   */
  readonly envelope: Envelope
  /** State shared by the stages of this transaction; see {@link MessageState}. */
  readonly state: Partial<MessageState>
  /** Aborted when the client goes away mid-transaction or a limit ends it. */
  readonly signal: AbortSignal
}

/**
 * A transform of message bytes: a Node `Transform`, or an async generator function.
 *
 * @category Core
 */
export type BodyTransform = Transform | ((source: AsyncIterable<Buffer>) => AsyncIterable<Buffer>)

/**
 * A spooled body: re-readable, in memory up to a limit and in a temp file beyond it.
 *
 * @category Core
 */
export interface SpooledBody {
  /** Size in bytes. */
  readonly size: number
  /** A new stream over the whole spooled content; may be called any number of times. */
  open(): Readable
}

/**
 * Options of `MessageBody.spool()`.
 *
 * @category Core
 */
export interface SpoolReadOptions {
  /**
   * Called with every chunk of the spooled content, in order, before `spool()` resolves: as the
   * body is spooled, or read back from the spool when there is one already. For a stage that
   * needs a digest of the whole body (a signer), so that it does not read the spool a second time.
   */
  readonly onChunk?: (chunk: Buffer) => void
}

/**
 * The body of a message (everything after the header section), streamed lazily. Nothing is
 * read from the client until a transport (or a spooling stage) reads it, so memory does not
 * grow with message size.
 *
 * @category Core
 */
export interface MessageBody {
  /**
   * Appends a transform; it applies to everything read after this call. Costs nothing until
   * the body is read.
   */
  transform(transform: BodyTransform): void
  /**
   * Reads the body (with its pending transforms) into a re-readable spool: memory up to the
   * relay's spool limit, then a temp file that is deleted when the transaction ends. Later
   * reads come from the spool. Calling it again without new transforms returns the same spool.
   */
  spool(options?: SpoolReadOptions): Promise<SpooledBody>
  /**
   * The body as a stream. Without a spool this consumes the body: a second call throws
   * `RelayError` `ERR_RELAY_BODY_CONSUMED`. After `spool()` it may be called again.
   */
  stream(): Readable
}

/**
 * A message in the DATA phase: the transaction plus its content. The header section is parsed
 * once into {@link HeaderBlock}; editing headers never re-reads the body.
 *
 * @category Core
 */
export interface Message extends Transaction {
  /** The header section. Edits (`add`, `set`, `remove`) are cheap and never touch the body. */
  readonly headers: HeaderBlock
  /** The body, streamed lazily. */
  readonly body: MessageBody
  /** The whole message, header section then body; reading it reads the body (see `MessageBody.stream`). */
  stream(): Readable
  /**
   * Passes the whole message (headers and body) through a transform and re-parses the header
   * section of its output: for MIME rewrites that change top-level headers (a disclaimer that
   * re-encodes a single-part message). Resolves once the new header section is parsed; the body
   * still streams. `msg.headers` is a new block afterwards.
   */
  rewrite(transform: BodyTransform): Promise<void>
  /**
   * A copy of this message for other recipients, to pass to `next(fork)` (one group of a split:
   * S/MIME for some recipients, routes per destination) or to send elsewhere (an archive copy).
   * It has the same id, session and original envelope, the current sender (or `mailFrom`), the
   * same state object (or `state`), the same event stream, a copy of the header section as it is now, and a body that
   * reads what this message's body holds now: spooled once so that both can read it, or, with
   * `takeBody`, taken over (then this message's body must not be read again).
   */
  fork(rcptTo: readonly Address[], options?: ForkOptions): Promise<Message>
}

/**
 * Options of {@link Message.fork}.
 *
 * @category Core
 */
export interface ForkOptions {
  /** The fork's sender. Default: the message's current sender. */
  readonly mailFrom?: Address | null
  /** The fork's own state. Default: the message's state object, shared. */
  readonly state?: Partial<MessageState>
  /** Take the body over instead of spooling it; the message's body must not be read again. Default false. */
  readonly takeBody?: boolean
}

/**
 * What a stage's `rcptTo` hook may answer besides rewriting.
 *
 * @category Core
 */
export interface RcptVerdict {
  /**
   * Grants relay permission for this recipient. Only stages that declare `grantsRelay: true`
   * may grant it; a grant from any other stage is a `RelayError` (the client sees `451 4.3.0`).
   */
  readonly relay?: boolean
  /** Replacement recipients: one address rewrites the recipient, several expand it. */
  readonly to?: Address | readonly Address[]
  /** Why, for the log; never sent to the client. */
  readonly reason?: string
}

/**
 * Calls the rest of the chain (the next stage, at the end the transport) with the message. A stage
 * that must treat groups of recipients differently (S/MIME encryption for those with a
 * certificate, plain text for the others) passes a fork of the message per group instead, one
 * call each, and merges the reports; passing a recipient on twice is a `RelayError`.
 *
 * @category Core
 */
export type Next = (part?: Message) => Promise<DeliveryReport>

/**
 * What a stage or transport may change, so a pipeline can check the chain's order:
 * `'trace'` only adds new header fields at the top (Received, X-Spam-*, DKIM-Signature, ARC-*);
 * `'headers'` may edit, remove or add any header field; `'body'` may change the body (and headers).
 *
 * @category Core
 */
export type Modifies = 'trace' | 'headers' | 'body'

/**
 * What a signer fixes. `'body'` (S/MIME): the content; header fields may still change, and
 * another S/MIME layer may wrap it whole (sign, then encrypt). `'message'` (DKIM): the body and the
 * signed header fields; only new trace fields may follow.
 *
 * @category Core
 */
export type Seals = 'body' | 'message'

/**
 * One step of a relay chain. Every hook is optional; hooks of different stages run in array
 * order. A stage is a plain object, usually returned by a factory (`spamScan(options)`), with
 * named hook functions so stack traces are readable.
 *
 * Rejecting: throw an {@link SmtpError} (see `reject`). Anything else thrown becomes
 * `451 4.3.0` and the client retries. Rewriting: return the new value; never mutate the envelope.
 *
 * @category Core
 */
export interface Stage {
  /** kebab-case name; appears in logs, errors, `describe()` and stage timings. */
  readonly name: string
  /**
   * What `data` may change. Declared so the pipeline can refuse unsafe orders at build time: after
   * a stage that seals `'message'` only `'trace'` stages may follow; after one that seals `'body'`,
   * nothing that modifies `'body'` but another stage that seals `'body'` (an S/MIME layer).
   */
  readonly modifies?: Modifies
  /** Set by signers: what their signature fixes (S/MIME `'body'`, DKIM `'message'`). */
  readonly seals?: Seals
  /** True if `rcptTo` may grant relay permission. A chain with no such stage relays nothing. */
  readonly grantsRelay?: boolean
  /**
   * Called once per connection, before the greeting. Throw to refuse the connection (`554 5.7.1`,
   * or `421 4.3.2` for a temporary refusal); the connection is then closed.
   */
  connect?(session: Session): Awaitable<void>
  /**
   * Called for MAIL FROM with the sender as rewritten by earlier stages (`null` for `<>`).
   * Return an `Address` to rewrite the sender. Throw to refuse the transaction.
   */
  mailFrom?(tx: Transaction, from: Address | null): Awaitable<Address | void>
  /**
   * Called for each RCPT TO (and for each address an earlier stage expanded it to). Return an
   * address or addresses to rewrite or expand it, a {@link RcptVerdict} to grant relay
   * permission, or nothing. Throwing refuses this recipient only.
   */
  rcptTo?(tx: Transaction, to: Address): Awaitable<RcptVerdict | Address | readonly Address[] | void>
  /**
   * Called once per message after the client sent DATA, koa-style: inspect or edit headers,
   * transform or spool the body, then `return next()` (exactly once, or once per fork: see
   * {@link Next}) to pass the message on.
   * Code after `await next()` sees the {@link DeliveryReport}. Throwing before `next()`
   * refuses the message; a stage may also answer without calling `next()` (quarantine).
   */
  data?(msg: Message, next: Next): Promise<DeliveryReport>
  /** Called once when the relay or pipeline closes; release connections and timers here. */
  close?(): Promise<void>
}

/**
 * A recipient a transport did not deliver to, and why.
 *
 * @category Core
 */
export interface RejectedRecipient {
  /** The recipient, as in the envelope handed to the transport. */
  readonly rcpt: Address
  /** Why: the reply for this recipient (its code decides permanent or temporary). */
  readonly error: SmtpError
}

/**
 * The outcome of delivering one message. Every recipient of `msg.envelope.rcptTo` appears
 * exactly once, in `accepted` or in `rejected`.
 *
 * @category Core
 */
export interface DeliveryReport {
  /** Recipients delivered or durably stored by the next hop. */
  readonly accepted: readonly Address[]
  /** Recipients the next hop refused, each with its reply. */
  readonly rejected: readonly RejectedRecipient[]
  /** The last reply of the next hop, e.g. an upstream's `250 2.0.0 Ok: queued as 4F1A`. */
  readonly response?: string
  /**
   * True if the next hop supports DSN (RFC 3461) and was given the parameters: notices about
   * these recipients are its duty from now on (a queue sends no success notice of its own).
   */
  readonly dsn?: boolean
  /** True if the recipients were stored for later delivery (a queue), not delivered yet. */
  readonly queued?: boolean
}

/**
 * Where a chain ends: delivers a message and reports per recipient. Resolve with a report for
 * per-recipient outcomes; throw (an `SmtpError`, ideally) when the whole message failed.
 * Accepting a recipient means it is delivered or durably stored: the relay answers 250 on it.
 *
 * @category Core
 */
export interface Transport {
  /** kebab-case name for logs and `describe()`. */
  readonly name: string
  /** What this transport changes in the message, if anything (a nested pipeline may). */
  readonly modifies?: Modifies
  /** What this transport seals, if anything (a nested pipeline with a signer). */
  readonly seals?: Seals
  /**
   * Delivers `msg` to its envelope's recipients and reports per recipient. Reads the message
   * (`msg.stream()`) at most once unless it spooled it; honours `msg.signal`.
   */
  send(msg: Message): Promise<DeliveryReport>
  /**
   * The next hop a recipient goes to, for per-destination limits and the dead-destination
   * throttle of a queue in front of this transport: e.g. `smtp:smarthost.example:587` for a
   * smarthost (every recipient the same), the recipient's domain for direct MX delivery. Called
   * often, before the content is read (the queue groups recipients with it); must be cheap and
   * must not do I/O. Default: the recipient's domain.
   */
  destinationOf?(rcpt: Address, tx: Transaction): string
  /** Prepares the transport (a queue takes its directory and starts its worker); relays call it before they listen. */
  open?(): Promise<void>
  /** Events of the transport's own (a queue's deliveries, later): a pipeline passes them on to its stream. */
  readonly events?: DeliveryEvents
  /** One line for `describe()`, e.g. `smtp 127.0.0.1:2525`. */
  describe?(): string
  /** Releases connections, pools and timers; called once when the relay or pipeline closes. */
  close?(): Promise<void>
}
