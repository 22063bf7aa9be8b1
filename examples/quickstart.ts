/**
 * Quick start: a relay on localhost with a small chain, delivering into a local Maildir.
 *
 *   npm run demo                 sends two demo messages, then keeps serving until Ctrl-C
 *   npm run demo -- --once       sends the demo messages and exits (what CI runs)
 *
 * Environment (defaults in brackets):
 *   RELAY_HOST      address the relay listens on                     [127.0.0.1]
 *   RELAY_PORT      port; 0 picks a free one                         [2525]
 *   RELAY_DOMAINS   domains the relay accepts mail for, comma-separated [example.test]
 *   MAILDIR         where accepted mail is stored                    [./demo-mail]
 *   UPSTREAM_HOST   forward to this SMTP server instead of the Maildir [unset]
 *   UPSTREAM_PORT   its port                                         [25]
 */
import { createTransport } from 'nodemailer'
import { createRelay, fileTransport, type Logger, RelayError, type Stage, smtpTransport } from 'relaychain'

const env = {
  host: process.env.RELAY_HOST ?? '127.0.0.1',
  port: Number(process.env.RELAY_PORT ?? 2525),
  domains: (process.env.RELAY_DOMAINS ?? 'example.test').split(',').map((d) => d.trim().toLowerCase()),
  maildir: process.env.MAILDIR ?? './demo-mail',
  upstreamHost: process.env.UPSTREAM_HOST,
  upstreamPort: Number(process.env.UPSTREAM_PORT ?? 25),
}
const once = process.argv.includes('--once')

/** Relay policy for the demo: mail for our own domains is accepted from anyone, nothing else. */
const ownDomains: Stage = {
  name: 'own-domains',
  grantsRelay: true,
  rcptTo(_tx, to) {
    const domain = to.address.slice(to.address.lastIndexOf('@') + 1).toLowerCase()
    if (env.domains.includes(domain)) return { relay: true, reason: `${domain} is ours` }
  },
}

/** Prints what each hook saw, so you can follow a message through the chain. */
const narrate: Stage = {
  name: 'narrate',
  connect: (session) => say(`connect  ${session.remoteAddress} on ${session.listener}`),
  mailFrom: (_tx, from) => say(`MAIL     <${from?.address ?? ''}>`),
  rcptTo: (_tx, to) => say(`RCPT     <${to.address}>`),
  async data(msg, next) {
    say(`DATA     ${msg.id}: "${msg.headers.get('subject') ?? ''}" for ${msg.envelope.rcptTo.map((r) => r.address).join(', ')}`)
    msg.headers.add('X-Relayed-By', 'relaychain quickstart')
    const report = await next()
    say(`report   ${report.accepted.length} accepted, ${report.rejected.length} rejected: ${report.response ?? ''}`)
    return report
  },
  modifies: 'trace',
}

/** The transaction lines the relay logs, one per message, in a readable form. */
const logger: Logger = {
  debug() {},
  // The chain is printed below; the start-up line would repeat it.
  info: (fields, message) => message !== 'relay listening' && say(`log      ${message} ${JSON.stringify(fields)}`),
  warn: (fields, message) => say(`warn     ${message} ${JSON.stringify(fields)}`),
  error: (fields, message) => say(`error    ${message} ${JSON.stringify(fields)}`),
}

function say(line: string): void {
  console.log(`  ${line}`)
}

const transport = env.upstreamHost
  ? smtpTransport({ host: env.upstreamHost, port: env.upstreamPort })
  : fileTransport({ dir: env.maildir, format: 'maildir' })

const relay = createRelay({
  stages: [ownDomains, narrate],
  transport,
  listeners: [{ host: env.host, port: env.port, mode: 'submission' }],
  logger,
})

const [bound] = await relay.listen().catch((err: unknown) => {
  if (!(err instanceof RelayError) || err.code !== 'ERR_RELAY_LISTEN') throw err
  console.error(`${err.message}\nPick another port, e.g. RELAY_PORT=2526 npm run demo (RELAY_PORT=0 picks a free one).`)
  process.exit(1)
})
console.log(`relaychain quick start: listening on ${bound!.host}:${bound!.port}\n\n${relay.pipeline.describe()}\n`)

const client = createTransport({ host: bound!.host, port: bound!.port, secure: false, ignoreTLS: true })
const to = `alice@${env.domains[0]}`
console.log(`1. a message for <${to}>, a domain this relay is responsible for:`)
const sent = await client.sendMail({ from: 'demo@sender.example', to, subject: 'Hello from the quick start', text: 'It works.\n' })
console.log(`   → ${sent.response}\n`)

console.log('2. a message for <victim@elsewhere.example>: a third-party relay attempt:')
try {
  await client.sendMail({ from: 'spammer@sender.example', to: 'victim@elsewhere.example', subject: 'Relay me', text: 'No.\n' })
  console.log('   → accepted?! this must not happen')
  process.exitCode = 1
} catch (err) {
  console.log(`   → refused: ${(err as { response?: string }).response}\n`)
}
client.close()

console.log(env.upstreamHost ? `Accepted mail went to ${env.upstreamHost}:${env.upstreamPort}.` : `Accepted mail is in ${env.maildir}/new/.`)
if (once) {
  await relay.close()
} else {
  console.log(`\nSend your own, e.g.:\n  swaks --server ${bound!.host}:${bound!.port} --from you@sender.example --to bob@${env.domains[0]}`)
  console.log('Serving until Ctrl-C.')
  process.once('SIGINT', () => {
    console.log('\nclosing…')
    void relay.close().then(() => process.exit(0))
  })
}
