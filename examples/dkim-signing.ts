/**
 * DKIM signing: make (or load) an RSA-2048 and an Ed25519 key, print the DNS TXT records to
 * publish for them, relay one message through a signing chain to an upstream (a local test
 * server unless UPSTREAM_HOST is set), and show the signatures it left with, checked by
 * mailauth's verifier against those records. Runs unattended and exits; non-zero if a signature
 * does not verify.
 *
 *   npx tsx examples/dkim-signing.ts
 *
 * Environment (defaults in brackets):
 *   DKIM_DOMAIN            the domain you sign for                              [example.com]
 *   DKIM_RSA_SELECTOR      selector of the RSA key                              [rsa<year>]
 *   DKIM_ED25519_SELECTOR  selector of the Ed25519 key                          [ed<year>]
 *   DKIM_KEYS_DIR          read the keys from <dir>/<selector>.pem, creating them (mode 0600)
 *                          if missing; unset: fresh keys in memory, forgotten at exit  [unset]
 *   RELAY_PORT             port of the relay on 127.0.0.1; 0 picks a free one   [0]
 *   UPSTREAM_HOST          deliver to this SMTP server   [unset: a local test server on 127.0.0.1]
 *   UPSTREAM_PORT          its port                                             [25]
 *   MAIL_TO                the recipient of the signed message                  [bob@example.org]
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { dkimVerify } from 'mailauth'
import { createTransport } from 'nodemailer'
import { archiveTap, createRelay, type DkimKey, dkimDnsRecord, dkimSign, relayPolicy, smtpTransport } from 'relaychain'
import { memoryTransport, startSink } from 'relaychain/testing'

const year = new Date().getUTCFullYear()
const env = {
  domain: process.env.DKIM_DOMAIN ?? 'example.com',
  rsaSelector: process.env.DKIM_RSA_SELECTOR ?? `rsa${year}`,
  edSelector: process.env.DKIM_ED25519_SELECTOR ?? `ed${year}`,
  keysDir: process.env.DKIM_KEYS_DIR,
  port: Number(process.env.RELAY_PORT ?? 0),
  upstreamHost: process.env.UPSTREAM_HOST,
  upstreamPort: Number(process.env.UPSTREAM_PORT ?? 25),
  to: process.env.MAIL_TO ?? 'bob@example.org',
}

/** The key for `selector`: from DKIM_KEYS_DIR if there is one there, else newly generated. */
function key(selector: string, make: () => KeyObject): DkimKey {
  const file = env.keysDir && join(env.keysDir, `${selector}.pem`)
  if (file && existsSync(file)) return { selector, privateKey: readFileSync(file) }
  const privateKey = make()
  if (file) {
    mkdirSync(env.keysDir!, { recursive: true })
    writeFileSync(file, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600, flag: 'wx' })
    console.log(`wrote ${file}`)
  }
  return { selector, privateKey }
}

const keys = [
  key(env.rsaSelector, () => generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey),
  key(env.edSelector, () => generateKeyPairSync('ed25519').privateKey),
]

// 1. What to publish in DNS, one TXT record per selector.
const records = keys.map((k) => dkimDnsRecord({ domain: env.domain, ...k }))
console.log('Publish these DNS TXT records (zone file syntax):\n')
for (const record of records) console.log(`${record.zone}\n`)

// 2. A relay that signs mail from DKIM_DOMAIN with both keys, in front of the upstream. The
//    archive tap keeps a copy of each message as the transport sent it, for the check in 3.
const sink = env.upstreamHost ? undefined : await startSink()
const sent = memoryTransport()
const relay = createRelay({
  // Outgoing mail from our own network (here: this machine), signed on its way out.
  stages: [relayPolicy({ networks: ['127.0.0.1/32'] }), dkimSign({ keys: { [env.domain]: keys } }), archiveTap({ to: sent, copy: 'delivered' })],
  transport: smtpTransport({ host: env.upstreamHost ?? sink!.host, port: sink?.port ?? env.upstreamPort }),
  listeners: [{ host: '127.0.0.1', port: env.port, mode: 'submission' }],
})
const [bound] = await relay.listen()
const client = createTransport({ host: bound!.host, port: bound!.port, ignoreTLS: true })
const answer = await client.sendMail({ from: `Ann <ann@${env.domain}>`, to: env.to, subject: 'Signed by relaychain', text: 'Hello.\n' })
console.log(`relay answered: ${answer.response}`)

// 3. The message as it left for the upstream, and what a verifier makes of its signatures. The
//    verifier's DNS answers from the records above, so nothing is looked up for real.
const [received] = sink ? await sink.waitForMessages(1) : sent.messages
const fields = received!.raw
  .toString()
  .split('\r\n\r\n')[0]!
  .split(/\r\n(?![ \t])/)
const shown = fields.filter((f) => /^(DKIM-Signature|From|Subject):/i.test(f))
console.log(
  `\n${sink ? 'The test upstream received' : `Sent to ${env.upstreamHost}:${env.upstreamPort}`} (among other fields):\n${shown.join('\n').replace(/\r\n/g, '\n')}\n`,
)
const published = new Map(records.map((r) => [r.name, r.value]))
const { results } = await dkimVerify(received!.raw, {
  resolver: async (name: string) => {
    const value = published.get(name)
    if (value === undefined) throw Object.assign(new Error(`no record for ${name}`), { code: 'ENOTFOUND' })
    return [[value]]
  },
})
for (const result of results) console.log(`verified: ${result.info}`)
const passed = results.filter((r) => r.status.result === 'pass').length

client.close()
await relay.close()
await sink?.close()
if (passed !== keys.length) {
  console.error(`expected ${keys.length} passing signatures, got ${passed}`)
  process.exit(1)
}
