/**
 * An office smarthost: staff mail clients submit on port 587 with STARTTLS and a password, PCs
 * in the office LAN may send without one, every sender must be an address its login owns, each
 * user may send 500 messages a day, and everything goes out through the mail provider.
 *
 *   npx tsx examples/smarthost.ts           serves until Ctrl-C
 *   npx tsx examples/smarthost.ts --once    checks itself (a submission, a spoofed sender, the
 *                                           open-relay tests) and exits non-zero on any failure
 *
 * Environment (defaults in brackets):
 *   RELAY_HOST      address to listen on                                   [127.0.0.1]
 *   RELAY_PORT      port; 0 picks a free one                               [587]
 *   TLS_KEY         PEM key for STARTTLS          [test/fixtures/tls/key.pem, a demo certificate]
 *   TLS_CERT        PEM certificate                                        [test/fixtures/tls/cert.pem]
 *   PASSWORD_FILE   user:argon2-or-bcrypt-hash[:senders] lines  [a temporary file with one demo user]
 *   LAN             networks that may relay without AUTH, comma-separated  [192.168.1.0/24]
 *   DAILY_LIMIT     messages per user per day                              [500]
 *   UPSTREAM_HOST   the provider's submission server; unset: a local test server that prints what it gets
 *   UPSTREAM_PORT   [587]     UPSTREAM_USER, UPSTREAM_PASS   credentials at the provider, if any
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { createTransport } from 'nodemailer'
import { consoleLogger, createRelay, hashPassword, passwordFile, type Relay, rateLimit, relayPolicy, smtpTransport } from 'relaychain'
import { checkOpenRelay, type Sink, startSink } from 'relaychain/testing'

const fixture = (name: string) => new URL(`../test/fixtures/tls/${name}`, import.meta.url)

/** A running smarthost and what it was started with. */
export interface Smarthost {
  relay: Relay
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
  const upstream = env.UPSTREAM_HOST ? undefined : await startSink()
  let demo: Smarthost['demo']
  let tempDir: string | undefined
  let passwords = env.PASSWORD_FILE
  if (!passwords) {
    tempDir = await mkdtemp(join(tmpdir(), 'smarthost-'))
    demo = { user: 'alice@office.example', pass: `demo-${Math.random().toString(36).slice(2)}` }
    passwords = join(tempDir, 'passwd')
    await writeFile(passwords, `${demo.user}:${await hashPassword(demo.pass)}:${demo.user}\n`, { mode: 0o600 })
  }
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
    transport: upstream
      ? smtpTransport({ host: upstream.host, port: upstream.port })
      : smtpTransport({
          host: env.UPSTREAM_HOST!,
          port: Number(env.UPSTREAM_PORT ?? 587),
          requireTls: true,
          ...(env.UPSTREAM_USER ? { auth: { user: env.UPSTREAM_USER, pass: env.UPSTREAM_PASS ?? '' } } : {}),
        }),
    logger: consoleLogger({ level: 'warn' }),
  })
  const [bound] = await relay.listen()
  return {
    relay,
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
    client.close()
    if ((await s.upstream.waitForMessages(1)).length !== 1) problems.push('the submission did not reach the upstream')
    if (!String((spoofed as { response?: string }).response).startsWith('553 5.7.1')) problems.push('a spoofed sender was not refused with 553 5.7.1')
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
