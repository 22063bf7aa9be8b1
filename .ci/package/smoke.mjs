// The package check, ESM: a relay built from the installed tarball signs one message with DKIM
// and forwards it to a test upstream; the upstream must receive it signed.
import { generateKeyPairSync } from 'node:crypto'
import { createRelay, dkimSign, relayPolicy, smtpTransport } from 'relaychain'
import { startSink } from 'relaychain/testing'
import sendOne from './smtp-client.cjs'

const sink = await startSink()
const relay = createRelay({
  stages: [
    relayPolicy({ networks: ['127.0.0.1/32'] }),
    dkimSign({ keys: { 'example.com': { selector: 's1', privateKey: generateKeyPairSync('ed25519').privateKey } } }),
  ],
  transport: smtpTransport({ host: sink.host, port: sink.port }),
  listeners: [{ host: '127.0.0.1', port: 0, mode: 'submission' }],
})
const [bound] = await relay.listen()
const reply = await sendOne(bound.port, {
  from: 'ann@example.com',
  to: 'bob@example.org',
  message: 'From: ann@example.com\nTo: bob@example.org\nSubject: package check\n\nHello.\n',
})
const [received] = await sink.waitForMessages(1)
await relay.close()
await sink.close()
const text = received.raw.toString()
if (!/^250 2\.0\.0 /.test(reply) || !/^DKIM-Signature: v=1; a=ed25519-sha256;/m.test(text) || !text.includes('Subject: package check'))
  throw new Error(`ESM: unexpected result ${reply}\n${text}`)
console.log(`ESM: ${reply}, signed (${process.version})`)
