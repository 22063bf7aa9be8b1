/**
 * A company's bulk sender (newsletters, announcements): the company's application submits on the
 * relay's port with STARTTLS and a login; the relay refuses recipients on the suppression list,
 * pauses (451 4.7.1) a sender domain or tag whose bounce or complaint rate is too high,
 * sets a signed VERP return path, keeps every message in a durable queue and, on the way out,
 * gives each recipient a copy with tracked links, an open pixel and RFC 8058 one-click
 * unsubscribe headers, signed with DKIM. Bounces (DSNs to the VERP addresses) and feedback-loop
 * complaints (ARF) that come back are read and turned into events; hard bounces, complaints and
 * unsubscribes suppress the address. Every event is posted, signed (Standard Webhooks), to a
 * webhook; the HTTP server serves the tracking links, the unsubscribe page, `/status` and
 * `/dashboard`.
 *
 *   npx tsx examples/newsletter.ts           serves until Ctrl-C
 *   npx tsx examples/newsletter.ts --once    checks itself (HTML mail sent through it, a click, the
 *                                            pixel, a one-click unsubscribe, a hard-bounce DSN and
 *                                            an ARF complaint, every event at the webhook with a
 *                                            valid signature, the suppressions, the dashboard, the
 *                                            open-relay tests) and exits non-zero on any failure
 *
 * In production bounces and feedback reports come in on port 25: run a second listener (mode
 * 'mx') with the same stages, or point the bounce domain's MX at this one.
 *
 * Environment (defaults in brackets):
 *   RELAY_HOST      address the SMTP and HTTP servers listen on            [127.0.0.1]
 *   RELAY_PORT      SMTP port; 0 picks a free one                          [587]
 *   TLS_KEY         PEM key for STARTTLS          [test/fixtures/tls/key.pem, a demo certificate]
 *   TLS_CERT        PEM certificate                                        [test/fixtures/tls/cert.pem]
 *   SMTP_USER       the submission login                                   [news, with a random SMTP_PASS]
 *   SMTP_PASS       its password
 *   HTTP_PORT       tracking, unsubscribe and dashboard; 0 picks a free one [8080]
 *   PUBLIC_URL      base of the tracking links, as recipients reach it     [http://127.0.0.1:<HTTP_PORT>]
 *   WEBHOOK_URL     where events are POSTed; unset: a local receiver the example starts and verifies
 *   WEBHOOK_SECRET  whsec_… secret the webhooks are signed with            [a new one, printed]
 *   BOUNCE_DOMAIN   domain of the VERP return path, whose mail the relay takes as bounces [bounces.news.example]
 *   FBL_ADDRESS     where feedback-loop (ARF) reports arrive               [fbl@news.example]
 *   DKIM_DOMAIN     the domain mail is signed for                          [news.example]
 *   DKIM_SELECTOR   its selector; the key is DATA_DIR/dkim-<selector>.pem, created if missing [news]
 *   DATA_DIR        queue, event store, suppression list, webhook state, keys   [a temporary directory]
 *   UPSTREAM_HOST   the smarthost; unset: a local test server that records what it gets
 *   UPSTREAM_PORT   [587]     UPSTREAM_USER, UPSTREAM_PASS   credentials at the smarthost, if any
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { simpleParser } from 'mailparser'
import { createTransport } from 'nodemailer'
import {
  consoleLogger,
  createPipeline,
  createRelay,
  type DurableQueue,
  dkimDnsRecord,
  dkimSign,
  durableQueue,
  type Relay,
  relayPolicy,
  smtpTransport,
  staticAuthenticator,
} from 'relaychain'
import {
  createReporting,
  type EventStore,
  newWebhookSecret,
  openEventStore,
  openSuppressionList,
  type ReportEvent,
  type Reporting,
  relayTag,
  reportIntake,
  type SuppressionList,
  senderProtection,
  startWebhooks,
  suppress,
  type TrackingKey,
  tracking,
  trackingHandler,
  verpReturnPath,
  type Webhooks,
} from 'relaychain/reporting'
import { checkOpenRelay, type Sink, startSink } from 'relaychain/testing'
import { Webhook } from 'standardwebhooks'

const fixture = (name: string) => new URL(`../test/fixtures/tls/${name}`, import.meta.url)

/** The local webhook receiver, when WEBHOOK_URL is not set: it verifies each request's signature. */
export interface Receiver {
  readonly url: string
  /** The events of the requests whose signature verified. */
  readonly events: ReportEvent[]
  /** How many requests did not verify. */
  unverified: number
  close(): Promise<void>
}

/** A running newsletter relay and what it was started with. */
export interface Newsletter {
  relay: Relay
  queue: DurableQueue
  reporting: Reporting
  store: EventStore
  suppressions: SuppressionList
  webhooks: Webhooks
  host: string
  port: number
  /** Base of the tracking, unsubscribe and dashboard URLs. */
  publicUrl: string
  /** Where the HTTP server listens (the dashboard: `<httpUrl>/dashboard`). */
  httpUrl: string
  login: { user: string; pass: string }
  /** The sender the self-check uses: `news@<DKIM_DOMAIN>`. */
  from: string
  bounceDomain: string
  fblAddress: string
  dataDir: string
  /** The local stand-in for the smarthost, when UPSTREAM_HOST is not set. */
  upstream: Sink | undefined
  /** The local webhook receiver, when WEBHOOK_URL is not set. */
  receiver: Receiver | undefined
  close(): Promise<void>
}

async function startReceiver(host: string, secret: string): Promise<Receiver> {
  const verifier = new Webhook(secret)
  const events: ReportEvent[] = []
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = []
    for await (const chunk of req) chunks.push(chunk as Buffer)
    try {
      const body = verifier.verify(Buffer.concat(chunks).toString(), req.headers as Record<string, string>) as ReportEvent | { events: ReportEvent[] }
      events.push(...('events' in body ? body.events : [body]))
      res.writeHead(204).end()
    } catch {
      receiver.unverified++
      res.writeHead(400).end()
    }
  })
  server.listen(0, host)
  await once(server, 'listening')
  const receiver: Receiver = {
    url: `http://${host}:${(server.address() as AddressInfo).port}/hooks`,
    events,
    unverified: 0,
    close: () => closeServer(server),
  }
  return receiver
}

function closeServer(server: Server): Promise<void> {
  server.closeAllConnections()
  return new Promise((resolve) => server.close(() => resolve()))
}

/** A file in DATA_DIR made once (a key): read if it is there, else written with mode 0600. */
async function kept(file: string, make: () => string): Promise<string> {
  try {
    return await readFile(file, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
    const value = make()
    await writeFile(file, value, { mode: 0o600, flag: 'wx' })
    return value
  }
}

/** Starts the newsletter relay from environment variables (see the file header). */
export async function startNewsletter(env: NodeJS.ProcessEnv = process.env): Promise<Newsletter> {
  const host = env.RELAY_HOST ?? '127.0.0.1'
  const tempDir = env.DATA_DIR ? undefined : await mkdtemp(join(tmpdir(), 'newsletter-'))
  const dataDir = env.DATA_DIR ?? tempDir!
  await mkdir(dataDir, { recursive: true })
  const dkimDomain = env.DKIM_DOMAIN ?? 'news.example'
  const selector = env.DKIM_SELECTOR ?? 'news'
  const bounceDomain = env.BOUNCE_DOMAIN ?? `bounces.${dkimDomain}`
  const fblAddress = env.FBL_ADDRESS ?? `fbl@${dkimDomain}`
  const login = { user: env.SMTP_USER ?? 'news', pass: env.SMTP_PASS ?? `demo-${randomBytes(9).toString('base64url')}` }
  if (env.SMTP_USER && !env.SMTP_PASS) throw new Error('SMTP_USER is set without SMTP_PASS')

  // Keys that must survive a restart: links in mail already sent must still verify.
  const keys: TrackingKey[] = [{ id: 'k1', secret: await kept(join(dataDir, 'tracking.key'), () => randomBytes(32).toString('base64url')) }]
  const dkimKey = await kept(join(dataDir, `dkim-${selector}.pem`), () =>
    generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  )
  const webhookSecret = env.WEBHOOK_SECRET ?? newWebhookSecret()

  const store = await openEventStore({ dir: join(dataDir, 'events') })
  const suppressions = await openSuppressionList({ file: join(dataDir, 'suppressions.jsonl') })
  const reporting = createReporting({ store, suppressions })
  const receiver = env.WEBHOOK_URL ? undefined : await startReceiver(host, webhookSecret)
  const webhooks = await startWebhooks({
    store,
    dir: join(dataDir, 'webhooks'),
    endpoints: [{ name: 'app', url: env.WEBHOOK_URL ?? receiver!.url, secret: webhookSecret }],
  })

  // The HTTP side first: the tracking links need its address.
  const http = createServer()
  http.listen(Number(env.HTTP_PORT ?? 8080), host)
  await once(http, 'listening')
  const httpUrl = `http://${host}:${(http.address() as AddressInfo).port}`
  const publicUrl = (env.PUBLIC_URL ?? httpUrl).replace(/\/$/, '')

  const upstream = env.UPSTREAM_HOST ? undefined : await startSink()
  const queue = durableQueue({
    dir: join(dataDir, 'queue'),
    // After the queue: one copy per recipient, tracked, then signed (the order the pipeline insists on).
    deliver: createPipeline({
      name: 'after-queue',
      stages: [tracking({ baseUrl: publicUrl, keys }), dkimSign({ keys: { [dkimDomain]: [{ selector, privateKey: dkimKey }] } })],
      transport: upstream
        ? smtpTransport({ host: upstream.host, port: upstream.port })
        : smtpTransport({
            host: env.UPSTREAM_HOST!,
            port: Number(env.UPSTREAM_PORT ?? 587),
            requireTls: true,
            ...(env.UPSTREAM_USER ? { auth: { user: env.UPSTREAM_USER, pass: env.UPSTREAM_PASS ?? '' } } : {}),
          }),
    }),
    hostname: `relay.${dkimDomain}`,
  })
  const relay = createRelay({
    hostname: `relay.${dkimDomain}`,
    listeners: [{ host, port: Number(env.RELAY_PORT ?? 587), mode: 'submission' }],
    tls: { key: await readFile(env.TLS_KEY ?? fixture('key.pem')), cert: await readFile(env.TLS_CERT ?? fixture('cert.pem')) },
    auth: { authenticator: staticAuthenticator({ [login.user]: login.pass }) },
    trace: 'hide-client',
    stages: [
      // Reports first: they come from anyone, only to the VERP addresses and the FBL address.
      reportIntake({ reporting, bounceDomain, keys, feedbackAddresses: [fblAddress] }),
      // Then only the company's application may send.
      relayPolicy(),
      suppress({ list: suppressions, reporting }),
      // A sender domain or campaign tag that bounces or is complained about too much is paused (451 4.7.1).
      senderProtection({ reporting }),
      relayTag({ reporting }),
      verpReturnPath({ domain: bounceDomain, keys, reporting }),
    ],
    transport: queue,
    logger: consoleLogger({ level: 'warn' }),
  })
  reporting.attach(relay.events)
  http.on(
    'request',
    trackingHandler({ reporting, keys, status: () => ({ webhookBacklogBytes: webhooks.backlog(), suppressions: suppressions.list().length }) }),
  )
  const [bound] = await relay.listen()
  console.log(
    `DKIM: publish ${dkimDnsRecord({ domain: dkimDomain, selector, privateKey: dkimKey }).zone}\n` +
      (env.WEBHOOK_SECRET ? '' : `webhook secret: ${webhookSecret}\n`),
  )
  return {
    relay,
    queue,
    reporting,
    store,
    suppressions,
    webhooks,
    host: bound!.host,
    port: bound!.port,
    publicUrl,
    httpUrl,
    login,
    from: `news@${dkimDomain}`,
    bounceDomain,
    fblAddress,
    dataDir,
    upstream,
    receiver,
    async close() {
      await relay.close({ timeout: 5000 })
      await closeServer(http)
      await webhooks.close()
      await receiver?.close()
      await store.close()
      suppressions.close()
      await upstream?.close()
      if (tempDir) await rm(tempDir, { recursive: true, force: true })
    },
  }
}

const HTML =
  '<html><body><h1>Winter news</h1><p>Our <a href="https://shop.example/winter?utm=news&amp;x=1">winter range</a> is here.</p></body></html>'
const TRACKED_URL = 'https://shop.example/winter?utm=news&x=1'

function dsn(to: string, recipient: string, messageId: string): string {
  return [
    'From: Mail Delivery System <MAILER-DAEMON@mx.customers.example>',
    `To: <${to}>`,
    'Subject: Undelivered Mail Returned to Sender',
    'MIME-Version: 1.0',
    'Content-Type: multipart/report; report-type=delivery-status; boundary="B1"',
    '',
    '--B1',
    'Content-Type: text/plain',
    '',
    'Your message could not be delivered.',
    '--B1',
    'Content-Type: message/delivery-status',
    '',
    'Reporting-MTA: dns; mx.customers.example',
    '',
    `Final-Recipient: rfc822; ${recipient}`,
    'Action: failed',
    'Status: 5.1.1',
    `Diagnostic-Code: smtp; 550 5.1.1 <${recipient}>: Recipient address rejected: User unknown`,
    '',
    '--B1',
    'Content-Type: text/rfc822-headers',
    '',
    `Message-ID: ${messageId}`,
    'Subject: Winter news',
    '',
    '--B1--',
    '',
  ].join('\r\n')
}

function arf(to: string, recipient: string, messageId: string, from: string): string {
  return [
    'From: <fbl@isp.example>',
    `To: <${to}>`,
    'Subject: FW: Winter news',
    'MIME-Version: 1.0',
    'Content-Type: multipart/report; report-type=feedback-report; boundary="F1"',
    '',
    '--F1',
    'Content-Type: text/plain',
    '',
    'This is an email abuse report.',
    '--F1',
    'Content-Type: message/feedback-report',
    '',
    'Feedback-Type: abuse',
    'User-Agent: ExampleFBL/1.0',
    'Version: 1',
    `Original-Rcpt-To: <${recipient}>`,
    '',
    '--F1',
    'Content-Type: text/rfc822-headers',
    '',
    `Message-ID: ${messageId}`,
    `From: ${from}`,
    '',
    '--F1--',
    '',
  ].join('\r\n')
}

/** Resolves once `predicate` holds for the events recorded so far (checked on each new one), or rejects after `ms`. */
function until(reporting: Reporting, predicate: () => boolean, what: string, ms = 20_000): Promise<void> {
  if (predicate()) return Promise.resolve()
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      stop()
      reject(new Error(`timed out waiting for ${what}`))
    }, ms)
    const stop = reporting.subscribe(() => {
      if (!predicate()) return
      clearTimeout(timer)
      stop()
      resolve()
    })
  })
}

/** The self-check of `--once`: returns the problems found. */
export async function selfCheck(n: Newsletter): Promise<string[]> {
  const problems: string[] = []
  const line = (what: string, result: string) => console.log(`${what.padEnd(34)} ${result}`)
  const check = (what: string, ok: boolean, result: string) => {
    line(what, result)
    if (!ok) problems.push(`${what}: ${result}`)
  }
  const seen: ReportEvent[] = []
  const stop = n.reporting.subscribe((e) => seen.push(e))
  const tls = { ca: await readFile(fixture('cert.pem')), servername: 'relay.test' }
  const client = (auth: boolean) => createTransport({ host: n.host, port: n.port, requireTLS: true, tls, ...(auth ? { auth: n.login } : {}) })
  try {
    // Addresses of this run: a DATA_DIR kept from an earlier run has suppressed that run's.
    const run = randomBytes(3).toString('hex')
    if (!n.upstream) {
      line('mail flow', 'skipped: UPSTREAM_HOST is set (the check reads what the local stand-in receives)')
    } else {
      const [ann, bob, carol, dave, erin] = ['ann', 'bob', 'carol', 'dave', 'erin'].map((u) => `${u}.${run}@customers.example`) as [
        string,
        string,
        string,
        string,
        string,
      ]
      const app = client(true)
      const sent = await app.sendMail({
        from: n.from,
        to: [ann, bob, carol, dave],
        subject: 'Winter news',
        html: HTML,
        text: `Our winter range is here: ${TRACKED_URL}\n`,
        headers: { 'X-Relay-Tag': 'winter-2026' },
      })
      check('HTML mail to four recipients', sent.response.startsWith('250'), sent.response)
      await until(n.reporting, () => seen.filter((e) => e.type === 'delivered').length >= 4, 'four deliveries')
      const copies = await n.upstream.waitForMessages(4)
      const copy = (rcpt: string) => copies.find((m) => m.rcptTo.includes(rcpt))!
      const raw = (rcpt: string) => copy(rcpt).raw.toString()
      check('one copy per recipient', copies.length === 4 && copies.every((m) => m.rcptTo.length === 1), `${copies.length} copies`)
      check(
        'DKIM-signed',
        copies.every((m) => /^DKIM-Signature: /m.test(m.raw.toString())),
        'DKIM-Signature on each copy',
      )
      const verp = copy(carol).mailFrom
      check('VERP return path', verp.endsWith(`@${n.bounceDomain}`), verp)

      // A click: the 302 goes to the link as written, and only there.
      const html = String((await simpleParser(copy(ann).raw)).html)
      const click = /href="([^"]*\/c\/[^"]+)"/.exec(html)?.[1]
      const pixel = /<img src="([^"]*\/o\/[^"]+)"/.exec(html)?.[1]
      if (!click || !pixel) problems.push('no tracked link or no pixel in the HTML')
      else {
        const res = await fetch(click.replace(n.publicUrl, n.httpUrl), { redirect: 'manual' })
        check('tracked link', res.status === 302 && res.headers.get('location') === TRACKED_URL, `${res.status} → ${res.headers.get('location')}`)
        await until(n.reporting, () => seen.some((e) => e.type === 'clicked'), 'the click event')
        const img = await fetch(pixel.replace(n.publicUrl, n.httpUrl))
        const gif = Buffer.from(await img.arrayBuffer())
        check('open pixel', img.status === 200 && gif.subarray(0, 6).toString() === 'GIF89a', `${img.status} ${img.headers.get('content-type')}`)
      }

      // RFC 8058: the mail client POSTs List-Unsubscribe=One-Click to the header's URL.
      const unsubscribe = /^List-Unsubscribe: <(https?:[^>]+)>/m.exec(raw(bob))?.[1]
      check(
        'List-Unsubscribe-Post',
        /^List-Unsubscribe-Post: List-Unsubscribe=One-Click\r?$/m.test(raw(bob)),
        unsubscribe ?? 'no List-Unsubscribe URL',
      )
      if (unsubscribe) {
        const res = await fetch(unsubscribe.replace(n.publicUrl, n.httpUrl), {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: 'List-Unsubscribe=One-Click',
        })
        check('one-click unsubscribe', res.status === 200, String(res.status))
      }

      // The receiving side's reports, sent to the relay as anyone on the internet would.
      const messageId = /^Message-ID: (.+?)\r?$/im.exec(raw(carol))?.[1] ?? ''
      const mta = client(false)
      const bounced = await mta.sendMail({ envelope: { from: '', to: [verp] }, raw: dsn(verp, carol, messageId) })
      check('DSN to the VERP address', bounced.response.startsWith('250'), bounced.response)
      const complained = await mta.sendMail({
        envelope: { from: 'fbl@isp.example', to: [n.fblAddress] },
        raw: arf(n.fblAddress, dave, messageId, n.from),
      })
      check('ARF report to FBL_ADDRESS', complained.response.startsWith('250'), complained.response)
      mta.close()

      // Now nobody who left may be mailed: refused at RCPT, the others go on.
      const again = (await app.sendMail({ from: n.from, to: [bob, carol, dave, erin], subject: 'More news', html: HTML })) as {
        accepted: string[]
        rejected: string[]
        rejectedErrors?: Array<{ response: string }>
      }
      app.close()
      const refused = [bob, carol, dave].every((r) => again.rejected.includes(r))
      check(
        'suppressed (unsub., bounce, FBL)',
        refused && again.accepted.join() === erin && again.rejectedErrors!.every((e) => e.response.startsWith('550 5.7.1')),
        `${again.rejected.length} refused (${again.rejectedErrors?.[0]?.response}), ${again.accepted.join()} accepted`,
      )
      for (const [who, reason] of [
        [bob, 'unsubscribe'],
        [carol, 'hard-bounce'],
        [dave, 'complaint'],
      ] as const) {
        const found = n.suppressions.check(who, n.from)
        if (found?.reason !== reason) problems.push(`${who} is not suppressed for ${reason} (${found?.reason})`)
      }
      await until(n.reporting, () => seen.filter((e) => e.type === 'delivered').length >= 5, 'the delivery to the one left')
      // The reports were read, not passed on: the upstream has the four copies and erin's only.
      if (n.upstream.messages.length !== 5) problems.push(`${n.upstream.messages.length} messages upstream, expected 5`)

      // Every event, at the webhook, signed.
      const expected: Array<[ReportEvent['type'], string | undefined]> = [
        ['accepted', undefined],
        ...[ann, bob, carol, dave].map((r) => ['delivered', r] as [ReportEvent['type'], string]),
        ['clicked', ann],
        ['opened', ann],
        ['unsubscribed', bob],
        ['bounced', carol],
        ['complained', dave],
        ['dropped', bob],
        ['dropped', carol],
        ['dropped', dave],
        ['delivered', erin],
      ]
      const missingLocal = expected.filter(([type, r]) => !seen.some((e) => e.type === type && (!r || e.recipient === r)))
      if (missingLocal.length) problems.push(`events not recorded: ${missingLocal.map((m) => m.join(' ')).join(', ')}`)
      const bounce = seen.find((e) => e.type === 'bounced')
      if (bounce && (bounce.type !== 'bounced' || bounce.bounceType !== 'hard' || bounce.sender !== n.from || !bounce.tags.includes('winter-2026')))
        problems.push(`the bounce is not tied to the message: ${JSON.stringify(bounce)}`)
      if (n.receiver) {
        await n.webhooks.idle(20_000)
        const got = n.receiver.events
        const missing = expected.filter(([type, r]) => !got.some((e) => e.type === type && (!r || e.recipient === r)))
        check(
          'webhook: every event, signed',
          missing.length === 0 && n.receiver.unverified === 0 && seen.every((e) => got.some((g) => g.id === e.id)),
          `${got.length} verified (${[...new Set(got.map((e) => e.type))].join(', ')}), ${n.receiver.unverified} unverified` +
            (missing.length ? `; missing ${missing.map((m) => m.join(' ')).join(', ')}` : ''),
        )
      } else line('webhook', `posting to ${process.env.WEBHOOK_URL ?? 'WEBHOOK_URL'}; backlog ${JSON.stringify(n.webhooks.backlog())}`)

      const dashboard = await fetch(`${n.httpUrl}/dashboard`)
      check('dashboard', dashboard.status === 200 && (await dashboard.text()).includes('<'), String(dashboard.status))
      const status = (await (await fetch(`${n.httpUrl}/status`)).json()) as { today?: { delivered?: number } | null }
      check('status today', (status.today?.delivered ?? 0) >= 5, JSON.stringify(status.today))
    }
    const unauthenticated = await client(false)
      .sendMail({ from: n.from, to: 'x@elsewhere.example', text: 'x' })
      .then(
        (i) => i.response,
        (e: { response?: string; message: string }) => e.response ?? e.message,
      )
    check('without a login', unauthenticated.startsWith('554 5.7.1'), unauthenticated)
    const forged = await client(false)
      .sendMail({ envelope: { from: '', to: [`bounces+forged.x@${n.bounceDomain}`] }, raw: dsn('x', 'x@y.example', '<x@y>') })
      .then(
        (i) => i.response,
        (e: { response?: string; message: string }) => e.response ?? e.message,
      )
    check('forged VERP address', forged.startsWith('550 5.1.1'), forged)
    const report = await checkOpenRelay({ host: n.host, port: n.port, domain: n.bounceDomain })
    check('open-relay tests', report.passed, `${report.tests.filter((t) => !t.accepted).length} of ${report.tests.length} refused`)
    for (const t of report.tests.filter((t) => t.accepted)) problems.push(`OPEN RELAY: ${t.name} (${t.mailFrom} → ${t.rcptTo}): ${t.reply}`)
  } catch (error) {
    problems.push(`self-check failed: ${(error as Error).message}`)
  } finally {
    stop()
  }
  return problems
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const n = await startNewsletter()
  console.log(`newsletter relay listening on ${n.host}:${n.port} (STARTTLS, AUTH after TLS)\n\n${n.relay.pipeline.describe()}\n`)
  console.log(`login: ${n.login.user}${process.env.SMTP_PASS ? '' : ` / ${n.login.pass}`}`)
  console.log(`tracking links: ${n.publicUrl}   dashboard: ${n.httpUrl}/dashboard   data: ${n.dataDir}`)
  if (n.receiver) console.log(`no WEBHOOK_URL: events go to a local receiver at ${n.receiver.url}`)
  if (n.upstream) console.log(`no UPSTREAM_HOST: forwarding to a local test server on port ${n.upstream.port}\n`)
  if (process.argv.includes('--once')) {
    const problems = await selfCheck(n)
    for (const p of problems) console.error(p)
    await n.close()
    console.log(problems.length ? `newsletter --once: ${problems.length} problems` : 'newsletter --once: OK')
    process.exitCode = problems.length ? 1 : 0
  } else {
    process.once('SIGINT', () => void n.close().then(() => process.exit(0)))
  }
}
