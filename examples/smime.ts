/**
 * S/MIME: a relay that signs mail from alice@example.test and encrypts it for bob@example.test,
 * and the openssl commands that check the result by hand.
 *
 *   npx tsx examples/smime.ts
 *
 * It makes a throwaway CA and two certificates with the `openssl` binary (`apt-get install
 * openssl`), starts a relay on 127.0.0.1 whose chain signs (smime-sign) then encrypts
 * (smime-encrypt), in front of an upstream (a local test SMTP server unless UPSTREAM_HOST is
 * set), sends a message to bob@example.test through it, writes what left, then decrypts and
 * verifies it with openssl. A second message, to a recipient without a certificate, is refused.
 * Without UPSTREAM_HOST nothing leaves the machine.
 *
 * Environment (defaults in brackets):
 *   SMIME_DIR    where certificates, keys and the relayed message are written  [a new temp dir]
 *   RELAY_PORT   the relay's port on 127.0.0.1; 0 picks a free one              [0]
 *   UPSTREAM_HOST  deliver to this SMTP server (one that takes mail for example.test)
 *                                              [unset: a local test server on 127.0.0.1]
 *   UPSTREAM_PORT  its port                                                     [25]
 */
import { execFileSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createTransport } from 'nodemailer'
import { archiveTap, createRelay, relayPolicy, smimeEncrypt, smimeSign, smtpTransport } from 'relaychain'
import { checkOpenRelay, memoryTransport, startSink } from 'relaychain/testing'

const dir = process.env.SMIME_DIR ?? mkdtempSync(join(tmpdir(), 'relaychain-smime-'))
const port = Number(process.env.RELAY_PORT ?? 0)
const upstreamHost = process.env.UPSTREAM_HOST
const upstreamPort = Number(process.env.UPSTREAM_PORT ?? 25)
mkdirSync(dir, { recursive: true })
const file = (name: string) => join(dir, name)
const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] }).toString()

// 1. A demo CA, a signing certificate for Alice and an encryption certificate for Bob.
openssl(
  'req',
  '-x509',
  '-newkey',
  'rsa:2048',
  '-nodes',
  '-keyout',
  'ca.key',
  '-out',
  'ca.pem',
  '-days',
  '30',
  '-subj',
  '/CN=relaychain demo CA',
  '-addext',
  'basicConstraints=critical,CA:TRUE',
  '-addext',
  'keyUsage=critical,keyCertSign',
)
for (const who of ['alice', 'bob']) {
  openssl(
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    `${who}.key`,
    '-out',
    `${who}.pem`,
    '-days',
    '30',
    '-subj',
    `/CN=${who}`,
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca.key',
    '-addext',
    'basicConstraints=CA:FALSE',
    '-addext',
    'keyUsage=digitalSignature,keyEncipherment',
    '-addext',
    'extendedKeyUsage=emailProtection',
    '-addext',
    `subjectAltName=email:${who}@example.test`,
  )
}
console.log(`certificates and keys in ${dir}`)

// 2. The relay: accept mail for example.test, sign it as its sender, encrypt it for its
//    recipients. The archive tap keeps a copy of each message as the transport sent it.
const sign = smimeSign({ certificates: { 'alice@example.test': { cert: readFileSync(file('alice.pem')), key: readFileSync(file('alice.key')) } } })
const encrypt = smimeEncrypt({ certificates: { 'bob@example.test': readFileSync(file('bob.pem')) }, withoutCertificate: 'reject' })
const sink = upstreamHost ? undefined : await startSink()
const outgoing = memoryTransport()
const relay = createRelay({
  stages: [relayPolicy({ domains: ['example.test'] }), sign, encrypt, archiveTap({ to: outgoing, copy: 'delivered' })],
  transport: smtpTransport({ host: upstreamHost ?? sink!.host, port: sink?.port ?? upstreamPort }),
  listeners: [{ host: '127.0.0.1', port, mode: 'submission' }],
})
const [bound] = await relay.listen()
console.log(`\n${relay.pipeline.describe()}\n`)

// 3. Send one message to Bob, and one to Carol, who has no certificate.
const client = createTransport({ host: bound!.host, port: bound!.port, ignoreTLS: true })
const mail = { from: 'Alice <alice@example.test>', subject: 'Lab results', text: 'Hello Bob,\n\nyour results are fine.\n\nAlice\n' }
const sent = await client.sendMail({ ...mail, to: 'bob@example.test' })
console.log(`to bob:   ${sent.response}`)
const refused = await client.sendMail({ ...mail, to: 'carol@example.test' }).catch((err: { response: string }) => err)
console.log(`to carol: ${(refused as { response: string }).response}`)

// 4. What left for the upstream: readable headers, an encrypted body.
const [received] = sink ? await sink.waitForMessages(1) : outgoing.messages
writeFileSync(file('message.eml'), received!.raw)
const text = received!.raw.toString()
console.log(
  `\n${sink ? 'the test upstream got' : `sent to ${upstreamHost}:${upstreamPort}`} (${file('message.eml')}):\n${text.slice(0, text.indexOf('\r\n\r\n') + 80)}…\n`,
)

// 5. Check it by hand: decrypt as Bob, then verify Alice's signature against the demo CA.
const decrypt = ['cms', '-decrypt', '-in', 'message.eml', '-recip', 'bob.pem', '-inkey', 'bob.key', '-out', 'decrypted.eml']
const verify = ['cms', '-verify', '-in', 'decrypted.eml', '-CAfile', 'ca.pem', '-out', 'content.txt']
console.log(`check it by hand:\n  cd ${dir}\n  openssl ${decrypt.join(' ')}\n  openssl ${verify.join(' ')}\n  cat content.txt\n`)
openssl(...decrypt)
execFileSync('openssl', verify, { cwd: dir, stdio: 'inherit' })
console.log(`\ncontent.txt (the signed entity):\n${readFileSync(file('content.txt'), 'utf8')}`)

const check = await checkOpenRelay({ host: bound!.host, port: bound!.port, domain: 'example.test' })
console.log(`open-relay tests: ${check.tests.filter((t) => !t.accepted).length} of ${check.tests.length} refused`)
if (!check.passed) process.exitCode = 1

client.close()
await relay.close()
await sink?.close()
