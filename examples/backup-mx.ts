/**
 * A backup MX: it accepts mail for its own domains from anyone on the Internet and refuses
 * everything else, stores what it accepts in a durable queue, and hands it to the primary mail
 * server, holding it for days when the primary is down and delivering what accumulated,
 * progressively, once it answers again.
 *
 *   npx tsx examples/backup-mx.ts           serves until Ctrl-C
 *   npx tsx examples/backup-mx.ts --once    checks itself and exits non-zero on any failure: with
 *                                           the primary down, N messages get 250 and wait in the
 *                                           queue; the primary comes up and all N arrive, byte for
 *                                           byte; then the open-relay tests
 *
 * Environment (defaults in brackets):
 *   RELAY_HOST      address to listen on                            [127.0.0.1]
 *   RELAY_PORT      port; 0 picks a free one                        [25]
 *   RELAY_DOMAINS   domains we are backup MX for, comma-separated; `.example.com` for subdomains [example.test]
 *   QUEUE_DIR       the queue directory (one relay process per directory) [./backup-mx-queue]
 *   UPSTREAM_HOST   the primary mail server; unset: a local test server that prints what it gets
 *   UPSTREAM_PORT   its port                                        [25]
 *   ONCE_MESSAGES   how many messages --once holds for a primary that is down [5]
 *
 * Operate the queue while it runs: `npx relaychain queue list --dir ./backup-mx-queue`.
 */
import { once } from 'node:events'
import { createServer } from 'node:net'
import { pathToFileURL } from 'node:url'
import { createTransport } from 'nodemailer'
import { consoleLogger, createRelay, type DurableQueue, durableQueue, type Relay, relayPolicy, smtpTransport } from 'relaychain'
import { checkOpenRelay, type Sink, startSink } from 'relaychain/testing'

/** A running backup MX. */
export interface BackupMx {
  relay: Relay
  queue: DurableQueue
  host: string
  port: number
  domains: string[]
  /** The local stand-in for the primary, when UPSTREAM_HOST is not set: started by `startPrimary()`. */
  upstream: Sink | undefined
  /** Starts the local stand-in for the primary (when UPSTREAM_HOST is not set): until then it is down. */
  startPrimary(): Promise<Sink>
  close(): Promise<void>
}

/** A free loopback port for the local primary, which is down (nothing listens) until it starts. */
async function reservePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}

/** Starts the backup MX from environment variables (see the file header). `primaryUp: false` leaves the local primary down. */
export async function startBackupMx(env: NodeJS.ProcessEnv = process.env, options: { primaryUp?: boolean } = {}): Promise<BackupMx> {
  const domains = (env.RELAY_DOMAINS ?? 'example.test').split(',').map((d) => d.trim())
  const local = !env.UPSTREAM_HOST
  const primaryPort = local ? await reservePort() : Number(env.UPSTREAM_PORT ?? 25)
  const queue = durableQueue({
    dir: env.QUEUE_DIR ?? './backup-mx-queue',
    deliver: smtpTransport({ host: env.UPSTREAM_HOST ?? '127.0.0.1', port: primaryPort }),
    hostname: 'mx2.relay.test',
  })
  const relay = createRelay({
    hostname: 'mx2.relay.test',
    listeners: [{ host: env.RELAY_HOST ?? '127.0.0.1', port: Number(env.RELAY_PORT ?? 25), mode: 'smtp' }],
    // No AUTH, no trusted networks: the only thing that grants relaying is a recipient in our domains.
    stages: [relayPolicy({ authenticated: false, domains })],
    transport: queue,
    logger: consoleLogger({ level: 'warn' }),
  })
  const [bound] = await relay.listen()
  const mx: BackupMx = {
    relay,
    queue,
    host: bound!.host,
    port: bound!.port,
    domains,
    upstream: undefined,
    async startPrimary() {
      if (!local) throw new Error('UPSTREAM_HOST is set: the primary is not ours to start')
      mx.upstream ??= await startSink({ port: primaryPort })
      return mx.upstream
    },
    async close() {
      await relay.close()
      await mx.upstream?.close()
    },
  }
  if (local && options.primaryUp !== false) await mx.startPrimary()
  return mx
}

/** The self-check of `--once`: returns the problems found. */
async function selfCheck(mx: BackupMx, count: number): Promise<string[]> {
  const problems: string[] = []
  const domain = mx.domains[0]!.replace(/^\./, 'mail.')
  const client = createTransport({ host: mx.host, port: mx.port, ignoreTLS: true })
  const sent: string[] = []
  for (let i = 1; i <= count; i++) {
    const raw = `From: someone@elsewhere.example\r\nTo: info@${domain}\r\nSubject: held ${i}\r\nMessage-ID: <held-${i}.${Date.now()}@elsewhere.example>\r\n\r\nMessage ${i} for the primary.\r\n`
    const info = await client.sendMail({ envelope: { from: 'someone@elsewhere.example', to: [`info@${domain}`] }, raw })
    if (!String(info.response).startsWith('250 ')) problems.push(`message ${i} was not accepted: ${info.response}`)
    sent.push(raw)
  }
  client.close()
  let queued = 0
  for await (const _ of mx.queue.list()) queued++
  console.log(`primary down: ${sent.length} messages accepted with 250, ${queued} in the queue`)
  if (!process.env.UPSTREAM_HOST) {
    const primary = await mx.startPrimary()
    // An operator's `relaychain queue flush` (postqueue -f): without it the queue probes the primary after its backoff.
    await mx.queue.flush()
    const arrived = await primary.waitForMessages(count, 30_000).catch(() => primary.messages)
    console.log(`primary up: ${arrived.length} of ${count} delivered`)
    for (const [i, raw] of sent.entries()) {
      const got = arrived.find((m) => m.raw.toString().endsWith(raw))
      if (!got) problems.push(`message ${i + 1} did not reach the primary byte for byte`)
    }
    await mx.queue.idle()
  }
  const report = await checkOpenRelay({ host: mx.host, port: mx.port, domain })
  console.log(
    `open-relay tests: ${report.tests.filter((t) => !t.accepted).length} of ${report.tests.length} refused; control: ${report.control.reply}`,
  )
  for (const t of report.tests.filter((t) => t.accepted)) problems.push(`OPEN RELAY: ${t.name} (${t.mailFrom} → ${t.rcptTo}): ${t.reply}`)
  if (!report.control.accepted) problems.push(`mail for ${domain} was refused: ${report.control.reply}`)
  return problems
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const checking = process.argv.includes('--once')
  const mx = await startBackupMx(process.env, { primaryUp: !checking })
  console.log(`backup MX for ${mx.domains.join(', ')} listening on ${mx.host}:${mx.port}\n\n${mx.relay.pipeline.describe()}\n`)
  if (checking) {
    const problems = await selfCheck(mx, Number(process.env.ONCE_MESSAGES ?? 5))
    for (const p of problems) console.error(p)
    await mx.close()
    process.exitCode = problems.length ? 1 : 0
  } else {
    if (mx.upstream) console.log(`no UPSTREAM_HOST: delivering to a local test server on port ${mx.upstream.port}`)
    process.once('SIGINT', () => void mx.close().then(() => process.exit(0)))
  }
}
