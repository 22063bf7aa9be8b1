/**
 * Content scanning for outgoing mail: a submission relay that asks SpamAssassin's spamd and
 * ClamAV's clamd about every message before it goes upstream. Spam scoring 10 or more is refused,
 * 5 or more is tagged (`X-Spam-*`, `[SPAM]` Subject prefix); a virus is refused; a scanner that is
 * down tempfails the message, so nothing leaves unscanned.
 *
 *   npx tsx examples/content-scan.ts          sends three test messages, then serves until Ctrl-C
 *   npx tsx examples/content-scan.ts --once   sends them and exits; exit code 1 if a reply is not
 *                                             the expected one (what CI runs)
 *
 * It needs a spamd and a clamd. `npx tsx test/helpers/with-scanners.ts <command>` starts both on
 * free loopback ports (offline, with test signatures), runs the command with SPAMD_PORT and
 * CLAMD_PORT set, and stops them:
 *
 *   npx tsx test/helpers/with-scanners.ts npx tsx examples/content-scan.ts --once
 *
 * Environment (defaults in brackets):
 *   RELAY_HOST      address the relay listens on                        [127.0.0.1]
 *   RELAY_PORT      port; 0 picks a free one                            [2526]
 *   SPAMD_HOST      spamd's address                                     [127.0.0.1]
 *   SPAMD_PORT      spamd's port                                        [783]
 *   CLAMD_HOST      clamd's address                                     [127.0.0.1]
 *   CLAMD_PORT      clamd's port                                        [3310]
 *   UPSTREAM_HOST   forward accepted mail to this SMTP server           [unset: a local test sink]
 *   UPSTREAM_PORT   its port                                            [25]
 */
import { createTransport } from 'nodemailer'
import { clamd, consoleLogger, createRelay, relayPolicy, smtpTransport, spamd, spamScan, virusScan } from 'relaychain'
import { startSink } from 'relaychain/testing'

const env = {
  host: process.env.RELAY_HOST ?? '127.0.0.1',
  port: Number(process.env.RELAY_PORT ?? 2526),
  spamd: { host: process.env.SPAMD_HOST ?? '127.0.0.1', port: Number(process.env.SPAMD_PORT ?? 783) },
  clamd: { host: process.env.CLAMD_HOST ?? '127.0.0.1', port: Number(process.env.CLAMD_PORT ?? 3310) },
  upstreamHost: process.env.UPSTREAM_HOST,
  upstreamPort: Number(process.env.UPSTREAM_PORT ?? 25),
}
const once = process.argv.includes('--once')

// The test strings every scanner knows; both are harmless.
const GTUBE = 'XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X'
const EICAR = 'X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*'

const sink = env.upstreamHost ? undefined : await startSink()
const relay = createRelay({
  stages: [
    // Relaying for local clients only (Postfix's mynetworks).
    relayPolicy({ authenticated: false, networks: ['127.0.0.1/32'] }),
    virusScan({ scanner: clamd(env.clamd) }),
    spamScan({ scanner: spamd(env.spamd), actions: { tag: 5, reject: 10 }, subjectPrefix: '[SPAM]' }),
  ],
  transport: smtpTransport(sink ? { host: sink.host, port: sink.port } : { host: env.upstreamHost!, port: env.upstreamPort }),
  listeners: [{ host: env.host, port: env.port, mode: 'submission' }],
  // One log line per message (the chain is printed below, so not the start-up line).
  logger: consoleLogger({ stream: { write: (line: string) => line.includes('"relay listening"') || process.stdout.write(`    log ${line}`) } }),
})
const [bound] = await relay.listen()
console.log(`content scan: listening on ${bound!.host}:${bound!.port}\n\n${relay.pipeline.describe()}\n`)

const client = createTransport({ host: bound!.host, port: bound!.port, secure: false, ignoreTLS: true })
const tests = [
  { what: 'an ordinary message', expect: /^250 /, mail: { subject: 'Minutes', text: 'The minutes of today are attached.\n' } },
  { what: 'the GTUBE spam test string', expect: /^550 5\.7\.1 /, mail: { subject: 'Offer', text: `${GTUBE}\n` } },
  {
    what: 'the EICAR virus test file, attached',
    expect: /^554 5\.7\.1 /,
    mail: { subject: 'Invoice', text: 'See attachment.\n', attachments: [{ filename: 'invoice.com', content: Buffer.from(EICAR) }] },
  },
]
for (const [i, test] of tests.entries()) {
  console.log(`${i + 1}. ${test.what}:`)
  const reply = await client.sendMail({ from: 'ann@example.com', to: 'bob@example.org', ...test.mail }).then(
    (info) => String(info.response),
    (err: { response?: string; message: string }) => err.response ?? err.message,
  )
  const ok = test.expect.test(reply)
  console.log(`   → ${reply}${ok ? '' : `   (expected ${test.expect})`}\n`)
  if (!ok) process.exitCode = 1
}
client.close()

if (once) {
  await relay.close()
  await sink?.close()
} else {
  console.log('Serving until Ctrl-C.')
  process.once('SIGINT', () => void Promise.all([relay.close(), sink?.close()]).then(() => process.exit(0)))
}
