/**
 * The outgoing mail server of a small company: PCs and servers in the office LAN hand it their
 * mail on port 25, it stores each message in a durable queue, and the queue delivers it straight
 * to the recipients' MX hosts (no smarthost) with MTA-STS, DANE (through a validating resolver on
 * this machine), opportunistic STARTTLS and TLS-RPT counts, retrying what is deferred for days
 * and bouncing what fails, with a failure notice to the sender.
 *
 *   npx tsx examples/direct-mx.ts           serves until Ctrl-C
 *   npx tsx examples/direct-mx.ts --once    checks itself with nothing installed and exits
 *                                           non-zero on any failure: a DNS server of its own on
 *                                           loopback (MX records for two test domains, a null MX
 *                                           for a third), two MX stand-ins; one message from the
 *                                           LAN to all three domains arrives at each domain's MX,
 *                                           the null-MX recipient bounces at once with a notice to
 *                                           the sender; then the open-relay tests from outside the LAN
 *
 * Environment (defaults in brackets):
 *   RELAY_HOST         address to listen on                                   [127.0.0.1]
 *   RELAY_PORT         port; 0 picks a free one                               [25]
 *   RELAY_NAME         the EHLO name, also in notices                         [mail.office.example]
 *   LAN                networks that may send through it, comma-separated     [192.168.1.0/24]
 *   QUEUE_DIR          the queue directory (one relay process per directory)  [./direct-mx-queue]
 *   DNS_SERVER         host:port of the resolver every lookup goes to; for DANE a validating one
 *                      on this machine (unbound)                              [the system's first]
 *   MX_PORT            the port MX hosts are contacted on                     [25]
 *   MX_ALLOW_NETWORKS  CIDRs that may be connected to despite the refusal of loopback, private
 *                      and reserved addresses, comma-separated (`127.0.0.0/8` in tests) [none]
 *   MX_TLS_CA          a PEM file of extra CAs trusted for MX hosts and MTA-STS policy hosts [none]
 *   MTA_STS_PORT       the HTTPS port of MTA-STS policy fetches (tests)       [443]
 *   TLSRPT_DIR         where each day's TLS-RPT reports are written as .json.gz, shortly after
 *                      midnight UTC; unset: not counted                       [unset]
 *   POSTMASTER         where notices that cannot reach their sender go        [unset: held in the queue]
 *
 * Operate the queue while it runs: `npx relaychain queue list --dir ./direct-mx-queue`.
 */
import { createSocket, type Socket } from 'node:dgram'
import { once } from 'node:events'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import dnsPacket, { type Answer } from 'dns-packet'
import { createTransport } from 'nodemailer'
import {
  type BouncedEvent,
  consoleLogger,
  createRelay,
  type DeliveryEvent,
  type DurableQueue,
  durableQueue,
  mxTransport,
  type QueuedEvent,
  type Relay,
  relayPolicy,
  type TlsReporter,
  tlsReporter,
  tlsReportFile,
} from 'relaychain'
import { checkOpenRelay, type Sink, startSink } from 'relaychain/testing'

/** A running outgoing server. */
export interface DirectMx {
  relay: Relay
  queue: DurableQueue
  host: string
  port: number
  /** The TLS-RPT counts, when TLSRPT_DIR is set. */
  tlsReports: TlsReporter | undefined
  /** Writes the reports of every finished UTC day (or of `day`) to TLSRPT_DIR; returns the files written. */
  writeTlsReports(day?: string): Promise<string[]>
  close(): Promise<void>
}

const list = (value: string | undefined) =>
  (value ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)

/** Starts the server from environment variables (see the file header). */
export async function startDirectMx(env: NodeJS.ProcessEnv = process.env): Promise<DirectMx> {
  const name = env.RELAY_NAME ?? 'mail.office.example'
  const reportDir = env.TLSRPT_DIR
  const tlsReports = reportDir ? tlsReporter({ organizationName: name, contactInfo: `postmaster@${name}`, submitter: name }) : undefined
  const mx = mxTransport({
    name,
    ...(env.DNS_SERVER ? { dns: env.DNS_SERVER } : {}),
    port: Number(env.MX_PORT ?? 25),
    allowNetworks: list(env.MX_ALLOW_NETWORKS),
    ...(env.MX_TLS_CA ? { tls: { ca: await readFile(env.MX_TLS_CA) } } : {}),
    ...(env.MTA_STS_PORT ? { mtaSts: { port: Number(env.MTA_STS_PORT) } } : {}),
    ...(tlsReports ? { tlsReports } : {}),
  })
  const queue = durableQueue({
    dir: env.QUEUE_DIR ?? './direct-mx-queue',
    // The queue delivers per recipient domain (mxTransport's destinationOf): a dead domain is
    // throttled on its own, the others go on.
    deliver: mx,
    hostname: name,
    ...(env.POSTMASTER ? { postmaster: env.POSTMASTER } : {}),
  })
  const relay = createRelay({
    hostname: name,
    listeners: [{ host: env.RELAY_HOST ?? '127.0.0.1', port: Number(env.RELAY_PORT ?? 25), mode: 'smtp' }],
    // No AUTH: what grants relaying is a client in the LAN. Nobody else may send through it.
    stages: [relayPolicy({ authenticated: false, networks: list(env.LAN ?? '192.168.1.0/24') })],
    transport: queue,
    logger: consoleLogger({ level: 'warn' }),
  })
  const [bound] = await relay.listen()

  async function writeTlsReports(day?: string): Promise<string[]> {
    if (!tlsReports || !reportDir) return []
    await mkdir(reportDir, { recursive: true })
    const today = new Date().toISOString().slice(0, 10)
    const written: string[] = []
    for (const d of day ? [day] : tlsReports.days().filter((d) => d < today)) {
      for (const domain of tlsReports.domains(d)) {
        const report = tlsReports.report(domain, d)
        if (!report) continue
        const file = tlsReportFile(report, name)
        await writeFile(join(reportDir, file.filename), file.gzip)
        written.push(file.filename)
        tlsReports.forget(d, domain)
      }
    }
    return written
  }
  // Hourly: a finished day's reports are written in the first hour after midnight UTC.
  const timer = tlsReports ? setInterval(() => void writeTlsReports().catch((err) => console.error('TLS-RPT:', err)), 3_600_000).unref() : undefined

  return {
    relay,
    queue,
    host: bound!.host,
    port: bound!.port,
    tlsReports,
    writeTlsReports,
    async close() {
      clearInterval(timer)
      await writeTlsReports().catch(() => [])
      await relay.close() // and the queue, and the MX connections
    },
  }
}

// ---------------------------------------------------------------------------------------------
// The self-check of --once: everything on loopback, nothing leaves the machine.

/** The test zones of the self-check: two domains with MX hosts, one with a null MX (RFC 7505), the sender's own. */
function testRecords(): Answer[] {
  return [
    { type: 'MX', name: 'alpha.test', ttl: 300, data: { preference: 10, exchange: 'mx.alpha.test' } },
    { type: 'A', name: 'mx.alpha.test', ttl: 300, data: '127.0.0.2' },
    { type: 'MX', name: 'beta.test', ttl: 300, data: { preference: 10, exchange: 'mx1.beta.test' } },
    { type: 'A', name: 'mx1.beta.test', ttl: 300, data: '127.0.0.3' },
    { type: 'MX', name: 'nullmx.test', ttl: 300, data: { preference: 0, exchange: '.' } },
    // The sender's domain: its failure notice goes to alpha's MX host too.
    { type: 'MX', name: 'office.test', ttl: 300, data: { preference: 10, exchange: 'mx.alpha.test' } },
  ]
}

/** A small authoritative DNS server over UDP on 127.0.0.1 (dns-packet): the records given, NXDOMAIN for other names. */
async function startTestDns(records: readonly Answer[]): Promise<{ address: string; close(): Promise<void> }> {
  const socket: Socket = createSocket('udp4')
  socket.on('message', (bytes, from) => {
    let query: dnsPacket.DecodedPacket
    try {
      query = dnsPacket.decode(bytes)
    } catch {
      return
    }
    const question = query.questions?.[0]
    if (!question) return
    const qname = question.name.toLowerCase()
    const answers = records.filter((r) => r.name === qname && r.type === question.type)
    const exists = records.some((r) => r.name === qname)
    const reply = dnsPacket.encode({
      type: 'response',
      id: query.id,
      flags: dnsPacket.AUTHORITATIVE_ANSWER | (exists ? 0 : 3), // rcode 3: NXDOMAIN
      questions: [question],
      answers,
    })
    socket.send(reply, from.port, from.address)
  })
  socket.bind(0, '127.0.0.1')
  await once(socket, 'listening')
  return {
    address: `127.0.0.1:${socket.address().port}`,
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  }
}

/** Two MX stand-ins on 127.0.0.2 and 127.0.0.3, on one port (mxTransport connects to one port everywhere). */
async function startMxSinks(): Promise<[Sink, Sink]> {
  for (let tries = 0; ; tries++) {
    const alpha = await startSink({ host: '127.0.0.2' })
    const beta = await startSink({ host: '127.0.0.3', port: alpha.port }).catch(async (err: unknown) => {
      await alpha.close()
      if (tries >= 5) throw err
      return undefined // the port is taken on 127.0.0.3: another one
    })
    if (beta) return [alpha, beta]
  }
}

/** The self-check of `--once` (see the file header): returns the problems found. */
export async function selfCheck(env: NodeJS.ProcessEnv = process.env): Promise<string[]> {
  const problems: string[] = []
  const dns = await startTestDns(testRecords())
  const [alpha, beta] = await startMxSinks()
  const queueDir = env.QUEUE_DIR ?? (await mkdtemp(join(tmpdir(), 'direct-mx-')))
  const reportDir = env.TLSRPT_DIR ?? join(queueDir, 'tlsrpt')
  // The LAN is one loopback address, the client's; the open-relay tests come from 127.0.0.1, outside it.
  const lanClient = '127.0.0.10'
  const server = await startDirectMx({
    ...env,
    RELAY_PORT: env.RELAY_PORT ?? '0',
    LAN: `${lanClient}/32`,
    QUEUE_DIR: queueDir,
    TLSRPT_DIR: reportDir,
    DNS_SERVER: dns.address,
    MX_PORT: String(alpha.port),
    MX_ALLOW_NETWORKS: '127.0.0.0/8',
  })
  const events: DeliveryEvent[] = []
  const stop = server.relay.pipeline.events.subscribe((e) => events.push(e))
  try {
    const client = createTransport({ host: server.host, port: server.port, ignoreTLS: true, localAddress: lanClient })
    const raw =
      'From: Staff <staff@office.test>\r\nTo: a@alpha.test, b@beta.test, c@nullmx.test\r\nSubject: Quote\r\n' +
      `Message-ID: <quote.${Date.now()}@office.test>\r\n\r\nThe quote is attached.\r\n`
    const info = await client.sendMail({ envelope: { from: 'staff@office.test', to: ['a@alpha.test', 'b@beta.test', 'c@nullmx.test'] }, raw })
    client.close()
    console.log(`from the LAN to three domains:  ${info.response}`)
    if (!String(info.response).startsWith('250 ')) problems.push(`the message was not accepted: ${info.response}`)

    // alpha's MX gets the message for a@alpha.test and the failure notice for staff@office.test.
    const [atAlpha, atBeta] = await Promise.all([
      alpha.waitForMessages(2, 20_000).catch(() => alpha.messages),
      beta.waitForMessages(1, 20_000).catch(() => beta.messages),
    ])
    await server.queue.idle()
    const message = atAlpha.find((m) => m.rcptTo.includes('a@alpha.test'))
    const notice = atAlpha.find((m) => m.rcptTo.includes('staff@office.test'))
    console.log(`alpha.test's MX (127.0.0.2):    ${atAlpha.length} messages: ${atAlpha.map((m) => m.rcptTo.join(' ')).join(', ')}`)
    console.log(`beta.test's MX (127.0.0.3):     ${atBeta.length} message: ${atBeta.map((m) => m.rcptTo.join(' ')).join(', ')}`)
    if (!message?.raw.toString().endsWith(raw)) problems.push('a@alpha.test did not get the message byte for byte at 127.0.0.2')
    if (atBeta.length !== 1 || atBeta[0]!.rcptTo.join() !== 'b@beta.test' || !atBeta[0]!.raw.toString().endsWith(raw))
      problems.push('b@beta.test did not get the message (alone) at 127.0.0.3')
    if (beta.messages.some((m) => m.rcptTo.includes('c@nullmx.test')) || alpha.messages.some((m) => m.rcptTo.includes('c@nullmx.test')))
      problems.push('mail for the null-MX domain was delivered somewhere')

    const bounce = events.find((e): e is BouncedEvent => e.type === 'bounced' && e.rcpt === 'c@nullmx.test')
    console.log(
      `c@nullmx.test (null MX):        ${bounce ? `bounced at attempt ${bounce.attempt}: ${bounce.reply}; notice ${bounce.notice}` : 'not bounced'}`,
    )
    if (!bounce?.reply.startsWith('550 5.1.10 ') || bounce.attempt !== 1) problems.push('c@nullmx.test was not bounced at once with 550 5.1.10')
    const queuedNotice = events.find((e): e is QueuedEvent => e.type === 'queued' && e.id === bounce?.notice)
    if (!bounce?.notice || queuedNotice?.notice !== 'failure') problems.push('no failure notice for c@nullmx.test was queued')
    const text = notice?.raw.toString() ?? ''
    if (!/report-type=delivery-status/i.test(text) || !/Final-Recipient: rfc822; ?c@nullmx\.test/i.test(text) || !/Status: 5\.1\.10/.test(text))
      problems.push('the sender did not get a delivery-status notice for c@nullmx.test with status 5.1.10')
    if (events.some((e) => e.type === 'deferred')) problems.push('a recipient was deferred')
    const attempts = events.filter((e) => e.type === 'delivery-attempt')
    console.log(`connection attempts:            ${attempts.map((e) => `${e.destination} ${e.ip} ${e.outcome}`).join(', ')}`)
    let left = 0
    for await (const _ of server.queue.list()) left++
    if (left) problems.push(`${left} entries are still in the queue`)

    const reports = await server.writeTlsReports(new Date().toISOString().slice(0, 10))
    console.log(`TLS-RPT reports written:        ${reports.join(', ') || 'none'}`)
    if (!reports.some((f) => f.includes('!alpha.test!'))) problems.push('no TLS-RPT report for alpha.test was written')

    const report = await checkOpenRelay({ host: server.host, port: server.port, domain: 'office.test' })
    console.log(`open-relay tests (not the LAN): ${report.tests.filter((t) => !t.accepted).length} of ${report.tests.length} refused`)
    for (const t of report.tests.filter((t) => t.accepted)) problems.push(`OPEN RELAY: ${t.name} (${t.mailFrom} → ${t.rcptTo}): ${t.reply}`)
  } finally {
    stop()
    await server.close()
    await Promise.all([alpha.close(), beta.close(), dns.close()])
    if (!env.QUEUE_DIR) await rm(queueDir, { recursive: true, force: true })
  }
  return problems
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  if (process.argv.includes('--once')) {
    const problems = await selfCheck()
    for (const p of problems) console.error(p)
    process.exitCode = problems.length ? 1 : 0
  } else {
    const server = await startDirectMx()
    console.log(`outgoing server listening on ${server.host}:${server.port}\n\n${server.relay.pipeline.describe()}\n`)
    process.once('SIGINT', () => void server.close().then(() => process.exit(0)))
  }
}
