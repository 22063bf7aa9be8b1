/**
 * A disclaimer on outgoing mail: a relay on loopback adds the company disclaimer to every message
 * (a different one for a subsidiary's senders), forwards to an upstream, and prints what arrived.
 *
 *   npx tsx examples/disclaimer.ts
 *
 * Settings (environment variables):
 *   DISCLAIMER_TEXT   the disclaimer (default: a confidentiality notice)
 *   RELAY_PORT        port of the relay on 127.0.0.1 (default 0: a free port)
 *   UPSTREAM_HOST     upstream SMTP server (default: a test server started here, on 127.0.0.1)
 *   UPSTREAM_PORT     its port
 *
 * It sends two messages (HTML with an attachment, and plain text from the subsidiary), prints the
 * text each arrived with, and exits.
 */
import { createTransport } from 'nodemailer'
import { createRelay, disclaimer, relayPolicy, smtpTransport } from 'relaychain'
import { type Sink, startSink } from 'relaychain/testing'

const text =
  process.env.DISCLAIMER_TEXT ??
  'This e-mail is confidential and intended only for its addressee.\nIf you received it in error, please tell the sender and delete it.'

const sink: Sink | undefined = process.env.UPSTREAM_HOST ? undefined : await startSink()
const relay = createRelay({
  // Relay permission first (here: clients on this machine; a real gateway adds SMTP AUTH); the
  // disclaimer after the scanners and before any signer (DKIM, S/MIME).
  stages: [
    relayPolicy({ networks: ['127.0.0.1'] }),
    disclaimer({ text, domains: { 'subsidiary.example': { text: 'Subsidiary Ltd · registered in England, no. 01234567.' } } }),
  ],
  transport: smtpTransport({ host: process.env.UPSTREAM_HOST ?? sink!.host, port: Number(process.env.UPSTREAM_PORT ?? sink!.port) }),
  listeners: [{ host: '127.0.0.1', port: Number(process.env.RELAY_PORT ?? 0), mode: 'submission' }],
})
const [bound] = await relay.listen()
console.log(`relay on ${bound!.host}:${bound!.port}\n${relay.pipeline.describe()}\n`)

const csv = Buffer.from('quarter,revenue\nQ1,100\nQ2,120\n')
const client = createTransport({ host: bound!.host, port: bound!.port, ignoreTLS: true })
try {
  await client.sendMail({
    from: 'Ann <ann@example.com>',
    to: 'bob@example.org',
    subject: 'Quarterly figures',
    text: 'Hi Bob,\n\nthe figures are attached.\n\nAnn',
    html: '<html><body><p>Hi Bob,</p><p>the figures are attached.</p><p>Ann</p></body></html>',
    attachments: [{ filename: 'figures.csv', content: csv }],
  })
  await client.sendMail({ from: 'carl@subsidiary.example', to: 'bob@example.org', subject: 'Hello', text: 'Hello from the subsidiary.' })
  if (sink) {
    const { simpleParser } = await import('mailparser')
    for (const message of await sink.waitForMessages(2)) {
      const parsed = await simpleParser(message.raw)
      console.log(`--- ${parsed.subject} (from ${message.mailFrom}) ---\n${parsed.text}`)
      if (parsed.html) console.log(`HTML ends with: …${parsed.html.slice(-180)}`)
      for (const a of parsed.attachments) console.log(`attachment ${a.filename}: ${a.content.equals(csv) ? 'identical to what was sent' : 'CHANGED'}`)
      console.log()
    }
  }
} finally {
  client.close()
  await relay.close()
  await sink?.close()
}
