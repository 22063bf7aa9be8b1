/**
 * One server under test, in its own process so its memory is its own. Plain JavaScript on the
 * built package (`npm run build` first), so the figures are what users get. Usage:
 *   node bench/servers.mjs <server> <upstream-port> <pool-size>
 * Prints {"port"} when listening; on stdin `mark` resets the counters and prints {"rssKiB"},
 * `stats` prints {"ok","failed","maxRssKiB","cpuMicros","stageMs"} (stageMs: each stage's own
 * time, summed over the messages since `mark`, from the relay's `accepted` delivery events).
 *
 * baseline: the bare pass-through with no library code of ours — smtp-server onData piped into
 * a pooled nodemailer sendMail, answering after the upstream's 250.
 * relaychain: the relay with one stage that grants relaying.
 * relaychain-dkim: the same plus dkimSign with an RSA-2048 key for example.com (the load's sender).
 * relaychain-outbound: the outbound gateway (policy, rewrite, header edits, disclaimer, DKIM).
 * relaychain-full: the outbound edits without DKIM, plus an archive copy over SMTP.
 * relaychain-queue: the empty chain into a durable queue (a fresh directory under the system's
 * temp folder, removed on exit) delivering to the upstream; `drain` answers once every accepted
 * message was delivered, as Postfix's rate is taken until its queue is empty.
 */
import { generateKeyPairSync } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { createTransport } from 'nodemailer'
import { SMTPServer } from 'smtp-server'
import { addressRewrite, archiveTap, createRelay, disclaimer, dkimSign, durableQueue, headers, relayPolicy, smtpTransport } from '../dist/index.js'

const [impl = 'baseline', upstreamPortArg = '2600', poolArg = '20'] = process.argv.slice(2)
const upstream = { host: '127.0.0.1', port: Number(upstreamPortArg) }
const pool = Number(poolArg)
let ok = 0
let failed = 0
/** Messages the durable queue delivered since `mark` (relaychain-queue). */
let delivered = 0
/** Resolves a pending `drain` once `delivered` catches up with `ok`. */
let drained = () => {}

async function baseline() {
  const client = createTransport({ pool: true, maxConnections: pool, maxMessages: Infinity, ...upstream, ignoreTLS: true })
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['AUTH', 'STARTTLS'],
    disableReverseLookup: true,
    logger: false,
    size: 128 * 1024 * 1024,
    maxClients: 1000,
    onData(stream, session, callback) {
      const envelope = { from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '', to: session.envelope.rcptTo.map((r) => r.address) }
      client.sendMail({ envelope, raw: stream }).then(
        () => (ok++, callback()),
        (err) => (failed++, callback(err)),
      )
    },
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  return server.server.address().port
}

/** Milliseconds each stage spent in its own code, summed over the messages since `mark`. */
let stageMs = {}

/**
 * @param {import('../dist/index.js').Stage[]} stages
 * @param {import('../dist/index.js').Transport} [transport]
 */
async function relaychain(stages, transport = smtpTransport({ ...upstream, pool: { maxConnections: pool, maxMessages: Infinity } })) {
  const relay = createRelay({
    stages,
    transport,
    listeners: [{ port: 0, mode: 'submission' }],
    // The load generator is an application on this host: exempt from the per-client limits.
    limits: { messageSize: 128 * 1024 * 1024, connections: 1000, clientLimitExceptions: ['127.0.0.0/8'] },
    ...(process.env.X_TRACE ? { trace: process.env.X_TRACE } : {}),
  })
  // The relay's own outcome events count the messages and carry each stage's timing.
  relay.events.subscribe((event) => {
    if (event.type === 'message-refused') failed++
    if (event.type === 'delivered' && event.attempt !== undefined) {
      delivered++
      if (delivered >= ok) drained()
    }
    if (event.type !== 'accepted') return
    ok++
    for (const [name, ms] of Object.entries(event.stages)) stageMs[name] = (stageMs[name] ?? 0) + ms
  })
  const [bound] = await relay.listen()
  return bound.port
}

const grantAll = { name: 'grant-all', grantsRelay: true, rcptTo: () => ({ relay: true }) }
const rsaKey = () => ({ selector: 'bench', privateKey: generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey })
const servers = {
  baseline,
  relaychain: () => relaychain([grantAll]),
  'relaychain-dkim': () => relaychain([grantAll, dkimSign({ keys: { 'example.com': rsaKey() } })]),
  // The outbound gateway of issue 4 without its scanners (their speed is theirs): policy, a
  // domain migration, header hygiene, a disclaimer, and a BCC-style archive copy over SMTP.
  'relaychain-full': () =>
    relaychain([
      relayPolicy({ domains: ['example.org'] }),
      addressRewrite({ sender: { '@example.com': '@example.net' } }),
      headers({ remove: ['X-Originating-IP'], add: { Organization: 'Example Corp' } }),
      disclaimer({ text: 'This message is confidential. If you received it in error, please delete it.' }),
      archiveTap({ to: smtpTransport({ ...upstream, pool: { maxConnections: pool, maxMessages: Infinity } }), recipients: ['archive@example.org'] }),
    ]),
  // The typical outbound gateway chain of issue 10: the same edits, then DKIM signing with
  // RSA-2048 (as the migrated From domain, example.net); no scanners, no archive copy.
  'relaychain-outbound': () =>
    relaychain([
      relayPolicy({ domains: ['example.org'] }),
      addressRewrite({ sender: { '@example.com': '@example.net' } }),
      headers({ remove: ['X-Originating-IP'], add: { Organization: 'Example Corp' } }),
      disclaimer({ text: 'This message is confidential. If you received it in error, please delete it.' }),
      dkimSign({ keys: { 'example.net': rsaKey() } }),
    ]),
  'relaychain-queue': () => {
    const dir = mkdtempSync(join(tmpdir(), 'relaychain-bench-queue-'))
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }))
    const deliver = smtpTransport({ ...upstream, pool: { maxConnections: pool, maxMessages: Infinity } })
    // As many deliveries at once to the one sink as the other servers' upstream pools have.
    return relaychain([grantAll], durableQueue({ dir, deliver, destinations: { concurrency: pool } }))
  },
}
const start = servers[impl]
if (!start) throw new Error(`unknown server ${impl}; one of ${Object.keys(servers).join(', ')}`)
console.log(JSON.stringify({ port: await start() }))
let cpuStart = process.cpuUsage()
for await (const line of createInterface({ input: process.stdin })) {
  if (line === 'mark') {
    cpuStart = process.cpuUsage()
    ok = failed = delivered = 0
    stageMs = {}
    console.log(JSON.stringify({ rssKiB: process.memoryUsage().rss / 1024 }))
  }
  if (line === 'drain') {
    if (delivered < ok) await new Promise((resolve) => (drained = resolve))
    console.log(JSON.stringify({ delivered }))
  }
  if (line === 'stats') {
    const { user, system } = process.cpuUsage(cpuStart)
    console.log(JSON.stringify({ ok, failed, maxRssKiB: process.resourceUsage().maxRSS, cpuMicros: user + system, user, system, stageMs }))
  }
}
process.exit(0) // runs the queue directory's removal
