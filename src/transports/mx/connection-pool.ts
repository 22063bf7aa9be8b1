/**
 * SMTP connections to MX hosts, reused per destination: one nodemailer `SMTPConnection` per
 * session, kept open after a message for the next one to the same address, port, host name (SNI
 * and certificate checks depend on it), source address, EHLO name and TLS mode.
 *
 * nodemailer's own pool (`createTransport({ pool: true })`) hides its connections, and direct MX
 * delivery must see each one between the STARTTLS handshake and MAIL FROM: the negotiated TLS
 * version, whether the certificate verified, the chain for DANE. So the pool is ours, with
 * nodemailer's rules: a connection is reused after a delivered message, reset (RSET) and reused
 * after a refused one, closed after anything else, after `maxMessages`, after `idleTimeout` idle,
 * or when the server closes it. A reused connection that turns out dead before a byte of the
 * message was sent is replaced by a fresh one (the caller retries once).
 *
 * Sessions always use STARTTLS when offered, with `rejectUnauthorized: false` (the checks are
 * made afterwards, by policy; see tls-check.ts) and fall back to cleartext in-session when the
 * server refuses STARTTLS; `tls: 'none'` never tries it (the retry after a failed handshake).
 */
import type { Readable } from 'node:stream'
import SMTPConnection, { type SMTPConnectionSendInfo, type SMTPEnvelope } from 'nodemailer/lib/smtp-connection'
import { type TlsState, tlsStateOf } from './tls-check.js'

/** Where a session goes and how it is set up. */
export interface ConnectionTarget {
  readonly ip: string
  readonly port: number
  /** The MX host name: sent as SNI, checked against the certificate. */
  readonly servername: string
  /** The EHLO name. */
  readonly name: string
  readonly localAddress?: string | undefined
  /** `'starttls'`: when offered; `'none'`: never. */
  readonly tls: 'starttls' | 'none'
}

/** Settings shared by every connection. */
export interface PoolSettings {
  /** Reuse connections; false closes each after its message. */
  readonly reuse: boolean
  readonly maxMessages: number
  /** Milliseconds an idle connection is kept. */
  readonly idleTimeout: number
  readonly ca?: (string | Buffer)[] | undefined
  readonly timeouts: { readonly connection: number; readonly greeting: number; readonly socket: number }
}

/** A connection lent to a caller. */
export interface Lease {
  readonly connection: SMTPConnection
  readonly tls: TlsState
  /** True if the connection sent messages before this lease. */
  readonly reused: boolean
}

interface Pooled {
  readonly key: string
  readonly connection: SMTPConnection
  readonly tls: TlsState
  messages: number
  alive: boolean
  timer?: NodeJS.Timeout
}

/** An error of nodemailer's, as its callbacks give them. */
export type NodemailerError = Error & {
  code?: string
  responseCode?: number
  response?: string
  command?: string
  recipient?: string
  rejectedErrors?: NodemailerError[]
  /** Set by the pool: the connection failed during the STARTTLS handshake (nodemailer says `ESOCKET` or `ETLS`). */
  tlsHandshake?: boolean
}

const noop = () => {}

/**
 * The pool (see the file header).
 *
 * @example
 * ```ts
 * const pool = new ConnectionPool({ reuse: true, maxMessages: 100, idleTimeout: 30_000, timeouts: { connection: 30_000, greeting: 60_000, socket: 300_000 } })
 * const lease = await pool.acquire({ ip: '192.0.2.25', port: 25, servername: 'mx.example.org', name: 'relay.example.com', tls: 'starttls' })
 * await pool.send(lease, { from: 'a@example.com', to: ['b@example.org'] }, stream)
 * pool.release(lease, 'sent')
 * ```
 */
export class ConnectionPool {
  readonly #settings: PoolSettings
  readonly #idle = new Map<string, Pooled[]>()
  readonly #leased = new Map<SMTPConnection, Pooled>()
  #closed = false

  constructor(settings: PoolSettings) {
    this.#settings = settings
  }

  /** An idle connection to `target` (unless `fresh`), or a new one. Rejects with nodemailer's error if connecting fails. */
  async acquire(target: ConnectionTarget, fresh = false): Promise<Lease> {
    const key = keyOf(target)
    const idle = fresh ? undefined : this.#idle.get(key)
    while (idle?.length) {
      const pooled = idle.pop()!
      clearTimeout(pooled.timer)
      if (!pooled.alive) continue
      this.#leased.set(pooled.connection, pooled)
      return { connection: pooled.connection, tls: pooled.tls, reused: true }
    }
    const { connection, tls } = await this.#connect(target)
    const pooled: Pooled = { key, connection, tls, messages: 0, alive: true }
    const dead = () => {
      pooled.alive = false
      clearTimeout(pooled.timer)
      this.#drop(pooled)
    }
    connection.once('end', dead)
    this.#leased.set(connection, pooled)
    return { connection, tls, reused: false }
  }

  /**
   * Gives a connection back: `'sent'` after a delivered message, `'refused'` after a refusal
   * that left the session usable (it is reset first), `'close'` for anything else.
   */
  release(lease: Lease, how: 'sent' | 'refused' | 'close'): void {
    const pooled = this.#leased.get(lease.connection)
    if (!pooled) return
    this.#leased.delete(lease.connection)
    if (how !== 'close') pooled.messages++
    const keep = how !== 'close' && this.#settings.reuse && !this.#closed && pooled.alive && pooled.messages < this.#settings.maxMessages
    if (!keep) return void this.#end(pooled)
    if (how === 'refused') {
      pooled.connection.reset((err) => (err ? this.#end(pooled) : this.#park(pooled)))
      return
    }
    this.#park(pooled)
  }

  /** Sends one message over a lease: resolves with nodemailer's result, rejects with its error. */
  send(lease: Lease, envelope: SMTPEnvelope, message: Readable): Promise<SMTPConnectionSendInfo> {
    return new Promise((resolve, reject) => lease.connection.send(envelope, message, (err, info) => (err ? reject(err) : resolve(info!))))
  }

  /** Closes every connection, idle or lent (their sends fail). */
  async close(): Promise<void> {
    this.#closed = true
    for (const list of this.#idle.values()) for (const pooled of list) this.#end(pooled)
    this.#idle.clear()
    for (const pooled of this.#leased.values()) pooled.connection.close()
    this.#leased.clear()
  }

  #park(pooled: Pooled): void {
    if (this.#closed || !pooled.alive) return void this.#end(pooled)
    let list = this.#idle.get(pooled.key)
    if (!list) this.#idle.set(pooled.key, (list = []))
    list.push(pooled)
    pooled.timer = setTimeout(() => this.#end(pooled), this.#settings.idleTimeout)
    pooled.timer.unref()
  }

  #drop(pooled: Pooled): void {
    const list = this.#idle.get(pooled.key)
    if (!list) return
    const at = list.indexOf(pooled)
    if (at >= 0) list.splice(at, 1)
    if (!list.length) this.#idle.delete(pooled.key)
  }

  #end(pooled: Pooled): void {
    clearTimeout(pooled.timer)
    this.#drop(pooled)
    const wasAlive = pooled.alive
    pooled.alive = false
    if (wasAlive) pooled.connection.quit()
    // A server that does not answer QUIT must not hold the socket open.
    setTimeout(() => pooled.connection.close(), 1000).unref()
  }

  #connect(target: ConnectionTarget): Promise<{ connection: SMTPConnection; tls: TlsState }> {
    const { timeouts, ca } = this.#settings
    const connection = new SMTPConnection({
      host: target.ip,
      port: target.port,
      name: target.name,
      servername: target.servername,
      ...(target.localAddress ? { localAddress: target.localAddress } : {}),
      secure: false,
      ignoreTLS: target.tls === 'none',
      opportunisticTLS: true,
      tls: { servername: target.servername, rejectUnauthorized: false, ...(ca ? { ca } : {}) },
      connectionTimeout: timeouts.connection,
      greetingTimeout: timeouts.greeting,
      socketTimeout: timeouts.socket,
      logger: false,
    })
    // Errors of a send reach its callback; nodemailer emits them too, and an unheard 'error' would end the process.
    connection.on('error', noop)
    return new Promise((resolve, reject) => {
      let settled = false
      const failed = (err: NodemailerError) => {
        if (settled) return
        settled = true
        if (err.code === 'ETLS' || connection.upgrading) err.tlsHandshake = true
        connection.close()
        reject(err)
      }
      connection.once('error', failed)
      connection.connect((err) => {
        if (err) return failed(err as NodemailerError)
        if (settled) return
        settled = true
        connection.removeListener('error', failed)
        resolve({ connection, tls: tlsStateOf(connection._socket) })
      })
    })
  }
}

const keyOf = (t: ConnectionTarget) => `${t.ip}|${t.port}|${t.servername}|${t.localAddress ?? ''}|${t.name}|${t.tls}`
