/**
 * One listening port of the relay. The relay accepts TCP connections itself and hands each one to
 * its smtp-server only after the admission check (connection limits per client and in all) and
 * with a first-command timer armed, so a refused or silent client costs neither a TLS handshake
 * nor an SMTP session. A port that cannot be bound makes `listen()` reject with
 * `ERR_RELAY_LISTEN`; errors of the listening socket after that are reported, never thrown.
 */
import { createServer, type Server, type Socket } from 'node:net'
import { RelayError } from '../../core/errors.js'
import type { Logger } from '../../shared/logger.js'
import type { Admission, Refusal } from './admission.js'
import { type AcceptedSocket, type RelaySmtpServer, socketKey } from './server.js'

/** A listener's settings once defaults are applied. */
export interface ListenerSettings {
  readonly name: string
  readonly host: string
  readonly port: number
  readonly implicitTls: boolean
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
    for (const accepted of this.#sockets) this.#smtp.destroySocket(accepted)
  }

  #accept(socket: Socket): void {
    const { admission, logger } = this.#ctx
    const client = socket.remoteAddress
    // A socket error is the client's or the network's; smtp-server adds its own handlers later.
    socket.on('error', (err: NodeJS.ErrnoException) =>
      logger.debug({ listener: this.settings.name, client, err: err.code ?? err.message }, 'client socket error'),
    )
    if (!client) return void socket.destroy() // gone before we saw it
    const { refused, first } = admission.admit(client)
    if (refused) return this.#refuse(socket, client, refused, first === true)
    const key = socketKey(socket)
    const port = socket.remotePort
    let released = false
    const release = () => {
      if (released) return
      released = true
      clearTimeout(accepted.timer)
      this.#smtp.accepted.delete(key)
      this.#sockets.delete(accepted)
      admission.release(client)
      logger.debug({ listener: this.settings.name, client, port, session: accepted.connection?.id }, 'connection closed')
    }
    const accepted: AcceptedSocket = { socket, release, connection: undefined, timer: undefined }
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
