/**
 * The relay policy of a backup MX: it accepts mail for its own domains from anyone on the
 * Internet and refuses everything else, then hands the mail to the primary mail server. (Holding
 * mail while the primary is down comes with the queue transport; here a primary that is down
 * makes the sender retry, which is also correct.)
 *
 *   npx tsx examples/backup-mx.ts           serves until Ctrl-C
 *   npx tsx examples/backup-mx.ts --once    checks itself (mail for its domain, the open-relay
 *                                           tests) and exits non-zero on any failure
 *
 * Environment (defaults in brackets):
 *   RELAY_HOST      address to listen on                            [127.0.0.1]
 *   RELAY_PORT      port; 0 picks a free one                        [25]
 *   RELAY_DOMAINS   domains we are backup MX for, comma-separated; `.example.com` for subdomains [example.test]
 *   UPSTREAM_HOST   the primary mail server; unset: a local test server that prints what it gets
 *   UPSTREAM_PORT   its port                                        [25]
 */
import { pathToFileURL } from 'node:url'
import { createTransport } from 'nodemailer'
import { consoleLogger, createRelay, type Relay, relayPolicy, smtpTransport } from 'relaychain'
import { checkOpenRelay, type Sink, startSink } from 'relaychain/testing'

/** A running backup MX. */
export interface BackupMx {
  relay: Relay
  host: string
  port: number
  domains: string[]
  /** The local stand-in for the primary, when UPSTREAM_HOST is not set. */
  upstream: Sink | undefined
  close(): Promise<void>
}

/** Starts the backup MX from environment variables (see the file header). */
export async function startBackupMx(env: NodeJS.ProcessEnv = process.env): Promise<BackupMx> {
  const domains = (env.RELAY_DOMAINS ?? 'example.test').split(',').map((d) => d.trim())
  const upstream = env.UPSTREAM_HOST ? undefined : await startSink()
  const relay = createRelay({
    hostname: 'mx2.relay.test',
    listeners: [{ host: env.RELAY_HOST ?? '127.0.0.1', port: Number(env.RELAY_PORT ?? 25), mode: 'smtp' }],
    // No AUTH, no trusted networks: the only thing that grants relaying is a recipient in our domains.
    stages: [relayPolicy({ authenticated: false, domains })],
    transport: smtpTransport({ host: env.UPSTREAM_HOST ?? upstream!.host, port: upstream?.port ?? Number(env.UPSTREAM_PORT ?? 25) }),
    logger: consoleLogger({ level: 'warn' }),
  })
  const [bound] = await relay.listen()
  return {
    relay,
    host: bound!.host,
    port: bound!.port,
    domains,
    upstream,
    async close() {
      await relay.close()
      await upstream?.close()
    },
  }
}

/** The self-check of `--once`: returns the problems found. */
async function selfCheck(mx: BackupMx): Promise<string[]> {
  const problems: string[] = []
  const domain = mx.domains[0]!.replace(/^\./, 'mail.')
  const client = createTransport({ host: mx.host, port: mx.port, ignoreTLS: true })
  const sent = await client.sendMail({ from: 'someone@elsewhere.example', to: `info@${domain}`, subject: 'Hello', text: 'Hi.\n' })
  client.close()
  console.log(`mail for ${domain}: ${sent.response}`)
  if (mx.upstream && (await mx.upstream.waitForMessages(1)).length !== 1) problems.push('the message did not reach the primary')
  const report = await checkOpenRelay({ host: mx.host, port: mx.port, domain })
  console.log(
    `open-relay tests: ${report.tests.filter((t) => !t.accepted).length} of ${report.tests.length} refused; control: ${report.control.reply}`,
  )
  for (const t of report.tests.filter((t) => t.accepted)) problems.push(`OPEN RELAY: ${t.name} (${t.mailFrom} → ${t.rcptTo}): ${t.reply}`)
  if (!report.control.accepted) problems.push(`mail for ${domain} was refused: ${report.control.reply}`)
  return problems
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const mx = await startBackupMx()
  console.log(`backup MX for ${mx.domains.join(', ')} listening on ${mx.host}:${mx.port}\n\n${mx.relay.pipeline.describe()}\n`)
  if (mx.upstream) console.log(`no UPSTREAM_HOST: forwarding to a local test server on port ${mx.upstream.port}`)
  if (process.argv.includes('--once')) {
    const problems = await selfCheck(mx)
    for (const p of problems) console.error(p)
    await mx.close()
    process.exitCode = problems.length ? 1 : 0
  } else {
    process.once('SIGINT', () => void mx.close().then(() => process.exit(0)))
  }
}
