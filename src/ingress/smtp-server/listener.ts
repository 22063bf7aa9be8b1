/**
 * One listening port of the relay. The relay accepts TCP connections itself and hands each one to
 * its smtp-server only after the admission check (connection limits per client and in all) and
 * with a first-command timer armed, so a refused or silent client costs neither a TLS handshake
 * nor an SMTP session. A port that cannot be bound makes `listen()` reject with
 * `ERR_RELAY_LISTEN`; errors of the listening socket after that are reported, never thrown.
 *
 * Behind a load balancer (`proxyProtocol`), only peers in the trusted networks may connect; each
 * must send a PROXY header first, and the client it names is the one admitted and seen by
 * everything after (anyone else is disconnected before the greeting). A trusted XCLIENT peer is
 * admitted without per-client limits; the clients it names are admitted by {@link Listener.admitClient}.
 */
import { createServer, type Server, type Socket } from 'node:net'
import { RelayError } from '../../core/errors.js'
import type { Logger } from '../../shared/logger.js'
import type { Admission, Refusal } from './admission.js'
import { readProxyHeader } from './proxy-protocol.js'
import { type AcceptedSocket, type RelaySmtpServer, socketKey } from './server.js'

/** A listener's settings once defaults are applied. */
export interface ListenerSettings {
  readonly name: string
  readonly host: string
  readonly port: number
  readonly implicitTls: boolean
  /** PROXY protocol: the peers allowed to connect (and required to send a header), and the time they have to. */
  readonly proxy?: { readonly trusted: (ip: string) => boolean; readonly timeout: number } | undefined
  /** Peers that may use XCLIENT. */
  readonly xclient?: ((ip: string) => boolean) | undefined
}

/** What a listener needs from its relay. */
export interface ListenerContext {
  readonly admission: Admission
  readonly hostname: string
  /** Milliseconds from accept to the first command line (TLS handshake included). */
  readonly firstCommandTimeout: number
  readonly logger: Logger
  /** Reports an error on our side (logged at error, passed to the relay's `onError`). */
  unexpected(err: unknown, fields: Record<string, unknown>, message: string): void
}

const REFUSALS: Record<Refusal, string> = {
  total: '421 4.3.2 {host} Too many connections, try again later',
  'per-client': '421 4.7.0 {host} Too many connections from your address, try again later',
  rate: '421 4.7.0 {host} Too many connections per minute from your address, try again later',
}
/** How long a refused client may take to read its 421 before the socket is destroyed. */
const LINGER = 1000

/** A bound (or bindable) port feeding one smtp-server. */
export class Listener {
  readonly settings: ListenerSettings
  readonly #smtp: RelaySmtpServer
  readonly #ctx: ListenerContext
  readonly #server: Server
  readonly #sockets = new Set<AcceptedSocket>()
  /** Sockets of trusted proxies whose PROXY header has not arrived yet. */
  readonly #pending = new Set<Socket>()

  constructor(settings: ListenerSettings, smtp: RelaySmtpServer, ctx: ListenerContext) {
    this.settings = settings
    this.#smtp = smtp
    this.#ctx = ctx
    this.#server = createServer((socket) => this.#accept(socket))
  }

  /** Binds the port; rejects with `ERR_RELAY_LISTEN` naming host, port and the system error. */
  listen(): Promise<number> {
    const { host, port, name } = this.settings
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        const hint = err.code === 'EADDRINUSE' ? ' (another process holds it)' : err.code === 'EACCES' ? ' (ports below 1024 need privileges)' : ''
        reject(
          new RelayError('ERR_RELAY_LISTEN', `cannot listen on ${host}:${port} for listener ${name}: ${err.code ?? 'error'} ${err.message}${hint}`, {
            cause: err,
          }),
        )
      }
      this.#server.once('error', onError)
      this.#server.listen(port, host, () => {
        this.#server.off('error', onError)
        // From now on: accept failures such as EMFILE. The server keeps listening.
        this.#server.on('error', (err) => this.#ctx.unexpected(err, { listener: name }, 'listener error'))
        const address = this.#server.address()
        resolve(typeof address === 'object' && address ? address.port : port)
      })
    })
  }

  /** Stops accepting; resolves once every connection of this port has closed. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      if (!this.#server.listening) return resolve()
      this.#server.close(() => resolve())
    })
  }

  /** Ends every connection of this port at once. */
  destroyAll(): void {
    for (const socket of this.#pending) socket.destroy()
    for (const accepted of this.#sockets) this.#smtp.destroySocket(accepted)
  }

  /**
   * Applies the per-client limits to a client a trusted XCLIENT peer named on `accepted`'s
   * connection, counted until the connection closes; returns the refusal reply, if any.
   */
  admitClient(accepted: AcceptedSocket, client: string): string | undefined {
    const { refused, first } = this.#ctx.admission.admitClient(client)
    const fields = { listener: this.settings.name, client, limit: refused, session: accepted.connection?.id }
    if (refused) {
      if (first) this.#ctx.logger.info(fields, 'XCLIENT client refused: limit reached')
      return REFUSALS[refused].replace('{host}', this.#ctx.hostname)
    }
    accepted.clients.push(client)
    return undefined
  }

  #accept(socket: Socket): void {
    const { logger } = this.#ctx
    const peer = socket.remoteAddress
    // A socket error is the client's or the network's; smtp-server adds its own handlers later.
    socket.on('error', (err: NodeJS.ErrnoException) =>
      logger.debug({ listener: this.settings.name, peer, err: err.code ?? err.message }, 'client socket error'),
    )
    if (!peer) return void socket.destroy() // gone before we saw it
    const proxy = this.settings.proxy
    if (!proxy) return this.#admit(socket, undefined)
    if (!proxy.trusted(peer)) {
      logger.info({ listener: this.settings.name, peer }, 'connection refused: not a trusted PROXY protocol peer')
      return void socket.destroy()
    }
    // Until its header arrives the connection is the balancer's; close() and destroyAll() see it.
    this.#pending.add(socket)
    readProxyHeader(socket, proxy.timeout).then(
      (header) => {
        this.#pending.delete(socket)
        if (socket.destroyed) return
        const { source, destination } = header
        this.#admit(
          socket,
          source && { remoteAddress: source.address, remotePort: source.port, localAddress: destination?.address, localPort: destination?.port },
        )
      },
      (err: Error) => {
        this.#pending.delete(socket)
        logger.info({ listener: this.settings.name, peer, err: err.message }, 'connection refused: PROXY header')
        socket.destroy()
      },
    )
  }

  /** Admits a connection from the TCP peer, or from the client a PROXY header named (`origin`). */
  #admit(socket: Socket, origin: AcceptedSocket['origin']): void {
    const { admission, logger } = this.#ctx
    const client = origin?.remoteAddress ?? socket.remoteAddress!
    const port = origin?.remotePort ?? socket.remotePort
    // A trusted XCLIENT peer speaks for many clients: they are counted once named.
    const { refused, first } = admission.admit(client, { clientLimits: !this.settings.xclient?.(client) })
    if (refused) return this.#refuse(socket, client, refused, first === true)
    const key = socketKey(socket)
    let released = false
    const release = () => {
      if (released) return
      released = true
      clearTimeout(accepted.timer)
      this.#smtp.accepted.delete(key)
      this.#sockets.delete(accepted)
      admission.release(client)
      for (const named of accepted.clients) admission.releaseClient(named)
      logger.debug({ listener: this.settings.name, client, port, session: accepted.connection?.id }, 'connection closed')
    }
    const accepted: AcceptedSocket = { socket, release, connection: undefined, timer: undefined, origin, clients: [], listener: this }
    accepted.timer = setTimeout(() => this.#silent(accepted, client), this.#ctx.firstCommandTimeout).unref()
    this.#sockets.add(accepted)
    this.#smtp.accepted.set(key, accepted)
    socket.once('close', release)
    this.#smtp.server.emit('connection', socket)
  }

  #refuse(socket: Socket, client: string, refused: Refusal, first: boolean): void {
    const fields = { listener: this.settings.name, client, limit: refused, open: this.#ctx.admission.total }
    if (first) this.#ctx.logger.info(fields, 'connection refused: limit reached')
    else this.#ctx.logger.debug(fields, 'connection refused: limit reached')
    // On an implicit-TLS port a plain-text reply would be noise in the client's handshake.
    if (this.settings.implicitTls) return void socket.destroy()
    socket.end(`${REFUSALS[refused].replace('{host}', this.#ctx.hostname)}\r\n`)
    socket.resume() // read (and drop) until the client's FIN
    setTimeout(() => socket.destroy(), LINGER).unref()
  }

  /** The first-command timeout: a client that connected and said nothing is let go. */
  #silent(accepted: AcceptedSocket, client: string): void {
    accepted.timer = undefined
    this.#ctx.logger.info({ listener: this.settings.name, client, session: accepted.connection?.id }, 'client sent no command in time')
    const connection = accepted.connection
    if (connection && !connection._upgrading) connection.send(421, `4.4.2 ${this.#ctx.hostname} Timeout waiting for a command, closing connection`)
    else this.#smtp.destroySocket(accepted) // still in the TLS handshake
  }
}
