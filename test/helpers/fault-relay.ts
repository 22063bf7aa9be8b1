/**
 * A relay for the fault-injection suite: one listener in the mode under test (with TLS and AUTH),
 * a spooling stage and a gate stage in front of a recording sink, a log recorder to wait on, and
 * `healthy()`, which proves after each fault that a normal client still gets the exact reply, the
 * message arrives, and nothing leaked (no temp file, no upstream transaction left open, no error
 * on our side).
 */
import { EventEmitter } from 'node:events'
import { readFileSync } from 'node:fs'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createTransport } from 'nodemailer'
import { expect } from 'vitest'
import {
  createRelay,
  type ListenerMode,
  type Relay,
  type RelayLimits,
  type RelayOptions,
  type Stage,
  smtpTransport,
  staticAuthenticator,
  type Transport,
} from '../../src/index.js'
import { type Sink, type SinkOptions, startSink } from '../../src/testing/index.js'
import { RawSmtp } from './raw-smtp.js'
import { allowAll } from './relay.js'

export const TLS = {
  key: readFileSync(new URL('../fixtures/tls/key.pem', import.meta.url)),
  cert: readFileSync(new URL('../fixtures/tls/cert.pem', import.meta.url)),
}
export const USER = { user: 'alice', pass: 'secret' }

/** One log line the relay wrote. */
export interface LogLine {
  level: string
  message: string
  fields: Record<string, unknown>
}

/** Records the relay's log; `next()` waits for the next line with a message (and fields) after the call. */
export class LogRecorder {
  readonly lines: LogLine[] = []
  readonly #events = new EventEmitter()
  readonly logger = {
    debug: (fields: Record<string, unknown>, message: string) => this.#add('debug', fields, message),
    info: (fields: Record<string, unknown>, message: string) => this.#add('info', fields, message),
    warn: (fields: Record<string, unknown>, message: string) => this.#add('warn', fields, message),
    error: (fields: Record<string, unknown>, message: string) => this.#add('error', fields, message),
  }

  #add(level: string, fields: Record<string, unknown>, message: string): void {
    const line = { level, message, fields }
    this.lines.push(line)
    this.#events.emit('line', line)
  }

  /** Resolves with the next line whose message is `message` and whose fields match `where`. */
  next(message: string, where: (fields: Record<string, unknown>) => boolean = () => true): Promise<LogLine> {
    return new Promise((resolve) => {
      const check = (line: LogLine) => {
        if (line.message !== message || !where(line.fields)) return
        this.#events.off('line', check)
        resolve(line)
      }
      this.#events.on('line', check)
    })
  }

  /** Lines at error level: errors on our side, which no client fault may cause. */
  errors(): LogLine[] {
    return this.lines.filter((l) => l.level === 'error')
  }
}

/** A gate the next message waits at (after it was spooled, before the transport) until released. */
export interface Hold {
  /** Resolves when a message reached the gate. */
  readonly entered: Promise<void>
  release(): void
}

export interface FaultRelay {
  readonly mode: ListenerMode
  readonly relay: Relay
  readonly port: number
  readonly sink: Sink
  readonly logs: LogRecorder
  /** What `onError` received. */
  readonly errors: unknown[]
  /** Makes the next message wait at the gate stage. */
  hold(): Hold
  /** Makes the sink stop reading the next message's content until released (a slow upstream). */
  holdUpstream(): Hold
  /** A raw client in the mode's secure layer, greeted: implicit TLS for submissions, plain otherwise. */
  connect(): Promise<RawSmtp>
  /** A raw client ready for MAIL: EHLO (after STARTTLS for submission), authenticated unless `auth: false`. */
  ready(options?: { auth?: boolean }): Promise<RawSmtp>
  /** Sends one message like a normal client of this mode (from `localAddress`); asserts the exact reply, arrival, and no leak. */
  healthy(options?: { localAddress?: string }): Promise<void>
  close(): Promise<void>
}

export interface FaultRelayOptions {
  stages?: Stage[]
  limits?: RelayLimits
  transport?: (sink: Sink) => Transport
  sink?: SinkOptions
  relay?: Partial<RelayOptions>
}

const ENVELOPE = { from: 'alice@example.com', to: ['bob@example.org'] }

/** Starts a relay in `mode` in front of a fresh sink. */
export async function startFaultRelay(mode: ListenerMode, options: FaultRelayOptions = {}): Promise<FaultRelay> {
  const spoolDir = await mkdtemp(join(tmpdir(), 'relaychain-faults-'))
  let upstreamGate: { entered: () => void; released: Promise<void> } | undefined
  const sink = await startSink({
    ...options.sink,
    gate: async () => {
      const held = upstreamGate
      upstreamGate = undefined
      if (held) {
        held.entered()
        await held.released
      }
    },
  })
  const logs = new LogRecorder()
  const errors: unknown[] = []
  let gate: { entered: () => void; released: Promise<void> } | undefined
  const spoolThenGate: Stage = {
    name: 'spool-then-gate',
    async data(msg, next) {
      await msg.body.spool()
      const held = gate
      gate = undefined
      if (held) {
        held.entered()
        await held.released
      }
      return next()
    },
  }
  const relay = createRelay({
    hostname: 'relay.test',
    stages: [allowAll, ...(options.stages ?? []), spoolThenGate],
    transport: options.transport?.(sink) ?? smtpTransport({ host: sink.host, port: sink.port, pool: { maxConnections: 2 } }),
    listeners: [{ port: 0, mode }],
    tls: TLS,
    auth: { authenticator: staticAuthenticator({ [USER.user]: USER.pass }), allowInsecure: false },
    spool: { dir: spoolDir, memoryLimit: 16 * 1024 },
    logger: logs.logger,
    onError: (err) => void errors.push(err),
    limits: { idleTimeout: 5000, ...options.limits },
    ...options.relay,
  })
  const [bound] = await relay.listen()
  const port = bound!.port

  const connect = async () => (mode === 'submissions' ? RawSmtp.connectTls(port) : RawSmtp.connect(port)).then(({ client }) => client)

  return {
    mode,
    relay,
    port,
    sink,
    logs,
    errors,
    hold() {
      const { hold, held } = makeHold()
      gate = held
      return hold
    },
    holdUpstream() {
      const { hold, held } = makeHold()
      upstreamGate = held
      return hold
    },
    connect,
    async ready({ auth = mode !== 'smtp' } = {}) {
      const client = await connect()
      expect(await client.command('EHLO client.test')).toMatch(/^250/)
      if (mode === 'submission') {
        expect(await client.starttls({ rejectUnauthorized: false })).toMatch(/^220/)
        expect(await client.command('EHLO client.test')).toMatch(/^250/)
      }
      if (auth)
        expect(await client.command(`AUTH PLAIN ${Buffer.from(`\0${USER.user}\0${USER.pass}`).toString('base64')}`)).toBe(
          '235 2.7.0 Authentication successful',
        )
      return client
    },
    async healthy({ localAddress } = {}) {
      const before = sink.messages.length
      const client = createTransport({
        host: '127.0.0.1',
        port,
        ...(localAddress ? { localAddress } : {}),
        secure: mode === 'submissions',
        ignoreTLS: mode === 'smtp',
        requireTLS: mode === 'submission',
        tls: { rejectUnauthorized: false },
        ...(mode === 'smtp' ? {} : { auth: USER }),
      })
      try {
        const subject = `healthy ${before + 1}`
        const info = await client.sendMail({ envelope: ENVELOPE, raw: `Subject: ${subject}\r\n\r\nstill serving\r\n` })
        expect(info.response).toMatch(/^250 2\.0\.0 Ok: queued as [0-9A-Z]+$/)
        const messages = await sink.waitForMessages(before + 1)
        expect(messages.at(-1)!.raw.toString()).toContain(`Subject: ${subject}`)
      } finally {
        client.close()
      }
      expect(await readdir(spoolDir), 'temp files left behind').toEqual([])
      // An aborted upstream transfer ends with the relay's FIN behind the data already sent: the
      // sink sees it once it has read that data, which a held sink starts only at its release.
      await sink.waitForIdle(5000) // rejects naming the upstream transactions left open
      expect(errors.map(String), 'errors on our side').toEqual([])
      expect(
        logs.errors().map((l) => `${l.message} ${JSON.stringify(l.fields)}`),
        'error-level log lines',
      ).toEqual([])
    },
    async close() {
      await relay.close({ timeout: 2000 })
      await sink.close()
      await rm(spoolDir, { recursive: true, force: true })
    },
  }
}

function makeHold(): { hold: Hold; held: { entered: () => void; released: Promise<void> } } {
  let entered!: () => void
  let release!: () => void
  const hold = { entered: new Promise<void>((r) => (entered = r)), release: () => release() }
  return { hold, held: { entered, released: new Promise<void>((r) => (release = r)) } }
}
