// The package check, CommonJS: every entry point loads with require(), and one message goes
// through a relay to a test upstream.
const assert = require('node:assert/strict')
const relaychain = require('relaychain')
const testing = require('relaychain/testing')
const { dkimSign } = require('relaychain/stages/dkim-sign')
const { relayPolicy } = require('relaychain/stages/relay-policy')
const sendOne = require('./smtp-client.cjs')

assert.equal(typeof dkimSign, 'function')
assert.equal(relaychain.relayPolicy, relayPolicy)
assert.ok(new relaychain.RelayError('ERR_RELAY_INVALID_OPTION', 'x') instanceof relaychain.RelayError)

;(async () => {
  const sink = await testing.startSink()
  const relay = relaychain.createRelay({
    stages: [relayPolicy({ domains: ['example.org'] })],
    transport: relaychain.smtpTransport({ host: sink.host, port: sink.port }),
    listeners: [{ host: '127.0.0.1', port: 0, mode: 'submission' }],
  })
  const [bound] = await relay.listen()
  const reply = await sendOne(bound.port, { from: 'ann@example.com', to: 'bob@example.org', message: 'Subject: cjs\n\nHello.\n' })
  const [received] = await sink.waitForMessages(1)
  await relay.close()
  await sink.close()
  assert.match(reply, /^250 2\.0\.0 /)
  assert.match(received.raw.toString(), /Subject: cjs/)
  console.log(`CJS: ${reply} (${process.version})`)
})().catch((err) => {
  console.error(err)
  process.exit(1)
})
