/**
 * An office smarthost: staff mail clients submit on port 587 with STARTTLS and a password, PCs
 * in the office LAN may send without one, every sender must be an address its login owns, each
 * user may send 500 messages a day, and everything goes out through the mail provider by way of
 * a durable queue: when the provider is down or says "try again later", the mail waits and is
 * retried, and the staff's clients are not told to try again.
 *
 *   npx tsx examples/smarthost.ts           serves until Ctrl-C
 *   npx tsx examples/smarthost.ts --once    checks itself (a submission, a spoofed sender, a message
 *                                           the provider defers, shown by `relaychain queue list`,
 *                                           the open-relay tests) and exits non-zero on any failure
 *
 * Operate the queue while it runs: `npx relaychain queue list --dir ./smarthost-queue` (also
 * show, hold, release, flush, delete, requeue; `--json` for scripts).
 *
 * Environment (defaults in brackets):
 *   RELAY_HOST      address to listen on                                   [127.0.0.1]
 *   RELAY_PORT      port; 0 picks a free one                               [587]
 *   TLS_KEY         PEM key for STARTTLS          [test/fixtures/tls/key.pem, a demo certificate]
 *   TLS_CERT        PEM certificate                                        [test/fixtures/tls/cert.pem]
 *   PASSWORD_FILE   user:argon2-or-bcrypt-hash[:senders] lines  [a temporary file with one demo user]
 *   LAN             networks that may relay without AUTH, comma-separated  [192.168.1.0/24]
 *   DAILY_LIMIT     messages per user per day                              [500]
 *   QUEUE_DIR       the queue directory (one relay process per directory)  [./smarthost-queue]
 *   UPSTREAM_HOST   the provider's submission server; unset: a local test server that prints what it gets
 *   UPSTREAM_PORT   [587]     UPSTREAM_USER, UPSTREAM_PASS   credentials at the provider, if any
 */
import { spawnSync } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { createTransport } from 'nodemailer'
import {
  consoleLogger,
  createRelay,
  type DurableQueue,
  durableQueue,
  hashPassword,
  passwordFile,
  type Relay,
  rateLimit,
  relayPolicy,
  smtpTransport,
} from 'relaychain'
import { checkOpenRelay, type Sink, startSink } from 'relaychain/testing'

/** The address the local stand-in for the provider defers (see `--once`). */
const DEFERRED = 'busy@elsewhere.example'

const fixture = (name: string) => new URL(`../test/fixtures/tls/${name}`, import.meta.url)

/** A running smarthost and what it was started with. */
export interface Smarthost {
  relay: Relay
  queue: DurableQueue
  /** The queue's directory. */
  queueDir: string
  host: string
  port: number
  /** The local stand-in for the provider, when UPSTREAM_HOST is not set. */
  upstream: Sink | undefined
  /** The demo login, when PASSWORD_FILE is not set. */
  demo: { user: string; pass: string } | undefined
  close(): Promise<void>
}

/** Starts the smarthost from environment variables (see the file header). */
export async function startSmarthost(env: NodeJS.ProcessEnv = process.env): Promise<Smarthost> {
  // The local stand-in defers one address, as a provider's greylisting or outage would.
  const upstream = env.UPSTREAM_HOST
    ? undefined
    : await startSink({ rcpt: (a) => (a === DEFERRED ? '451 4.7.1 Greylisted, try again later' : undefined) })
  let demo: Smarthost['demo']
  let tempDir: string | undefined
  let passwords = env.PASSWORD_FILE
  if (!passwords) {
    tempDir = await mkdtemp(join(tmpdir(), 'smarthost-'))
    demo = { user: 'alice@office.example', pass: `demo-${Math.random().toString(36).slice(2)}` }
    passwords = join(tempDir, 'passwd')
    await writeFile(passwords, `${demo.user}:${await hashPassword(demo.pass)}:${demo.user}\n`, { mode: 0o600 })
  }
  const queueDir = env.QUEUE_DIR ?? './smarthost-queue'
  const queue = durableQueue({
    dir: queueDir,
    deliver: upstream
      ? smtpTransport({ host: upstream.host, port: upstream.port })
      : smtpTransport({
          host: env.UPSTREAM_HOST!,
          port: Number(env.UPSTREAM_PORT ?? 587),
          requireTls: true,
          ...(env.UPSTREAM_USER ? { auth: { user: env.UPSTREAM_USER, pass: env.UPSTREAM_PASS ?? '' } } : {}),
        }),
    hostname: 'relay.test',
  })
  const relay = createRelay({
    hostname: 'relay.test',
    listeners: [{ host: env.RELAY_HOST ?? '127.0.0.1', port: Number(env.RELAY_PORT ?? 587), mode: 'submission' }],
    tls: { key: await readFile(env.TLS_KEY ?? fixture('key.pem')), cert: await readFile(env.TLS_CERT ?? fixture('cert.pem')) },
    auth: { authenticator: passwordFile(passwords) },
    trace: 'hide-client',
    stages: [
      relayPolicy({ senderLogin: true, networks: (env.LAN ?? '192.168.1.0/24').split(',').map((n) => n.trim()) }),
      rateLimit({ limits: [{ key: 'user', messages: Number(env.DAILY_LIMIT ?? 500), window: '1d' }], recipientsPerMessage: 100 }),
    ],
    transport: queue,
    logger: consoleLogger({ level: 'warn' }),
  })
  const [bound] = await relay.listen()
  return {
    relay,
    queue,
    queueDir,
    host: bound!.host,
    port: bound!.port,
    upstream,
    demo,
    async close() {
      await relay.close()
      await upstream?.close()
      if (tempDir) await rm(tempDir, { recursive: true, force: true })
    },
  }
}

/**
 * Runs `relaychain queue list` in a process of its own against the running relay's directory, as
 * an operator would (from this repository's source; installed, it is `npx relaychain …`).
 */
function queueList(dir: string): string {
  const cli = fileURLToPath(new URL('../src/cli/relaychain.ts', import.meta.url))
  const run = spawnSync(process.execPath, ['--import', 'tsx', cli, 'queue', 'list', '--dir', dir], { encoding: 'utf8' })
  return `${run.stdout}${run.stderr}`.trimEnd()
}

/** The self-check of `--once`: returns the problems found. */
async function selfCheck(s: Smarthost): Promise<string[]> {
  const problems: string[] = []
  const tls = { ca: await readFile(fixture('cert.pem')), servername: 'relay.test' }
  if (s.demo && s.upstream) {
    const client = createTransport({ host: s.host, port: s.port, requireTLS: true, tls, auth: s.demo })
    const sent = await client.sendMail({ from: s.demo.user, to: 'customer@elsewhere.example', subject: 'Quote', text: 'Attached.\n' })
    console.log(`authenticated submission:   ${sent.response}`)
    const spoofed = await client
      .sendMail({ from: 'ceo@office.example', to: 'bank@elsewhere.example', subject: 'Pay', text: 'Now.\n' })
      .catch((e: { response: string }) => e)
    console.log(`sender the login not owns:  ${(spoofed as { response: string }).response}`)
    if ((await s.upstream.waitForMessages(1)).length !== 1) problems.push('the submission did not reach the upstream')
    if (!String((spoofed as { response?: string }).response).startsWith('553 5.7.1')) problems.push('a spoofed sender was not refused with 553 5.7.1')

    // The provider defers this one: the client still gets its 250, the queue keeps the message.
    const deferred = new Promise<void>((resolve) => s.relay.events.subscribe((e) => e.type === 'deferred' && resolve()))
    const held = await client.sendMail({ from: s.demo.user, to: DEFERRED, subject: 'Invoice', text: 'Due.\n' })
    console.log(`the provider defers it:     ${held.response}`)
    client.close()
    await deferred
    const listing = queueList(s.queueDir)
    console.log(`\n$ relaychain queue list --dir ${s.queueDir}\n${listing}`)
    if (!listing.includes(DEFERRED) || !listing.includes('451 4.7.1'))
      problems.push('the deferred message is not in the queue listing with its reply')
  }
  const report = await checkOpenRelay({ host: s.host, port: s.port, domain: 'office.example' })
  console.log(`open-relay tests:           ${report.tests.filter((t) => !t.accepted).length} of ${report.tests.length} refused`)
  for (const t of report.tests.filter((t) => t.accepted)) problems.push(`OPEN RELAY: ${t.name} (${t.mailFrom} → ${t.rcptTo}): ${t.reply}`)
  return problems
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const s = await startSmarthost()
  console.log(`smarthost listening on ${s.host}:${s.port} (STARTTLS, AUTH after TLS)\n\n${s.relay.pipeline.describe()}\n`)
  if (s.demo) console.log(`demo login: ${s.demo.user} / ${s.demo.pass}`)
  if (s.upstream) console.log(`no UPSTREAM_HOST: forwarding to a local test server on port ${s.upstream.port}`)
  if (process.argv.includes('--once')) {
    const problems = await selfCheck(s)
    for (const p of problems) console.error(p)
    await s.close()
    process.exitCode = problems.length ? 1 : 0
  } else {
    process.once('SIGINT', () => void s.close().then(() => process.exit(0)))
  }
}
