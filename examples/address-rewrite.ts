/**
 * Address rewriting for a domain migration, with forwarding: the company moved from old.example
 * to new.example. The relay on loopback rewrites old addresses (envelope and From/To/Cc) to new
 * ones, expands team@new.example to its members, forwards bob@new.example to his external
 * mailbox with SRS (so that SPF at the destination passes), and reverses bounces to SRS addresses.
 *
 *   npx tsx examples/address-rewrite.ts
 *
 * Settings (environment variables):
 *   SRS_SECRET      HMAC secret of SRS addresses (default: a demo secret; use a long random one)
 *   SRS_DOMAIN      the domain of SRS addresses (default srs.new.example)
 *   RELAY_PORT      port of the relay on 127.0.0.1 (default 0: a free port)
 *   UPSTREAM_HOST   upstream SMTP server (default: a test server started here, on 127.0.0.1)
 *   UPSTREAM_PORT   its port
 *
 * It sends four transactions, prints what the upstream received and each refusal, and exits.
 */
import { createTransport } from 'nodemailer'
import { addressRewrite, createRelay, relayPolicy, smtpTransport } from 'relaychain'
import { checkOpenRelay, type Sink, startSink } from 'relaychain/testing'

const srsDomain = process.env.SRS_DOMAIN ?? 'srs.new.example'
const ours = ['new.example', 'old.example', srsDomain]

const sink: Sink | undefined = process.env.UPSTREAM_HOST ? undefined : await startSink()
const relay = createRelay({
  stages: [
    // Relay permission comes BEFORE address-rewrite, so that it judges the recipient the client
    // gave: a bounce to SRS0=…@srs.new.example is for one of our domains, while the address it
    // reverses to (the original sender, elsewhere) is not. Rewritten and expanded recipients keep
    // the permission their original got.
    relayPolicy({ domains: ours }),
    // The migration, Postfix canonical-style: envelope and header fields.
    addressRewrite({
      sender: { '@old.example': '@new.example' },
      recipients: { '@old.example': '@new.example', 'team@new.example': ['ann@new.example', 'carl@new.example'] },
    }),
    // Forwarding, Postfix virtual-style: the envelope only (Bob still sees his address in To),
    // with SRS for the senders of forwarded mail.
    addressRewrite({
      recipients: { 'bob@new.example': 'bob@mailbox.example' },
      headers: [],
      srs: { secret: process.env.SRS_SECRET ?? 'demo secret, change me', domain: srsDomain, localDomains: ['new.example', 'old.example'] },
    }),
  ],
  transport: smtpTransport({ host: process.env.UPSTREAM_HOST ?? sink!.host, port: Number(process.env.UPSTREAM_PORT ?? sink!.port) }),
  listeners: [{ host: '127.0.0.1', port: Number(process.env.RELAY_PORT ?? 0), mode: 'submission' }],
})
const [bound] = await relay.listen()
console.log(`relay on ${bound!.host}:${bound!.port}\n${relay.pipeline.describe()}\n`)

const client = createTransport({ host: bound!.host, port: bound!.port, ignoreTLS: true })
const send = async (what: string, mail: Parameters<typeof client.sendMail>[0]) => {
  try {
    const info = await client.sendMail(mail)
    console.log(`${what}: ${info.response}`)
  } catch (err) {
    console.log(`${what}: refused, ${(err as { response?: string }).response}`)
  }
}
try {
  await send('1. an old address writes to the team', {
    from: '"Dana (Sales)" <dana@old.example>',
    to: 'team@new.example',
    cc: 'Erin <erin@old.example>',
    subject: 'Migration',
    text: 'We moved.',
  })
  await send('2. outside mail to Bob, forwarded', { from: 'alice@origin.example', to: 'bob@new.example', subject: 'Hi Bob', text: 'Hello.' })
  const forwarded = sink && (await sink.waitForMessages(2))[1]!.mailFrom
  if (forwarded) {
    await send('3. a bounce to the SRS address', { envelope: { from: '', to: [forwarded] }, raw: 'Subject: Undeliverable\r\n\r\nBounce.\r\n' })
    const forged = forwarded.replace(/^SRS0=[^=]+/, 'SRS0=AAAA')
    await send('4. a bounce to a forged SRS address', { envelope: { from: '', to: [forged] }, raw: 'Subject: Undeliverable\r\n\r\nBounce.\r\n' })
  }
  if (sink) {
    console.log('\nwhat the upstream received:')
    for (const m of await sink.waitForMessages(3)) {
      const header = (name: string) => new RegExp(`^${name}: .*$`, 'mi').exec(m.raw.toString())?.[0]
      console.log(`  MAIL FROM:<${m.mailFrom}> RCPT TO:${m.rcptTo.map((r) => `<${r}>`).join(',')}`)
      for (const line of [header('From'), header('To'), header('Cc')].filter(Boolean)) console.log(`    ${line}`)
    }
  }
  // Its relay policy accepts mail for our domains only: the classic relay tests must all fail.
  const check = await checkOpenRelay({ host: bound!.host, port: bound!.port, domain: 'new.example' })
  console.log(`\nopen-relay tests: ${check.tests.filter((t) => !t.accepted).length} of ${check.tests.length} refused`)
  if (!check.passed) process.exitCode = 1
} finally {
  client.close()
  await relay.close()
  await sink?.close()
}
