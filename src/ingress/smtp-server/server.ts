/**
 * The smtp-server instance behind each listener, made safe to face the Internet.
 *
 * smtp-server re-emits every socket and TLS error of every connection as `'error'` on the server
 * object, where one unhandled error (a client's TCP reset, garbage on an implicit-TLS port) ends
 * the process. Here each connection's errors go to a handler that knows the connection (its id
 * and client address, for one log line), and the server's own `'error'` always has a listener.
 * The connection is created by our copy of `SMTPServer.connect()` (guarded: see `guard.ts`),
 * which also watches the client's first command line (the relay's short first-command timeout)
 * and, with `bareLineEndings: 'strict'`, refuses command lines that end in a bare LF.
 */
import type { Socket } from 'node:net'
import type { TLSSocket } from 'node:tls'
import { SMTPServer, type SMTPServerOptions, type SMTPServerSession } from 'smtp-server'
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js'
import { installFastUnstuffing } from './data-unstuffing.js'
import { checkSource } from './guard.js'

/** A socket the relay accepted, until it closes. */
export interface AcceptedSocket {
  readonly socket: Socket
  /**
   * Ends the relay's count of this socket; idempotent. Called when the socket closes, and when
   * its SMTP connection closes: STARTTLS removes every listener from the TCP socket.
   */
  readonly release: () => void
  /** Cleared by the first command line; fires the first-command timeout. */
  timer: NodeJS.Timeout | undefined
  /** The SMTP connection, once smtp-server made one (after an implicit TLS handshake). */
  connection: SMTPConnection | undefined
  /** The client and the address it connected to, as a PROXY header gave them; undefined for a direct connection. */
  readonly origin: { remoteAddress: string; remotePort: number; localAddress?: string | undefined; localPort?: number | undefined } | undefined
  /** Clients a trusted XCLIENT peer named on this connection, counted by admission until it closes. */
  readonly clients: string[]
  /** The listener that accepted it. */
  readonly listener: { admitClient(accepted: AcceptedSocket, client: string): string | undefined }
}

/** What the relay does with what the server reports. */
export interface ServerHooks {
  /** A socket or TLS error of one connection: the client's doing or the network's. */
  connectionError(connection: SMTPConnection, err: Error): void
  /** An error smtp-server reports for the server, such as a failed implicit-TLS handshake. */
  serverError(err: Error & { meta?: { remoteAddress?: string } }): void
  /** An exception smtp-server caught in a command handler: a bug on our side. */
  handlerError(err: unknown, command: string | undefined): void
  /** Refuse command lines that end in a bare LF (`bareLineEndings: 'strict'`). */
  readonly strictCommands: boolean
}

/** `SMTPServer.prototype.connect` of smtp-server 3.21.6 (ESM, CommonJS), which {@link RelaySmtpServer} replaces. */
const CONNECT_SOURCE = ['f2981a7dcc6f7847', '6f0ffdaaf352bfb6']

/** Throws `ERR_RELAY_INCOMPATIBLE_SERVER` if `connect()` is not the code replaced here. */
export function checkServer(): void {
  checkSource('SMTPServer.prototype.connect', SMTPServer.prototype.connect, CONNECT_SOURCE)
}

/** The key of a socket in {@link RelaySmtpServer.accepted}; a TLS socket has its TCP socket's. */
export function socketKey(socket: Socket | TLSSocket): string {
  return `${socket.remoteAddress}|${socket.remotePort}`
}

const LF = 0x0a
const CR = 0x0d

/** An smtp-server whose connections cannot take the process down; see the file header. */
export class RelaySmtpServer extends SMTPServer {
  /** Sockets accepted by the relay's listener, by {@link socketKey}. */
  readonly accepted = new Map<string, AcceptedSocket>()
  readonly #hooks: ServerHooks
  /** Accepted sockets by connection id, to release them when the connection closes. */
  readonly #byConnection = new Map<string, AcceptedSocket>()

  constructor(options: SMTPServerOptions, hooks: ServerHooks) {
    installFastUnstuffing()
    super({ ...options, logger: false })
    // Our own no-op logger, not one smtp-server wraps: it logs (and we would pay for) every reply.
    this.logger = handlerErrorLogger(hooks) as unknown as SMTPServer['logger']
    this.#hooks = hooks
    this.on('error', (err: Error) => hooks.serverError(err))
    // smtp-server copies an onClose option onto the instance, so it is wrapped here, not overridden.
    const onClose = this.onClose
    this.onClose = (session, callback) => {
      this.#byConnection.get(session.id)?.release()
      this.#byConnection.delete(session.id)
      onClose.call(this, session, callback)
    }
  }

  override connect(socket: Socket | TLSSocket, socketOptions?: ConstructorParameters<typeof SMTPConnection>[2]): void {
    const accepted = this.accepted.get(socketKey(socket))
    // A proxied connection is the client's from the start: smtp-server takes its addresses from here.
    const origin = accepted?.origin
    const connection = new SMTPConnection(this, socket, origin ? { ...socketOptions, ...definedOf(origin) } : socketOptions)
    this.connections.add(connection)
    connection.on('error', (err: Error) => this.#hooks.connectionError(connection, err))
    connection.on('connect', (data) => this._onClientConnect(data))
    if (accepted) {
      accepted.connection = connection
      this.#byConnection.set(connection.id, accepted)
    }
    this.#watch(connection, socket, accepted)
    connection.init()
  }

  /** The accepted socket of a connection, by session id. */
  acceptedOf(sessionId: string): AcceptedSocket | undefined {
    return this.#byConnection.get(sessionId)
  }

  /**
   * Destroys an accepted socket from the top: the TLS socket of a handshake in progress (tearing
   * a TLS wrap down from below mid-handshake crashes Node), else the connection's socket.
   */
  destroySocket(accepted: AcceptedSocket): void {
    const top = this._pendingSockets.get(accepted.socket) ?? accepted.connection?._socket ?? accepted.socket
    top.destroy()
    if (top !== accepted.socket) accepted.socket.destroy()
  }

  override onSecure(socket: Socket | TLSSocket, _session: SMTPServerSession, callback: (err?: Error | null) => void): void {
    // After STARTTLS the commands arrive on the TLS socket.
    const accepted = this.accepted.get(socketKey(socket))
    if (accepted?.connection) this.#watch(accepted.connection, socket, accepted)
    callback()
  }

  /** Watches the command lines on `socket`: the first one clears the first-command timer. */
  #watch(connection: SMTPConnection, socket: Socket | TLSSocket, accepted: AcceptedSocket | undefined): void {
    const strict = this.#hooks.strictCommands
    if (!strict && !accepted?.timer) return
    let prevCR = false
    const onData = (chunk: Buffer) => {
      // Ciphertext of a handshake, or message content (the ingress stream checks that).
      const parser = connection._parser
      if (connection._upgrading || connection._socket !== socket || !parser || parser._dataMode) return ((prevCR = false), undefined)
      if (accepted?.timer && chunk.includes(LF)) {
        clearTimeout(accepted.timer)
        accepted.timer = undefined
      }
      if (!strict) return void socket.off('data', onData)
      if (bareLfInCommands(chunk, prevCR)) {
        connection.send(521, '5.5.2 Bare LF in command line refused; lines must end with CRLF')
        connection.close()
        return void socket.off('data', onData)
      }
      prevCR = chunk[chunk.length - 1] === CR
    }
    // Registered before smtp-server pipes the socket into its parser, so it sees each chunk first.
    socket.on('data', onData)
  }
}

/** The fields of `origin` that are set, as smtp-server's socket options. */
function definedOf(origin: NonNullable<AcceptedSocket['origin']>): Record<string, string | number> {
  return Object.fromEntries(Object.entries(origin).filter(([, value]) => value !== undefined))
}

/** True if a command line in `chunk` (up to a DATA command, after which content follows) ends in a bare LF. */
function bareLfInCommands(chunk: Buffer, prevCR: boolean): boolean {
  let start = 0
  for (let nl = chunk.indexOf(LF); nl >= 0; nl = chunk.indexOf(LF, start)) {
    if (nl === 0 ? !prevCR : chunk[nl - 1] !== CR) return true
    if (nl - start === 5 && chunk.toString('latin1', start, nl - 1).toUpperCase() === 'DATA') return false
    start = nl + 1
  }
  return false
}

/** smtp-server's logger, reduced to the one thing we need from it: exceptions in command handlers. */
function handlerErrorLogger(hooks: ServerHooks) {
  const ignore = () => {}
  return {
    trace: ignore,
    debug: ignore,
    info: ignore,
    warn: ignore,
    fatal: ignore,
    error(entry: { tnx?: string; err?: unknown; command?: string }) {
      if (entry?.tnx === 'command' && entry.err) hooks.handlerError(entry.err, entry.command)
    },
  }
}
