/**
 * A raw SMTP client over a TCP socket, for protocol edge cases a real client would not produce
 * (relay tests, malformed AUTH). Internal to relaychain/testing.
 */

import { once } from 'node:events'
import { connect as connectTcp, type Socket } from 'node:net'
import { type ConnectionOptions, connect as connectTls } from 'node:tls'

export class RawSmtp {
  #socket: Socket
  /** The TCP socket under any TLS, for resets. */
  readonly tcp: Socket
  #buffer = ''
  #replies: string[] = []
  #waiters: Array<{ resolve: (reply: string) => void; reject: (err: Error) => void }> = []
  #ended = false
  /** Resolves when the server closed the connection. */
  readonly closed: Promise<void>

  private constructor(socket: Socket, tcp: Socket = socket) {
    this.#socket = socket
    this.tcp = tcp
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()))
    this.#attach(socket)
  }

  /** The current socket (a TLS socket after `starttls()`). */
  get socket(): Socket {
    return this.#socket
  }

  /** Connects (from `localAddress`, if given) and reads the greeting. */
  static async connect(port: number, host = '127.0.0.1', localAddress?: string): Promise<{ client: RawSmtp; greeting: string }> {
    const socket = connectTcp({ port, host, ...(localAddress ? { localAddress } : {}) })
    await once(socket, 'connect')
    const client = new RawSmtp(socket)
    return { client, greeting: await client.reply() }
  }

  /** Connects, writes `preamble` at once (a PROXY header, an early command), and reads the greeting. */
  static async connectWith(port: number, preamble: string | Buffer, host = '127.0.0.1'): Promise<{ client: RawSmtp; greeting: string }> {
    const socket = connectTcp({ port, host })
    await once(socket, 'connect')
    return RawSmtp.attach(socket, preamble)
  }

  /** Takes over a connected socket, writes `preamble`, and reads the greeting. */
  static async attach(socket: Socket, preamble: string | Buffer = ''): Promise<{ client: RawSmtp; greeting: string }> {
    const client = new RawSmtp(socket)
    if (preamble.length) socket.write(preamble)
    return { client, greeting: await client.reply() }
  }

  /** Connects with implicit TLS (port 465 style) and reads the greeting. */
  static async connectTls(port: number, options: ConnectionOptions = {}, host = '127.0.0.1'): Promise<{ client: RawSmtp; greeting: string }> {
    const tcp = connectTcp(port, host)
    tcp.on('error', () => {})
    await once(tcp, 'connect')
    const secure = connectTls({ rejectUnauthorized: false, ...options, socket: tcp })
    await once(secure, 'secureConnect')
    const client = new RawSmtp(secure, tcp)
    return { client, greeting: await client.reply() }
  }

  #attach(socket: Socket): void {
    socket.setEncoding('latin1')
    socket.on('data', (data: string) => this.#onData(data))
    socket.once('close', () => {
      this.#ended = true
      for (const w of this.#waiters.splice(0)) w.reject(new Error('connection closed'))
    })
    socket.on('error', () => {})
  }

  #onData(data: string): void {
    this.#buffer += data
    for (;;) {
      // A reply is complete at a line whose 4th character is a space ("250 ok"), not "250-".
      const match = /^(?:\d{3}-[^\n]*\n)*\d{3}(?: [^\n]*)?\r?\n/.exec(this.#buffer)
      if (!match) break
      this.#buffer = this.#buffer.slice(match[0].length)
      const reply = match[0].trimEnd()
      const waiter = this.#waiters.shift()
      if (waiter) waiter.resolve(reply)
      else this.#replies.push(reply)
    }
  }

  /** The next complete reply (multi-line replies joined with \n); rejects after `timeout` ms if given. */
  reply(timeout?: number): Promise<string> {
    const ready = this.#replies.shift()
    if (ready !== undefined) return Promise.resolve(ready)
    if (this.#ended) return Promise.reject(new Error('connection closed'))
    return new Promise((resolve, reject) => {
      const waiter = { resolve, reject }
      this.#waiters.push(waiter)
      if (timeout === undefined) return
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter)
        reject(new Error(`no reply within ${timeout} ms`))
      }, timeout)
      waiter.resolve = (reply) => (clearTimeout(timer), resolve(reply))
      waiter.reject = (err) => (clearTimeout(timer), reject(err))
    })
  }

  write(data: string | Buffer): void {
    this.#socket.write(data)
  }

  /** Sends one command line and returns its reply. */
  async command(line: string, timeout?: number): Promise<string> {
    this.write(`${line}\r\n`)
    return this.reply(timeout)
  }

  /** STARTTLS and the TLS handshake; returns the reply to STARTTLS (the connection stays plain unless it is 220). */
  async starttls(options: ConnectionOptions = {}, timeout?: number): Promise<string> {
    const reply = await this.command('STARTTLS', timeout)
    if (!reply.startsWith('220')) return reply
    const plain = this.#socket
    plain.removeAllListeners('data')
    const secure = connectTls({ ...options, socket: plain })
    await once(secure, 'secureConnect')
    this.#socket = secure
    this.#attach(secure)
    return reply
  }

  /** EHLO, MAIL, RCPT…, DATA; returns the reply to DATA (354 if all went well). */
  async startMessage(from: string, to: readonly string[]): Promise<string> {
    await this.command('EHLO raw.test')
    const mail = await this.command(`MAIL FROM:<${from}>`)
    if (!mail.startsWith('250')) return mail
    for (const rcpt of to) {
      const reply = await this.command(`RCPT TO:<${rcpt}>`)
      if (!reply.startsWith('250')) return reply
    }
    return this.command('DATA')
  }

  close(): void {
    this.#socket.destroy()
  }

  /** Ends the connection with a TCP reset (RST), as a crashed client or a middlebox does. */
  reset(): void {
    this.tcp.resetAndDestroy()
  }

  /** Ends our side of the connection (FIN; close_notify first over TLS) and keeps reading. */
  fin(): void {
    this.#socket.end()
  }
}
