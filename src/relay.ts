/**
 * `createRelay()`: the SMTP ingress. One smtp-server per listener, all feeding one pipeline.
 * Secure defaults: relaying is denied until a stage grants it, bare CR/LF is refused, the size
 * limit is enforced while streaming, STARTTLS is offered only with a real certificate, and
 * `close()` lets messages in DATA finish before the connections go.
 */
import { hostname as osHostname } from 'node:os'
import type { SecureContextOptions } from 'node:tls'
import { SMTPServer, type SMTPServerOptions } from 'smtp-server'
import type { BareLineEndingPolicy } from './body/line-endings.js'
import type { SpoolOptions } from './body/spool.js'
import { RelayError } from './errors.js'
import { noopLogger, type Logger } from './logger.js'
import { createPipeline, type Pipeline } from './pipeline.js'
import type { AddressOptions } from './relay/address.js'
import type { RelayAuthOptions } from './relay/auth.js'
import { createHandlers } from './relay/handlers.js'
import { relayHooks } from './relay/hooks.js'
import type { TraceMode } from './relay/received.js'
import { SessionView } from './relay/session.js'
import { COMMAND_HOOKS, type CommandHooks } from './smtp/commands.js'
import { GREETING_DELAY, installGreetingDelay } from './smtp/greeting-delay.js'
import type { Stage, Transport } from './types.js'

/**
 * How a listener behaves. `'smtp'`: port-25 style, STARTTLS offered, a 100 ms pre-greeting
 * delay catches clients that talk early. `'submission'`: port-587 style, STARTTLS, greeting at
 * once. `'submissions'`: port-465 style, implicit TLS, greeting at once.
 */
export type ListenerMode = 'smtp' | 'submission' | 'submissions'

/** One address the relay listens on. */
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
}

/** Limits; every one has a safe default. */
export interface RelayLimits {
  /** Largest message in bytes, advertised with SIZE; bigger ones get `552 5.3.4`. Default 25 MiB. */
  messageSize?: number
  /** Largest header section in bytes. Default 1 MiB. */
  headerSize?: number
  /** Recipients per message (after expansion); more get `452 4.5.3`. Default 1000. */
  recipients?: number
  /** Concurrent connections per listener; more get `421 4.3.2`. Default 200. */
  connections?: number
  /** Milliseconds a client may stay silent while it owes us a command or data. Default 300 000 (RFC 5321 §4.5.3.2). */
  idleTimeout?: number
}

/** TLS for STARTTLS and implicit-TLS listeners. Without it, STARTTLS is not offered. */
export type RelayTlsOptions = Pick<
  SecureContextOptions,
  'key' | 'cert' | 'ca' | 'pfx' | 'passphrase' | 'minVersion' | 'ciphers' | 'ecdhCurve' | 'dhparam'
>

/** Options of {@link createRelay}. */
export interface RelayOptions {
  /** The chain. Give either `pipeline`, or `transport` (and `stages`). */
  pipeline?: Pipeline
  stages?: readonly Stage[]
  transport?: Transport
  /** The relay's name in the greeting, Received fields and DSNs. Default `os.hostname()`. */
  hostname?: string
  /** Default: one `'smtp'` listener on 127.0.0.1:2525. */
  listeners?: readonly ListenerOptions[]
  tls?: RelayTlsOptions
  limits?: RelayLimits
  /** pino-compatible logger. Default: none. */
  logger?: Logger
  /** Bare CR or LF in a message: `'reject'` (default, `550 5.5.2`) or `'normalize'` to CRLF. */
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
}

/** An address the relay listens on. */
export interface BoundAddress {
  readonly name: string
  readonly mode: ListenerMode
  readonly host: string
  readonly port: number
}

/** A relay: listen, close, and its pipeline. */
export interface Relay {
  readonly pipeline: Pipeline
  /** Binds every listener; resolves to the bound addresses (real ports for port 0). */
  listen(): Promise<readonly BoundAddress[]>
  /** The bound addresses, once listening. */
  readonly addresses: readonly BoundAddress[]
  /**
   * Stops accepting connections, answers idle clients `421 4.3.2`, lets messages in DATA finish
   * (up to `timeout` ms, default 30 000, after which they are aborted and not delivered), then
   * closes the pipeline.
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
 */
export function createRelay(options: RelayOptions): Relay {
  const pipeline = resolvePipeline(options)
  const logger = options.logger ?? noopLogger
  const limits = options.limits ?? {}
  const hostname = options.hostname ?? osHostname()
  const listeners = (options.listeners ?? [{}]).map(normalizeListener)
  checkListeners(listeners, options.tls)
  const delayPatched = installGreetingDelay()
  const commands = relayHooks(
    { auth: options.auth, addresses: options.addresses, hasTls: options.tls !== undefined, hosts: listeners.map((l) => l.host) },
    { hostname, logger, view: (session) => servers.map((s) => s.handlers.view(session.id)).find(Boolean) ?? new SessionView(session, '') },
  )

  let closing = false
  const inFlight = new Map<string, Promise<unknown>>()
  const ctx = {
    pipeline,
    hostname,
    logger,
    maxSize: limits.messageSize ?? 25 * MiB,
    maxHeaderSize: limits.headerSize ?? MiB,
    maxRecipients: limits.recipients ?? 1000,
    bareLineEndings: options.bareLineEndings ?? 'reject',
    trace: options.trace ?? 'full',
    spool: options.spool ?? {},
    closing: () => closing,
    track(id: string, work: Promise<unknown>) {
      inFlight.set(id, work)
      void work.finally(() => inFlight.delete(id))
    },
  }

  const servers = listeners.map((listener) => {
    const handlers = createHandlers(listener.name, ctx)
    const serverOptions: SMTPServerOptions & { [GREETING_DELAY]?: number; [COMMAND_HOOKS]: CommandHooks } = {
      name: hostname,
      secure: listener.mode === 'submissions',
      ...(options.tls ?? {}),
      minVersion: options.tls?.minVersion ?? 'TLSv1.2',
      size: ctx.maxSize,
      authOptional: true,
      authMethods: [...commands.mechanisms],
      disabledCommands: [...(options.auth ? [] : ['AUTH']), ...(options.tls ? [] : ['STARTTLS'])],
      hideDSN: false,
      disableReverseLookup: !options.reverseLookup,
      maxClients: limits.connections ?? 200,
      socketTimeout: limits.idleTimeout ?? 300_000,
      logger: false,
      onConnect: handlers.onConnect,
      onMailFrom: handlers.onMailFrom,
      onRcptTo: handlers.onRcptTo,
      onData: handlers.onData,
      onClose: handlers.onClose,
      [GREETING_DELAY]: listener.greetingDelay,
      [COMMAND_HOOKS]: commands.hooks,
    }
    return { listener, handlers, server: new SMTPServer(serverOptions) }
  })

  let addresses: BoundAddress[] = []
  const relay: Relay = {
    pipeline,
    get addresses() {
      return addresses
    },

    async listen() {
      if (!pipeline.grantsRelay) {
        logger.warn({}, 'no stage declares grantsRelay: every recipient will be refused with 554 5.7.1')
      }
      if (!delayPatched) logger.warn({}, 'this smtp-server version cannot change its 100 ms greeting delay')
      addresses = await Promise.all(servers.map(({ listener, server }) => bind(server, listener)))
      logger.info({ listeners: addresses, chain: pipeline.describe() }, 'relay listening')
      return addresses
    },

    async close({ timeout = 30_000 } = {}) {
      closing = true
      const closed = servers.map(({ server }) => new Promise<void>((resolve) => server.server.close(() => resolve())))
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
      for (const { server } of servers) for (const conn of server.connections) destroySocket(conn)
      await Promise.all(closed)
      await commands.close()
      await pipeline.close()
      logger.info({}, 'relay closed')
    },
  }
  return relay
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

type NormalizedListener = Required<ListenerOptions>

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
  }
}

function checkListeners(listeners: NormalizedListener[], tls: RelayTlsOptions | undefined): void {
  const missingTls = listeners.find((l) => l.mode === 'submissions' && !tls)
  if (missingTls) throw new RelayError('ERR_RELAY_INVALID_OPTION', `listener ${missingTls.name} uses implicit TLS but no tls option was given`)
  const names = new Set<string>()
  for (const l of listeners) {
    if (names.has(l.name)) throw new RelayError('ERR_RELAY_INVALID_OPTION', `two listeners are named ${l.name}`)
    names.add(l.name)
  }
}

/** Ends a connection at once (a client that ignores 421 would hold close() until its timeout). */
function destroySocket(conn: unknown): void {
  const socket = (conn as { _socket?: { destroy(): void } })._socket
  if (socket) socket.destroy()
  else (conn as { close(): void }).close()
}

function bind(server: SMTPServer, listener: NormalizedListener): Promise<BoundAddress> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err)
    server.server.once('error', onError)
    server.server.listen(listener.port, listener.host, () => {
      server.server.off('error', onError)
      const address = server.server.address()
      const port = typeof address === 'object' && address ? address.port : listener.port
      resolve({ name: listener.name, mode: listener.mode, host: listener.host, port })
    })
  })
}
