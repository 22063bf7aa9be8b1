/**
 * `createRelay()`: the SMTP ingress. One smtp-server per listener, all feeding one pipeline.
 * Secure defaults: relaying is denied until a stage grants it, bare CR/LF is refused, the size
 * limit is enforced while streaming, STARTTLS is offered only with a real certificate, and
 * `close()` lets messages in DATA finish before the connections go.
 */
import { hostname as osHostname } from 'node:os'
import type { SecureContext } from 'node:tls'
import type { SMTPServerOptions } from 'smtp-server'
import type { BareLineEndingPolicy } from '../../core/body/line-endings.js'
import type { SpoolOptions } from '../../core/body/spool.js'
import { RelayError } from '../../core/errors.js'
import { createPipeline, type Pipeline } from '../../core/pipeline.js'
import type { Stage, Transport } from '../../core/types.js'
import type { DeliveryEvent, DeliveryEvents, ErrorEvent } from '../../delivery/events.js'
import { logEvents } from '../../delivery/log.js'
import type { Clock } from '../../shared/clock.js'
import { networkMatcher } from '../../shared/ip.js'
import { type Logger, noopLogger } from '../../shared/logger.js'
import type { AddressOptions } from './address-check.js'
import { Admission } from './admission.js'
import type { RelayAuthOptions } from './auth.js'
import { COMMAND_HOOKS, type CommandHooks } from './commands.js'
import { GREETING_DELAY, installGreetingDelay } from './greeting-delay.js'
import { createHandlers } from './handlers.js'
import { relayHooks } from './hooks.js'
import { Listener } from './listener.js'
import type { TraceMode } from './received.js'
import { checkServer, RelaySmtpServer } from './server.js'
import { AUTH_IDENTITY, SessionView } from './session.js'
import { type RelayTlsOptions, TlsContexts } from './tls.js'
import { xclientHooks } from './xclient.js'

export type { RelayTlsOptions, TlsCertificate } from './tls.js'

/**
 * How a listener behaves. `'smtp'`: port-25 style, STARTTLS offered, a 100 ms pre-greeting
 * delay catches clients that talk early. `'submission'`: port-587 style, STARTTLS, greeting at
 * once. `'submissions'`: port-465 style, implicit TLS, greeting at once.
 *
 * @category Relay
 */
export type ListenerMode = 'smtp' | 'submission' | 'submissions'

/**
 * One address the relay listens on.
 *
 * @category Relay
 */
export interface ListenerOptions {
  /** Name in logs and `Session.listener`. Default `mode@host:port`. */
  name?: string
  /** Address to bind. Default `'127.0.0.1'`. */
  host?: string
  /** Port; `0` picks a free one (see the addresses `listen()` returns). Default `2525`. */
  port?: number
  /** Default `'smtp'`. */
  mode?: ListenerMode
  /** Milliseconds to wait before the greeting. Default 100 for `'smtp'`, 0 otherwise. */
  greetingDelay?: number
  /** TLS of this listener (its own certificates, SNI, protocol versions), instead of the relay's `tls`. */
  tls?: RelayTlsOptions
  /**
   * Behind a load balancer: connections come from the balancer and begin with a PROXY protocol
   * header (v1 or v2) naming the client. Only `trusted` peers may connect; anything else is
   * disconnected before the greeting.
   */
  proxyProtocol?: ProxyProtocolOptions
  /** Lets trusted hosts (a front-end MTA or proxy) name the client with Postfix's XCLIENT command. */
  xclient?: XclientOptions
}

/**
 * `ListenerOptions.proxyProtocol`.
 *
 * @category Relay
 */
export interface ProxyProtocolOptions {
  /** Networks of the load balancers (CIDR or addresses). Every other peer is refused before the greeting. */
  trusted: readonly string[]
  /** Milliseconds a balancer has to send the whole header after connecting. Default 5000. */
  timeout?: number
}

/**
 * `ListenerOptions.xclient` (Postfix `smtpd_authorized_xclient_hosts`).
 *
 * @category Relay
 */
export interface XclientOptions {
  /**
   * Hosts (CIDR or addresses) that may send XCLIENT: EHLO lists it to them only, anyone else gets
   * `550 5.7.0`. The client an XCLIENT names (`ADDR`, `NAME`, `PORT`, `LOGIN`) is what the relay
   * sees from then on: admission limits, connect hooks (run again for it), policy, logs, Received.
   * `LOGIN=user` marks the session authenticated as that user, as the front end vouches for it.
   */
  trusted: readonly string[]
}

/**
 * Limits; every one has a safe default.
 *
 * @category Relay
 */
export interface RelayLimits {
  /** Largest message in bytes, advertised with SIZE; bigger ones get `552 5.3.4`. Default 25 MiB. */
  messageSize?: number
  /** Largest header section in bytes. Default 1 MiB. */
  headerSize?: number
  /** Recipients per message (after expansion); more get `452 4.5.3`. Default 1000. */
  recipients?: number
  /** Concurrent connections in all, on every listener together; more get `421 4.3.2`. Default 200. */
  connections?: number
  /**
   * Concurrent connections from one client address; more get `421 4.7.0` (Postfix
   * `smtpd_client_connection_count_limit`). Default 50, so one client cannot take every slot.
   */
  connectionsPerClient?: number
  /**
   * New connections per minute from one client address; more get `421 4.7.0` (Postfix
   * `smtpd_client_connection_rate_limit`). Default 600. `Infinity` turns it off.
   */
  connectionRatePerClient?: number
  /**
   * Client networks (CIDR) the per-client limits do not apply to, e.g. an application server
   * that opens a connection per message (Postfix `smtpd_client_event_limit_exceptions`).
   * Default none.
   */
  clientLimitExceptions?: readonly string[]
  /**
   * Milliseconds from connect (a TLS handshake on implicit-TLS listeners included) until the
   * client's first command; a client that says nothing by then is let go with `421 4.4.2`.
   * Default 30 000.
   */
  firstCommandTimeout?: number
  /** Milliseconds a client may stay silent while it owes us a command or data. Default 300 000 (RFC 5321 §4.5.3.2). */
  idleTimeout?: number
  /**
   * Milliseconds the relay may take to answer a command whose answer comes from stages (the
   * connect, MAIL and RCPT hooks, and the chain after the final dot of DATA); a stage that takes
   * longer is abandoned and the client gets `451 4.3.0` (`421 4.3.2` at connect). Default
   * 240 000, under the 5 minutes RFC 5321 §4.5.3.2 has clients wait for MAIL and RCPT replies.
   */
  replyTimeout?: number
}

/**
 * Options of {@link createRelay}.
 *
 * @category Relay
 */
export interface RelayOptions {
  /** The chain. Give either `pipeline`, or `transport` (and `stages`). */
  pipeline?: Pipeline
  /** The stages, in the order their hooks run (without `pipeline`). */
  stages?: readonly Stage[]
  /** Where messages go after the last stage (without `pipeline`). */
  transport?: Transport
  /** The relay's name in the greeting, Received fields and DSNs. Default `os.hostname()`. */
  hostname?: string
  /** Default: one `'smtp'` listener on 127.0.0.1:2525. */
  listeners?: readonly ListenerOptions[]
  /** TLS of every listener that has none of its own: certificates, SNI, reloading, protocol versions. */
  tls?: RelayTlsOptions
  /** Connection, size and time limits (see {@link RelayLimits}). */
  limits?: RelayLimits
  /** pino-compatible logger. Default: none. */
  logger?: Logger
  /**
   * Bare CR or LF: `'reject'` (default) refuses such a message with `550 5.5.2`; `'strict'` also
   * ends a session whose command lines end in a bare LF; `'normalize'` turns them into CRLF.
   */
  bareLineEndings?: BareLineEndingPolicy
  /** The Received field: `'full'` (default), `'hide-client'` (for submission privacy) or `'off'`. */
  trace?: TraceMode
  /** Spooling of bodies that stages must read whole. */
  spool?: SpoolOptions
  /** Reverse DNS of clients: off by default (no lookups leave the relay unless asked). */
  reverseLookup?: boolean
  /** SMTP AUTH: who checks passwords, which mechanisms, throttling. Without it, AUTH is not offered. */
  auth?: RelayAuthOptions
  /** Address checks at MAIL and RCPT (source routes, `%`, `!`, IP literals, SMTPUTF8): all refuse by default. */
  addresses?: AddressOptions
  /**
   * Where `RCPT TO:<Postmaster>` (no domain) goes: RFC 5321 §4.5.1 requires accepting it, so it
   * is rewritten to this address and relayed without a stage granting it (stages' RCPT hooks
   * still run). Default `postmaster@` the relay's `hostname`.
   */
  postmaster?: string
  /**
   * Called for errors on the relay's side, never for a client's misbehaviour: a stage or
   * transport that threw something other than an `SmtpError`, an exception inside the SMTP
   * handling, a listening socket that failed after `listen()`. Each is also logged at `error`
   * level. Client faults (resets, TLS garbage, timeouts) are logged at `info` and `debug` only.
   * The process never exits because of a client, whether or not this is set.
   */
  onError?: (error: unknown, context: RelayErrorContext) => void
  /** Milliseconds since the epoch, for the connection-rate windows and in-memory AUTH lockouts; injectable for tests. Default `Date.now`. */
  clock?: Clock
}

/**
 * Where an error given to `RelayOptions.onError` happened.
 *
 * @category Relay
 */
export interface RelayErrorContext {
  /** What failed, as in the log line: `'unexpected error in chain'`, `'listener error'` … */
  readonly message: string
  /** The listener's name, if a connection was involved. */
  readonly listener?: string
  /** The session (connection) id, if a connection was involved. */
  readonly session?: string
  /** The client's IP address, if a connection was involved. */
  readonly client?: string
  /** The transaction (queue) id, if a message was involved. */
  readonly id?: string
}

/**
 * An address the relay listens on.
 *
 * @category Relay
 */
export interface BoundAddress {
  /** The listener's name. */
  readonly name: string
  /** What the listener speaks (`'smtp'`, `'submission'`, `'submissions'`). */
  readonly mode: ListenerMode
  /** The address it is bound to. */
  readonly host: string
  /** The port it is bound to: the one the system picked for `port: 0`. */
  readonly port: number
}

/**
 * A relay: listen, close, its pipeline and the events of every message it handles.
 *
 * @category Relay
 */
export interface Relay {
  /** The chain messages run through (the given `pipeline`, or one built from `stages` and `transport`). */
  readonly pipeline: Pipeline
  /** The pipeline's delivery events: subscribe to see every outcome (see `DeliveryEvent`). */
  readonly events: DeliveryEvents
  /** Binds every listener; resolves to the bound addresses (real ports for port 0). */
  listen(): Promise<readonly BoundAddress[]>
  /** The bound addresses, once listening. */
  readonly addresses: readonly BoundAddress[]
  /**
   * Replaces the certificates on the running relay, without dropping a connection: sessions
   * keep the certificate they started with, new handshakes get the new one. `tls` replaces the
   * relay's `tls` (and what `listener`, by name, was given instead); without it, every
   * certificate given as a file is read again. Throws `ERR_RELAY_INVALID_OPTION`, keeping the
   * old certificates, if the new ones do not load (a missing file, a key that does not match).
   */
  updateTls(tls?: RelayTlsOptions, options?: { listener?: string }): void
  /**
   * Stops accepting connections, answers idle clients `421 4.3.2`, lets messages in DATA finish
   * (up to `timeout` ms, default 30 000, after which they are aborted and not delivered), lets
   * DSNs being sent finish in the time left, then closes the pipeline.
   */
  close(options?: { timeout?: number }): Promise<void>
}

const MiB = 1024 * 1024

/**
 * Creates an SMTP relay. Nothing listens until `listen()`.
 *
 * @example
 * ```ts
 * import { createRelay, smtpTransport, type Stage } from 'relaychain'
 *
 * const ownDomains: Stage = {
 *   name: 'own-domains',
 *   grantsRelay: true,
 *   rcptTo: (_tx, to) => (to.address.endsWith('@example.com') ? { relay: true } : undefined),
 * }
 * const relay = createRelay({
 *   stages: [ownDomains],
 *   transport: smtpTransport({ host: 'mx.internal.example', port: 25 }),
 *   listeners: [{ host: '0.0.0.0', port: 25 }],
 * })
 * await relay.listen()
 * ```
 *
 * @category Relay
 */
export function createRelay(options: RelayOptions): Relay {
  const pipeline = resolvePipeline(options)
  const logger = options.logger ?? noopLogger
  const limits = options.limits ?? {}
  const hostname = options.hostname ?? osHostname()
  const listeners = (options.listeners ?? [{}]).map(normalizeListener)
  checkListeners(listeners, options.tls)
  const relayTls = options.tls && new TlsContexts(options.tls, 'tls')
  const tlsOf = new Map(listeners.map((l) => [l.name, l.tls ? new TlsContexts(l.tls, `listener ${l.name} tls`) : relayTls]))
  checkServer()
  const maxSize = limits.messageSize ?? 25 * MiB
  installGreetingDelay()
  const events = pipeline.events
  const clock = options.clock ?? Date.now
  const unexpected = (error: unknown, fields: Record<string, unknown>, message: string) =>
    events.emit({ type: 'error', time: Date.now(), message, error, ...fields } as ErrorEvent)
  // The log lines and onError read the event stream; nobody listening means no event is built.
  if (logger !== noopLogger) logEvents(events, logger)
  if (logger !== noopLogger || options.onError) events.subscribe(reporter(logger, options.onError))
  const commands = relayHooks(
    { auth: options.auth, addresses: options.addresses, hasTls: [...tlsOf.values()].some(Boolean), hosts: listeners.map((l) => l.host), maxSize },
    {
      hostname,
      logger,
      clock,
      view: (session) => servers.map((s) => s.handlers.view(session.id)).find(Boolean) ?? new SessionView(session, ''),
      xclient: xclientHooks((id) => servers.find((s) => s.server.acceptedOf(id))),
    },
  )
  const exempt = networkMatcher(limits.clientLimitExceptions ?? [], 'limits.clientLimitExceptions')
  const admission = new Admission({
    total: positive(limits.connections ?? 200, 'limits.connections'),
    perClient: positive(limits.connectionsPerClient ?? 50, 'limits.connectionsPerClient'),
    ratePerClient: positive(limits.connectionRatePerClient ?? 600, 'limits.connectionRatePerClient'),
    exempt,
    now: clock,
  })

  let closing = false
  const inFlight = new Map<string, Promise<unknown>>()
  const replyTimeout = positive(limits.replyTimeout ?? 240_000, 'limits.replyTimeout')
  const ctx = {
    pipeline,
    hostname,
    logger,
    unexpected,
    maxSize,
    maxHeaderSize: limits.headerSize ?? MiB,
    replyTimeout,
    begin: {
      requireRelay: true,
      maxRecipients: positive(limits.recipients ?? 1000, 'limits.recipients'),
      postmaster: postmasterAddress(options.postmaster, hostname),
      spool: options.spool ?? {},
      hostname,
      replyTimeout,
    },
    bareLineEndings: options.bareLineEndings ?? 'reject',
    trace: options.trace ?? 'full',
    closing: () => closing,
    track(id: string, work: Promise<unknown>) {
      inFlight.set(id, work)
      void work.finally(() => inFlight.delete(id))
    },
  }
  const listenerContext = {
    admission,
    hostname,
    logger,
    unexpected,
    firstCommandTimeout: positive(limits.firstCommandTimeout ?? 30_000, 'limits.firstCommandTimeout'),
  }

  const servers = listeners.map((listener) => {
    const handlers = createHandlers(listener.name, ctx)
    const tls = tlsOf.get(listener.name)
    const xclient = listener.xclient && networkMatcher(listener.xclient.trusted, `listener ${listener.name} xclient.trusted`)
    const serverOptions: SMTPServerOptions & { [GREETING_DELAY]?: number; [COMMAND_HOOKS]: CommandHooks } = {
      name: hostname,
      secure: listener.mode === 'submissions',
      // SNI: a certificate by server name; unknown names get the default context.
      ...(tls
        ? { ...tls.defaults, SNICallback: (name: string, done: (e: Error | null, c?: SecureContext) => void) => done(null, tls.lookup(name)) }
        : {}),
      size: maxSize,
      authOptional: true,
      authMethods: [...commands.mechanisms],
      disabledCommands: [...(options.auth ? [] : ['AUTH']), ...(tls ? [] : ['STARTTLS'])],
      // XCLIENT is offered to trusted hosts only (the command hooks check each connection).
      useXClient: xclient !== undefined,
      // XCLIENT LOGIN: the trusted front end authenticated the user.
      onAuth(auth, session, callback) {
        if (auth.method !== 'XCLIENT' || !auth.username) return callback(new Error('Authentication not available'))
        ;(session as unknown as Record<symbol, unknown>)[AUTH_IDENTITY] = { user: auth.username }
        callback(null, { user: auth.username })
      },
      hideDSN: false,
      disableReverseLookup: !options.reverseLookup,
      // The listener's admission check counts every connection, TLS handshakes included.
      maxClients: Infinity,
      socketTimeout: limits.idleTimeout ?? 300_000,
      onConnect: handlers.onConnect,
      onMailFrom: handlers.onMailFrom,
      onRcptTo: handlers.onRcptTo,
      onData: handlers.onData,
      onClose: handlers.onClose,
      [GREETING_DELAY]: listener.greetingDelay,
      [COMMAND_HOOKS]: commands.hooks,
    }
    const server = new RelaySmtpServer(serverOptions, {
      strictCommands: ctx.bareLineEndings === 'strict',
      connectionError: handlers.onConnectionError,
      serverError(err) {
        // smtp-server reports failed implicit-TLS handshakes here: a client fault.
        logger.info({ listener: listener.name, client: err.meta?.remoteAddress, err: err.message }, 'TLS handshake failed')
      },
      handlerError: (err, command) => unexpected(err, { listener: listener.name, command }, 'exception in SMTP command handler'),
    })
    tls?.onUpdate((defaults) => server.updateSecureContext(defaults))
    const proxy = listener.proxyProtocol && {
      trusted: networkMatcher(listener.proxyProtocol.trusted, `listener ${listener.name} proxyProtocol.trusted`),
      timeout: positive(listener.proxyProtocol.timeout ?? 5000, `listener ${listener.name} proxyProtocol.timeout`),
    }
    const port = new Listener(
      { name: listener.name, host: listener.host, port: listener.port, implicitTls: listener.mode === 'submissions', proxy, xclient },
      server,
      listenerContext,
    )
    return { listener, handlers, server, port, xclient }
  })
  const contexts = [...new Set(tlsOf.values())].filter((t) => t !== undefined)

  let addresses: BoundAddress[] = []
  const relay: Relay = {
    pipeline,
    events,
    get addresses() {
      return addresses
    },

    async listen() {
      if (!pipeline.grantsRelay) {
        logger.warn({}, 'no stage declares grantsRelay: every recipient will be refused with 554 5.7.1')
      }
      // The transports first: a queue that cannot take its directory must not answer 250.
      await pipeline.open()
      const bound = await Promise.allSettled(servers.map(({ port }) => port.listen()))
      const failed = bound.find((b): b is PromiseRejectedResult => b.status === 'rejected')
      if (failed) {
        // All or nothing: a relay half listening would look healthy and miss a port.
        await Promise.all(servers.map(({ port }) => port.close()))
        throw failed.reason
      }
      addresses = servers.map(({ listener }, i) => ({
        name: listener.name,
        mode: listener.mode,
        host: listener.host,
        port: (bound[i] as PromiseFulfilledResult<number>).value,
      }))
      for (const tls of contexts) tls.watch(logger)
      logger.info({ listeners: addresses, chain: pipeline.describe() }, 'relay listening')
      return addresses
    },

    updateTls(tls, { listener } = {}) {
      const target = listener === undefined ? relayTls : tlsOf.get(listener)
      if (listener !== undefined && !tlsOf.has(listener)) throw new RelayError('ERR_RELAY_INVALID_OPTION', `updateTls: no listener named ${listener}`)
      if (!target || (listener !== undefined && tls && target === relayTls)) {
        throw new RelayError(
          'ERR_RELAY_INVALID_OPTION',
          `updateTls: ${listener === undefined ? 'the relay was' : `listener ${listener} was`} built without its own tls option`,
        )
      }
      if (tls) return target.update(tls)
      // Re-read every file-based certificate; a failure leaves the ones after it untouched.
      for (const t of listener === undefined ? contexts : [target]) t.update()
    },

    async close({ timeout = 30_000 } = {}) {
      const ends = Date.now() + timeout
      closing = true
      for (const tls of contexts) tls.unwatch()
      const closed = servers.map(({ port }) => port.close())
      // Idle clients go now; a client whose message is in DATA gets its reply first.
      const kickIdle = () => {
        for (const { server, handlers } of servers) {
          for (const conn of server.connections) {
            if (!handlers.inData(conn.id)) conn.send(421, '4.3.2 Service shutting down, try again later')
          }
        }
      }
      kickIdle()
      let timer: NodeJS.Timeout | undefined
      const deadline = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeout).unref()))
      await Promise.race([Promise.allSettled([...inFlight.values()]), deadline])
      clearTimeout(timer)
      kickIdle()
      // Past the deadline whatever is left is cut off; its message was not acknowledged.
      for (const { port } of servers) port.destroyAll()
      await Promise.all(closed)
      await commands.close()
      // DSNs still being sent get what is left of the time (at least a second).
      await pipeline.close({ timeout: Math.max(1000, ends - Date.now()) })
      logger.info({}, 'relay closed')
    },
  }
  return relay
}

/** Logs an error event at error level and passes it to `onError`, which must not be able to break the relay. */
function reporter(logger: Logger, onError: RelayOptions['onError']) {
  return function report(event: DeliveryEvent): void {
    if (event.type !== 'error') return
    const { type: _type, time: _time, error, message, ...fields } = event
    logger.error({ ...fields, err: error }, message)
    if (!onError) return
    try {
      onError(error, { ...fields, message })
    } catch (thrown) {
      logger.error({ err: thrown }, 'onError callback threw')
    }
  }
}

function positive(value: number, option: string): number {
  if (!(typeof value === 'number' && value > 0))
    throw new RelayError('ERR_RELAY_INVALID_OPTION', `${option} must be a positive number, got ${String(value)}`)
  return value
}

function postmasterAddress(address: string | undefined, hostname: string): string {
  const value = address ?? `postmaster@${hostname}`
  if (!/^[^\s@<>]+@[^\s@<>]+$/.test(value))
    throw new RelayError('ERR_RELAY_INVALID_OPTION', `postmaster must be an address, got ${JSON.stringify(value)}`)
  return value
}

function resolvePipeline(options: RelayOptions): Pipeline {
  if (options.pipeline) {
    if (options.stages || options.transport) {
      throw new RelayError('ERR_RELAY_INVALID_OPTION', 'give either pipeline, or stages and transport, not both')
    }
    return options.pipeline
  }
  if (!options.transport) throw new RelayError('ERR_RELAY_INVALID_OPTION', 'a relay needs a transport (or a pipeline)')
  return createPipeline({ stages: options.stages ?? [], transport: options.transport, name: 'relay' })
}

type NormalizedListener = Required<Omit<ListenerOptions, 'tls' | 'proxyProtocol' | 'xclient'>> &
  Pick<ListenerOptions, 'tls' | 'proxyProtocol' | 'xclient'>

function normalizeListener(listener: ListenerOptions): NormalizedListener {
  const mode = listener.mode ?? 'smtp'
  const host = listener.host ?? '127.0.0.1'
  const port = listener.port ?? 2525
  if (!['smtp', 'submission', 'submissions'].includes(mode)) {
    throw new RelayError('ERR_RELAY_INVALID_OPTION', `unknown listener mode ${JSON.stringify(mode)}`)
  }
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new RelayError('ERR_RELAY_INVALID_OPTION', `invalid port ${port}`)
  }
  return {
    name: listener.name ?? `${mode}@${host}:${port}`,
    host,
    port,
    mode,
    greetingDelay: listener.greetingDelay ?? (mode === 'smtp' ? 100 : 0),
    tls: listener.tls,
    proxyProtocol: listener.proxyProtocol,
    xclient: listener.xclient,
  }
}

function checkListeners(listeners: NormalizedListener[], tls: RelayTlsOptions | undefined): void {
  const missingTls = listeners.find((l) => l.mode === 'submissions' && !tls && !l.tls)
  if (missingTls) throw new RelayError('ERR_RELAY_INVALID_OPTION', `listener ${missingTls.name} uses implicit TLS but no tls option was given`)
  const names = new Set<string>()
  for (const l of listeners) {
    if (names.has(l.name)) throw new RelayError('ERR_RELAY_INVALID_OPTION', `two listeners are named ${l.name}`)
    names.add(l.name)
  }
}
