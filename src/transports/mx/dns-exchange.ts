/**
 * One DNS exchange on the wire: a query out, the matching reply back, over UDP or TCP.
 *
 * UDP uses a fresh socket per query (a new random source port each time, RFC 5452) connected to
 * the server, so the kernel drops datagrams from any other address; whatever still arrives is
 * checked by the caller's matcher and ignored unless it is the reply to this query. A lost
 * datagram is sent again after `timeout`, up to `attempts` sends. TCP (RFC 7766) frames each
 * message with a two-octet length and is used when the UDP reply was truncated.
 *
 * Both functions settle exactly once, close their socket, and stop at once when `signal` aborts,
 * rejecting with its reason (the client puts a `DnsError` there).
 */
import { createSocket } from 'node:dgram'
import { connect } from 'node:net'
import { DnsError } from './dns-errors.js'
import type { Reply } from './dns-wire.js'
import type { ResolverAddress } from './resolver-address.js'

/** What the client needs from an exchange. */
export interface ExchangeOptions {
  /** The question, for errors. */
  name: string
  type: string
  /** Milliseconds to wait for each reply. */
  timeout: number
  /** Aborted by the caller or by the client's total deadline; its reason is thrown. */
  signal: AbortSignal
  /** Returns the reply if `bytes` answers this query, else undefined. */
  match(bytes: Buffer): Reply | undefined
}

function settleOnce<T>(resolve: (value: T) => void, reject: (err: unknown) => void, signal: AbortSignal, cleanup: () => void) {
  let done = false
  const finish = (err: unknown, value?: T) => {
    if (done) return
    done = true
    signal.removeEventListener('abort', onAbort)
    cleanup()
    if (err === undefined) resolve(value as T)
    else reject(err)
  }
  const onAbort = () => finish(signal.reason)
  signal.addEventListener('abort', onAbort, { once: true })
  return finish
}

/**
 * Sends `query` over UDP up to `attempts` times and resolves with the first matching reply.
 * Rejects with `ERR_DNS_TIMEOUT` when every attempt went unanswered, `ERR_DNS_NETWORK` when the
 * socket fails (e.g. port unreachable).
 */
export function udpExchange(server: ResolverAddress, query: Buffer, attempts: number, options: ExchangeOptions): Promise<Reply> {
  const { name, type, timeout, signal, match } = options
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason)
    const socket = createSocket(server.family === 6 ? 'udp6' : 'udp4')
    let timer: NodeJS.Timeout | undefined
    const finish = settleOnce(resolve, reject, signal, () => {
      clearTimeout(timer)
      socket.close()
    })
    const network = (err: Error) =>
      finish(new DnsError('ERR_DNS_NETWORK', name, type, `UDP to ${server.host} port ${server.port}: ${err.message}`, { cause: err }))
    let sent = 0
    const send = () => {
      if (sent++ >= attempts) {
        return finish(new DnsError('ERR_DNS_TIMEOUT', name, type, `no reply from ${server.host} port ${server.port} after ${attempts} attempts`))
      }
      socket.send(query, (err) => err && network(err))
      timer = setTimeout(send, timeout)
    }
    socket.on('error', network)
    socket.on('message', (bytes) => {
      const reply = match(bytes)
      if (reply) finish(undefined, reply)
    })
    socket.connect(server.port, server.host, send)
  })
}

/**
 * Sends `query` over one TCP connection and resolves with the reply. Unlike UDP, a reply that
 * does not match is an error (`ERR_DNS_BAD_RESPONSE`): nobody can inject into our connection.
 */
export function tcpExchange(server: ResolverAddress, query: Buffer, options: ExchangeOptions): Promise<Reply> {
  const { name, type, timeout, signal, match } = options
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason)
    const socket = connect({ host: server.host, port: server.port, noDelay: true })
    const timer = setTimeout(
      () => finish(new DnsError('ERR_DNS_TIMEOUT', name, type, `no reply over TCP from ${server.host} port ${server.port}`)),
      timeout,
    )
    const finish = settleOnce(resolve, reject, signal, () => {
      clearTimeout(timer)
      socket.destroy()
    })
    const length = Buffer.alloc(2)
    length.writeUInt16BE(query.length)
    socket.on('connect', () => socket.write(Buffer.concat([length, query])))
    let received = Buffer.alloc(0)
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk])
      if (received.length < 2 || received.length < 2 + received.readUInt16BE(0)) return
      const reply = match(received.subarray(2, 2 + received.readUInt16BE(0)))
      if (reply) finish(undefined, reply)
      else finish(new DnsError('ERR_DNS_BAD_RESPONSE', name, type, 'the TCP reply does not answer the query'))
    })
    socket.on('error', (err) =>
      finish(new DnsError('ERR_DNS_NETWORK', name, type, `TCP to ${server.host} port ${server.port}: ${err.message}`, { cause: err })),
    )
    socket.on('close', () => finish(new DnsError('ERR_DNS_BAD_RESPONSE', name, type, 'the server closed the TCP connection before replying')))
  })
}
