/**
 * The company outbound gateway: staff submit on port 587 with STARTTLS and a password; every
 * message is checked by SpamAssassin (spamd) and ClamAV (clamd) so that the company's users cannot
 * damage its reputation; addresses of the old domain are rewritten to the new one (a domain
 * migration); the disclaimer is added; a copy goes to the archive; then the mail leaves through the
 * upstream smarthost.
 *
 *   npx tsx examples/outbound-gateway.ts           serves until Ctrl-C
 *   npx tsx examples/outbound-gateway.ts --once    checks itself (a clean message, spam, a virus,
 *                                                  a relay attempt, the open-relay tests) and exits
 *                                                  non-zero on any failure
 *
 * It needs a spamd and a clamd; `test/helpers/with-scanners.ts` starts both offline for a command:
 *
 *   npx tsx test/helpers/with-scanners.ts npx tsx examples/outbound-gateway.ts --once
 *
 * Environment (defaults in brackets):
 *   RELAY_HOST      address to listen on                                   [127.0.0.1]
 *   RELAY_PORT      port; 0 picks a free one                               [587]
 *   TLS_KEY         PEM key for STARTTLS          [test/fixtures/tls/key.pem, a demo certificate]
 *   TLS_CERT        PEM certificate                                        [test/fixtures/tls/cert.pem]
 *   PASSWORD_FILE   user:argon2-or-bcrypt-hash[:senders] lines  [a temporary file with one demo user]
 *   OLD_DOMAIN      the domain being migrated away from                    [old.example]
 *   NEW_DOMAIN      the domain mail should come from                       [new.example]
 *   SPAMD_HOST, SPAMD_PORT   SpamAssassin's spamd                          [127.0.0.1, 783]
 *   CLAMD_HOST, CLAMD_PORT   ClamAV's clamd                                [127.0.0.1, 3310]
 *   ARCHIVE_DIR     where the archive copies go (.eml + .json)             [a temporary directory]
 *   UPSTREAM_HOST   the smarthost; unset: a local test server that records what it gets
 *   UPSTREAM_PORT   [587]     UPSTREAM_USER, UPSTREAM_PASS   credentials at the smarthost, if any
 */
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { createTransport } from 'nodemailer'
import {
  addressRewrite,
  archiveTap,
  clamd,
  consoleLogger,
  createRelay,
  disclaimer,
  fileTransport,
  hashPassword,
  headers,
  passwordFile,
  type Relay,
  relayPolicy,
  smtpTransport,
  spamd,
  spamScan,
  virusScan,
} from 'relaychain'
import { checkOpenRelay, type Sink, startSink } from 'relaychain/testing'

const fixture = (name: string) => new URL(`../test/fixtures/tls/${name}`, import.meta.url)

/** A running gateway and what it was started with. */
export interface Gateway {
  relay: Relay
  host: string
  port: number
  archiveDir: string
  /** The local stand-in for the smarthost, when UPSTREAM_HOST is not set. */
  upstream: Sink | undefined
  /** The demo login, when PASSWORD_FILE is not set. */
  demo: { user: string; pass: string } | undefined
  close(): Promise<void>
}

/** Starts the gateway from environment variables (see the file header). */
export async function startGateway(env: NodeJS.ProcessEnv = process.env): Promise<Gateway> {
  const oldDomain = env.OLD_DOMAIN ?? 'old.example'
  const newDomain = env.NEW_DOMAIN ?? 'new.example'
  const tempDir = await mkdtemp(join(tmpdir(), 'outbound-gateway-'))
  const archiveDir = env.ARCHIVE_DIR ?? join(tempDir, 'archive')
  const upstream = env.UPSTREAM_HOST ? undefined : await startSink()
  let demo: Gateway['demo']
  let passwords = env.PASSWORD_FILE
  if (!passwords) {
    // The demo user still logs in with its old address, and may send as old and new.
    demo = { user: `ann@${oldDomain}`, pass: `demo-${Math.random().toString(36).slice(2)}` }
    passwords = join(tempDir, 'passwd')
    await writeFile(passwords, `${demo.user}:${await hashPassword(demo.pass)}:@${oldDomain},@${newDomain}\n`, { mode: 0o600 })
  }
  const relay = createRelay({
    hostname: 'gateway.test',
    listeners: [{ host: env.RELAY_HOST ?? '127.0.0.1', port: Number(env.RELAY_PORT ?? 587), mode: 'submission' }],
    tls: { key: await readFile(env.TLS_KEY ?? fixture('key.pem')), cert: await readFile(env.TLS_CERT ?? fixture('cert.pem')) },
    auth: { authenticator: passwordFile(passwords) },
    trace: 'hide-client',
    stages: [
      // Only logged-in staff, and only as addresses their login owns.
      relayPolicy({ senderLogin: true }),
      // Judge what the sender wrote, before anything is added to it: tag from 5, refuse from 10.
      spamScan({
        scanner: spamd({ host: env.SPAMD_HOST ?? '127.0.0.1', port: Number(env.SPAMD_PORT ?? 783) }),
        actions: { tag: 5, reject: 10 },
        subjectPrefix: '[SPAM]',
      }),
      virusScan({ scanner: clamd({ host: env.CLAMD_HOST ?? '127.0.0.1', port: Number(env.CLAMD_PORT ?? 3310) }) }),
      // After the policy, which matched the sender the login owns.
      addressRewrite({ sender: { [`@${oldDomain}`]: `@${newDomain}` } }),
      headers({ remove: ['X-Originating-IP'], add: { Organization: 'Example Corp' } }),
      disclaimer({ text: `Example Corp, ${newDomain}. This message is confidential; if you received it in error, please delete it.` }),
      // The copy as it leaves: the archive shows what the recipient got.
      archiveTap({ to: fileTransport({ dir: archiveDir }) }),
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
    archiveDir,
    upstream,
    demo,
    async close() {
      await relay.close()
      await upstream?.close()
      await rm(tempDir, { recursive: true, force: true })
    },
  }
}

const GTUBE = 'XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X'
const EICAR = 'X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*'

/** The self-check of `--once`: returns the problems found. */
export async function selfCheck(g: Gateway): Promise<string[]> {
  const problems: string[] = []
  const expect = (what: string, reply: string, start: string) => {
    console.log(`${what.padEnd(34)} ${reply}`)
    if (!reply.startsWith(start)) problems.push(`${what}: expected ${start}…, got ${reply}`)
  }
  const replyOf = (sending: Promise<{ response: string }>) =>
    sending.then(
      (i) => i.response,
      (e: { response?: string; message: string }) => e.response ?? e.message,
    )
  if (g.demo && g.upstream) {
    const tls = { ca: await readFile(fixture('cert.pem')), servername: 'relay.test' }
    const client = createTransport({ host: g.host, port: g.port, requireTLS: true, tls, auth: g.demo })
    const from = g.demo.user
    expect(
      'a clean message',
      await replyOf(client.sendMail({ from, to: 'customer@elsewhere.example', subject: 'Offer', text: 'Our offer is attached.\n' })),
      '250 2.0.0',
    )
    expect(
      'spam (GTUBE)',
      await replyOf(client.sendMail({ from, to: 'customer@elsewhere.example', subject: 'Win', text: `${GTUBE}\n` })),
      '550 5.7.1',
    )
    const virus = { filename: 'invoice.com', content: EICAR }
    expect(
      'a virus (EICAR attachment)',
      await replyOf(client.sendMail({ from, to: 'customer@elsewhere.example', subject: 'Invoice', text: 'See attachment.\n', attachments: [virus] })),
      '554 5.7.1',
    )
    client.close()
    const [delivered] = await g.upstream.waitForMessages(1)
    const raw = delivered!.raw.toString()
    if (delivered!.mailFrom !== from.replace(/@.*/, '@new.example')) problems.push(`envelope sender not rewritten: ${delivered!.mailFrom}`)
    if (!/^From: ann@new\.example\r?$/m.test(raw)) problems.push('From header not rewritten')
    if (!raw.includes('This message is confidential')) problems.push('no disclaimer')
    if (g.upstream.messages.length !== 1) problems.push(`${g.upstream.messages.length} messages upstream, expected 1`)
    const archived = (await readdir(g.archiveDir)).filter((f) => f.endsWith('.eml'))
    console.log(`${'archive copies'.padEnd(34)} ${archived.length}`)
    if (archived.length !== 1) problems.push(`${archived.length} archive copies, expected 1`)
  }
  const unauthenticated = createTransport({
    host: g.host,
    port: g.port,
    requireTLS: true,
    tls: { ca: await readFile(fixture('cert.pem')), servername: 'relay.test' },
  })
  expect('without a login', await replyOf(unauthenticated.sendMail({ from: 'ann@new.example', to: 'x@elsewhere.example', text: 'x' })), '554 5.7.1')
  unauthenticated.close()
  const report = await checkOpenRelay({ host: g.host, port: g.port, domain: 'new.example' })
  console.log(`${'open-relay tests'.padEnd(34)} ${report.tests.filter((t) => !t.accepted).length} of ${report.tests.length} refused`)
  for (const t of report.tests.filter((t) => t.accepted)) problems.push(`OPEN RELAY: ${t.name} (${t.mailFrom} → ${t.rcptTo}): ${t.reply}`)
  return problems
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const g = await startGateway()
  console.log(`outbound gateway listening on ${g.host}:${g.port} (STARTTLS, AUTH after TLS)\n\n${g.relay.pipeline.describe()}\n`)
  if (g.demo) console.log(`demo login: ${g.demo.user} / ${g.demo.pass}`)
  if (g.upstream) console.log(`no UPSTREAM_HOST: forwarding to a local test server on port ${g.upstream.port}\n`)
  if (process.argv.includes('--once')) {
    const problems = await selfCheck(g)
    for (const p of problems) console.error(p)
    await g.close()
    process.exitCode = problems.length ? 1 : 0
  } else {
    process.once('SIGINT', () => void g.close().then(() => process.exit(0)))
  }
}
