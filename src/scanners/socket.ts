/**
 * One request/reply exchange over TCP, for the line protocols of spamd and clamd: connect, stream
 * the request with backpressure, collect the reply until the server closes (or the reply is
 * complete), and give up when the signal aborts. A server may answer before it has read all of
 * the request (clamd at its size limit): the reply wins over the write error that follows.
 */
import { connect, type Socket } from 'node:net'

/** What {@link exchange} needs. */
export interface ExchangeOptions {
  host: string
  port: number
  signal: AbortSignal
  /** Writes the request; may resolve before the server replied. */
  write(socket: Socket): Promise<void>
  /** True once `reply` is complete, to stop waiting for the server to close. Default: wait for the close. */
  complete?(reply: Buffer): boolean
}

/** Sends a request and resolves with the server's whole reply. */
export function exchange(options: ExchangeOptions): Promise<Buffer> {
  const { signal } = options
  return new Promise<Buffer>((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason)
    const chunks: Buffer[] = []
    let writeError: unknown
    let settled = false
    const socket = connect({ host: options.host, port: options.port })
    const finish = (err?: unknown) => {
      if (settled) return
      settled = true
      signal.removeEventListener('abort', onAbort)
      socket.destroy()
      const reply = Buffer.concat(chunks)
      if (reply.length) resolve(reply)
      else reject(err ?? writeError ?? new Error(`${options.host}:${options.port} closed the connection without a reply`))
    }
    const onAbort = () => {
      chunks.length = 0
      finish(signal.reason)
    }
    signal.addEventListener('abort', onAbort, { once: true })
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk)
      if (options.complete?.(Buffer.concat(chunks))) finish()
    })
    socket.once('error', (err) => finish(err))
    socket.once('close', () => finish())
    socket.once('connect', () => {
      options.write(socket).catch((err: unknown) => {
        // The server may have stopped reading because it has answered; the close decides.
        writeError = err
      })
    })
  })
}

/** Writes `data`, waiting for the socket to drain when its buffer is full. */
export async function send(socket: Socket, data: Buffer | string): Promise<void> {
  if (socket.destroyed) throw new Error('connection closed while sending')
  if (socket.write(data)) return
  await new Promise<void>((resolve, reject) => {
    const done = (err?: Error) => {
      socket.off('drain', done).off('close', closed).off('error', done)
      if (err) reject(err)
      else resolve()
    }
    const closed = () => done(new Error('connection closed while sending'))
    socket.once('drain', done).once('close', closed).once('error', done)
  })
}
