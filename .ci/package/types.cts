// Type-checked against the installed tarball (CommonJS declarations), with skipLibCheck off.
import relaychain = require('relaychain')
import testing = require('relaychain/testing')

const relay: relaychain.Relay = relaychain.createRelay({
  stages: [relaychain.relayPolicy({ domains: ['example.org'] })],
  transport: testing.memoryTransport(),
})
const code: relaychain.RelayErrorCode = 'ERR_RELAY_MISSING_DEPENDENCY'
void relay
void code
