/**
 * `startSink()`: a real SMTP server on a free loopback port that records what it receives. Use it
 * as the upstream of a relay under test; make it refuse chosen recipients or messages to test
 * how the relay passes refusals on.
 */
import { EventEmitter, once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { SMTPServer, type SMTPServerAddress, type SMTPServerOptions } from 'smtp-server'
import { GREETING_DELAY, installGreetingDelay } from '../ingress/smtp-server/greeting-delay.js'

/**
 * A message the sink received.
 *
 * @category Testing
 */
export interface SinkMessage {
  /** Envelope sender; `''` for the null sender. */
  readonly mailFrom: string
  /** Envelope recipients, in order. */
  readonly rcptTo: readonly string[]
  /** ESMTP parameters of MAIL FROM (`BODY`, `SMTPUTF8`, `RET`, `ENVID` …). */
  readonly mailArgs: Readonly<Record<string, string | true>>
  /** ESMTP parameters of each RCPT TO, in order (`NOTIFY`, `ORCPT`). */
  readonly rcptArgs: ReadonlyArray<Readonly<Record<string, string | true>>>
  /** The exact bytes of the message (empty when `keepContent` is false). */
  readonly raw: Buffer
  /** Size of the message in bytes. */
  readonly size: number
}

/**
 * Options of {@link startSink}.
 *
 * @category Testing
 */
export interface SinkOptions {
  /** Refuse a recipient at RCPT with this reply, e.g. `'550 5.1.1 No such user'`. */
  rcpt?: (address: string) => string | undefined
  /** Refuse a message after DATA with this reply, e.g. `'451 4.3.0 Try again later'`. */
  data?: (message: SinkMessage) => string | undefined
  /** The loopback port to listen on (a test that brings a next hop back up on its old port). Default: a free one. */
  port?: number
  /**
   * The loopback address to listen on: `127.0.0.2`, `127.0.0.3` … stand in for several MX hosts
   * on one port (only 127.0.0.0/8 and ::1 are taken). Default `127.0.0.1`.
   */
  host?: string
  /** Advertise DSN. Default true. */
  dsn?: boolean
  /** Keep each message's bytes in `raw`. Default true; false for very large test messages. */
  keepContent?: boolean
  /**
   * Called when a message's DATA begins; its content is not read until the returned promise
   * settles, so the sender sees a slow upstream (its writes back up).
   */
  gate?: (envelope: { readonly mailFrom: string; readonly rcptTo: readonly string[] }) => Promise<void>
}

/**
 * A running sink.
 *
 * @category Testing
 */
export interface Sink {
  /** The address the sink listens on (loopback). */
  readonly host: string
  /** The port it listens on (picked by the system). */
  readonly port: number
  /** Messages accepted so far, in order. */
  readonly messages: readonly SinkMessage[]
  /** Transactions in DATA right now: content being received, no reply sent yet. */
  readonly inData: number
  /** Resolves once `count` messages were accepted in all; rejects after `timeout` ms (default 10 000). */
  waitForMessages(count: number, timeout?: number): Promise<readonly SinkMessage[]>
  /**
   * Resolves once no transaction is in DATA; rejects after `timeout` ms (default 10 000). A sender
   * that went away mid-DATA is seen only once the sink has read what it had sent (its connection
   * closes behind that data), so a test waits here before it counts what was left open.
   */
  waitForIdle(timeout?: number): Promise<void>
  /** Stops listening and ends open connections. */
  close(): Promise<void>
}

function replyError(reply: string): Error & { responseCode: number } {
  const match = /^(\d{3})\s+(.*)$/.exec(reply)
  return Object.assign(new Error(match ? match[2] : reply), { responseCode: match ? Number(match[1]) : 550 })
}

function argsOf(address: SMTPServerAddress): Record<string, string | true> {
  return address.args ? { ...address.args } : {}
}

/**
 * Starts a recording SMTP server on 127.0.0.1 (or another loopback address) and a free port.
 *
 * @example
 * ```ts
 * const sink = await startSink({ rcpt: (a) => (a.startsWith('nobody@') ? '550 5.1.1 No such user' : undefined) })
 * const relay = createRelay({ stages, transport: smtpTransport({ host: sink.host, port: sink.port }) })
 * // … send through the relay …
 * const [message] = await sink.waitForMessages(1)
 * await sink.close()
 * ```
 *
 * @category Testing
 */
export async function startSink(options: SinkOptions = {}): Promise<Sink> {
  const host = options.host ?? '127.0.0.1'
  if (!/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host) && host !== '::1') throw new Error(`startSink host: ${host} is not a loopback address`)
  const messages: SinkMessage[] = []
  const events = new EventEmitter()
  let inData = 0
  /** Resolves once `done()` holds, checked now and at each `event`; rejects with `failure()` after `timeout` ms. */
  const until = (event: 'message' | 'idle', done: () => boolean, failure: () => string, timeout: number) =>
    new Promise<void>((resolve, reject) => {
      if (done()) return resolve()
      const timer = setTimeout(() => {
        events.off(event, check)
        reject(new Error(failure()))
      }, timeout)
      function check() {
        if (!done()) return
        clearTimeout(timer)
        events.off(event, check)
        resolve()
      }
      events.on(event, check)
    })
  installGreetingDelay()
  const serverOptions: SMTPServerOptions & { [GREETING_DELAY]: number } = {
    // A test upstream greets at once; smtp-server's default 100 ms would slow every test.
    [GREETING_DELAY]: 0,
    authOptional: true,
    disabledCommands: ['AUTH', 'STARTTLS'],
    hideDSN: options.dsn === false,
    disableReverseLookup: true,
    logger: false,
    onRcptTo(address, _session, callback) {
      const reply = options.rcpt?.(address.address)
      callback(reply ? replyError(reply) : undefined)
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = []
      let size = 0
      inData++
      stream.once('close', () => {
        if (--inData === 0) events.emit('idle')
      })
      // A sender that goes away mid-DATA: the message is discarded, as a real server does.
      stream.on('error', () => {})
      const envelope = {
        mailFrom: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
        rcptTo: session.envelope.rcptTo.map((r) => r.address),
      }
      const read = () =>
        stream.on('data', (chunk: Buffer) => {
          size += chunk.length
          if (options.keepContent !== false) chunks.push(chunk)
        })
      if (options.gate) void options.gate(envelope).then(read, read)
      else read()
      stream.on('end', () => {
        const message: SinkMessage = {
          ...envelope,
          mailArgs: session.envelope.mailFrom ? argsOf(session.envelope.mailFrom) : {},
          rcptArgs: session.envelope.rcptTo.map(argsOf),
          raw: Buffer.concat(chunks),
          size,
        }
        const reply = options.data?.(message)
        if (reply) return callback(replyError(reply))
        messages.push(message)
        events.emit('message')
        callback(null, `Ok: sink message ${messages.length}`)
      })
    },
  }
  const server = new SMTPServer(serverOptions)
  // A sender that resets its connection is what fault tests do to a sink: never a crash.
  server.on('error', () => {})
  server.listen(options.port ?? 0, host)
  await once(server.server, 'listening')
  const { port } = server.server.address() as AddressInfo

  return {
    host,
    port,
    messages,
    get inData() {
      return inData
    },
    waitForMessages(count, timeout = 10_000) {
      return until(
        'message',
        () => messages.length >= count,
        () => `sink got ${messages.length} of ${count} messages within ${timeout} ms`,
        timeout,
      ).then(() => messages.slice(0, count))
    },
    waitForIdle(timeout = 10_000) {
      return until(
        'idle',
        () => inData === 0,
        () => `sink still has ${inData} transactions in DATA after ${timeout} ms`,
        timeout,
      )
    },
    close() {
      return new Promise<void>((resolve) => {
        server.close(() => resolve())
        // Connections a pooled client keeps open would hold close() for its 30 s grace period.
        for (const conn of server.connections) conn.close()
      })
    },
  }
}
