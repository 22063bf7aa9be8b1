/**
 * Archiving and header hygiene on an outgoing gateway: every message is archived as the client
 * sent it (an `.eml` file plus a JSON sidecar with the envelope and the delivery outcome), and
 * before it goes upstream the headers that reveal the inside of the company are stripped
 * (`X-Originating-IP`, the `Received` fields of internal hosts) and the `Organization` field is
 * set.
 *
 *   npx tsx examples/archive.ts          sends a message, prints the archive, serves until Ctrl-C
 *   npx tsx examples/archive.ts --once   sends it, prints the archive and exits (what CI runs)
 *
 * Environment (defaults in brackets):
 *   RELAY_HOST      address the relay listens on                        [127.0.0.1]
 *   RELAY_PORT      port; 0 picks a free one                            [2527]
 *   ARCHIVE_DIR     where archived messages are written                 [./demo-archive]
 *   INTERNAL_DOMAIN hosts whose Received fields are stripped            [corp.example]
 *   UPSTREAM_HOST   forward mail to this SMTP server                    [unset: a local test sink]
 *   UPSTREAM_PORT   its port                                            [25]
 */
import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createTransport } from 'nodemailer'
import { archiveTap, createRelay, fileTransport, headers, relayPolicy, smtpTransport } from 'relaychain'
import { startSink } from 'relaychain/testing'

const env = {
  host: process.env.RELAY_HOST ?? '127.0.0.1',
  port: Number(process.env.RELAY_PORT ?? 2527),
  archiveDir: process.env.ARCHIVE_DIR ?? './demo-archive',
  internal: (process.env.INTERNAL_DOMAIN ?? 'corp.example').toLowerCase(),
  upstreamHost: process.env.UPSTREAM_HOST,
  upstreamPort: Number(process.env.UPSTREAM_PORT ?? 25),
}
const once = process.argv.includes('--once')

const internalHop = new RegExp(`\\bby [\\w.-]+\\.${env.internal.replace(/\./g, '\\.')}\\b`, 'i')

const sink = env.upstreamHost ? undefined : await startSink()
const relay = createRelay({
  stages: [
    // Relaying for local clients only (Postfix's mynetworks).
    relayPolicy({ authenticated: false, networks: ['127.0.0.1/32'] }),
    // First in the chain: the archive keeps the message exactly as the client sent it.
    archiveTap({ to: fileTransport({ dir: env.archiveDir }) }),
    headers({ remove: ['X-Originating-IP', { name: 'Received', value: internalHop }], set: { Organization: 'Example Corp' } }),
  ],
  transport: smtpTransport(sink ? { host: sink.host, port: sink.port } : { host: env.upstreamHost!, port: env.upstreamPort }),
  listeners: [{ host: env.host, port: env.port, mode: 'submission' }],
})
const [bound] = await relay.listen()
console.log(`archive: listening on ${bound!.host}:${bound!.port}\n\n${relay.pipeline.describe()}\n`)

// What a mail client inside the company hands over, after the internal mail server added its trace.
const raw = [
  `Received: from laptop-17.${env.internal} ([10.1.2.3])`,
  `\tby mail.${env.internal} with ESMTPSA id 4F1A; Sat, 28 Nov 2026 10:00:00 +0000`,
  'X-Originating-IP: [10.1.2.3]',
  'From: Ann <ann@example.com>',
  'To: Bob <bob@example.org>',
  'Subject: Quarterly figures',
  '',
  'Bob, the figures are final.',
  '',
].join('\r\n')
const client = createTransport({ host: bound!.host, port: bound!.port, secure: false, ignoreTLS: true })
const info = await client.sendMail({ envelope: { from: 'ann@example.com', to: ['bob@example.org'] }, raw })
client.close()
console.log(`sent: ${info.response}\n`)

const id = String(info.response).split(' ').pop()!
const files = (await readdir(env.archiveDir)).filter((f) => f.startsWith(id)).sort()
for (const file of files) console.log(`── ${join(env.archiveDir, file)}\n${await readFile(join(env.archiveDir, file), 'utf8')}`)
if (sink) {
  const [upstream] = await sink.waitForMessages(1)
  console.log(`── what the upstream got\n${upstream!.raw.toString()}`)
  const archived = await readFile(join(env.archiveDir, files.find((f) => f.endsWith('.eml'))!), 'utf8')
  if (!archived.includes('X-Originating-IP') || upstream!.raw.toString().includes('X-Originating-IP')) {
    console.log('unexpected: the archive must keep X-Originating-IP and the upstream must not get it')
    process.exitCode = 1
  }
}

if (once) {
  await relay.close()
  await sink?.close()
} else {
  console.log('Serving until Ctrl-C.')
  process.once('SIGINT', () => void Promise.all([relay.close(), sink?.close()]).then(() => process.exit(0)))
}
