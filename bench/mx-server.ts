/**
 * The relay under test for bench/mx.ts, in its own process: a relay with one stage that grants
 * relaying, delivering either through `smtpTransport` to the sink or through `mxTransport` to the
 * same sink as the one MX host of `example.org` (a loopback DNS server in this process answers;
 * the transport's DNS cache, MTA-STS lookup and DANE check run as in production, with nothing
 * to find). Usage: `node --import tsx bench/mx-server.ts <smtp|mx> <sink-port> <connections>`.
 * Prints {"port"}; on stdin `mark` resets the counters, `stats` prints {"ok","failed","cpuMicros"}.
 */
import { createInterface } from 'node:readline'
import { createRelay, mxTransport, smtpTransport, type Transport } from '../src/index.js'
import { startDnsServer } from '../test/helpers/dns/server.js'
import { a, mx, testZone, txt } from '../test/helpers/dns/zones.js'

const [impl = 'smtp', sinkPortArg = '2600', connectionsArg = '20'] = process.argv.slice(2)
const sinkPort = Number(sinkPortArg)
const connections = Number(connectionsArg)
let ok = 0
let failed = 0

async function transport(): Promise<Transport> {
  if (impl === 'smtp') return smtpTransport({ host: '127.0.0.1', port: sinkPort, pool: { maxConnections: connections, maxMessages: 1_000_000 } })
  const dns = await startDnsServer([
    testZone('example.org', [mx('example.org', 10, 'mx.example.org'), a('mx.example.org', '127.0.0.1'), txt('example.org', 'v=spf1 -all')], {
      ttl: 3600,
    }),
  ])
  return mxTransport({
    dns: dns.address,
    port: sinkPort,
    allowNetworks: ['127.0.0.0/8'],
    name: 'relay.example.com',
    concurrency: { perHost: connections },
    pool: { maxMessages: 1_000_000 },
  })
}

const relay = createRelay({
  stages: [{ name: 'grant-all', grantsRelay: true, rcptTo: () => ({ relay: true }) }],
  transport: await transport(),
  listeners: [{ port: 0, mode: 'submission' }],
  limits: { connections: 1000, clientLimitExceptions: ['127.0.0.0/8'] },
  logger: {
    debug() {},
    info(_fields: unknown, msg?: string) {
      if (msg === 'message relayed') ok++
      if (msg === 'message refused') failed++
    },
    warn() {},
    error() {},
  },
})
const [bound] = await relay.listen()
console.log(JSON.stringify({ port: bound!.port }))
let cpuStart = process.cpuUsage()
for await (const line of createInterface({ input: process.stdin })) {
  if (line === 'mark') {
    cpuStart = process.cpuUsage()
    ok = failed = 0
    console.log('{}')
  }
  if (line === 'stats') {
    const { user, system } = process.cpuUsage(cpuStart)
    console.log(JSON.stringify({ ok, failed, cpuMicros: user + system }))
  }
}
process.exit(0)
