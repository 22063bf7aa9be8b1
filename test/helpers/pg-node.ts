/**
 * One relay node of a cluster in a process of its own (tests SIGKILL it): a relay on a free
 * loopback port whose durable queue is the PostgreSQL store. Environment: DATABASE_URL, SCHEMA,
 * NODE_NAME, UPSTREAM_PORT (the next hop on 127.0.0.1), CONCURRENCY (the global limit per
 * destination), LEASE (ms). Prints `READY <port>` once it listens; on stdin `close` closes the
 * relay and its queue and prints `CLOSED`.
 */
import { createInterface } from 'node:readline'
import { createRelay, durableQueue, pgStore, smtpTransport } from '../../src/index.js'

const queue = durableQueue({
  store: pgStore({
    connectionString: process.env.DATABASE_URL!,
    schema: process.env.SCHEMA ?? 'relaychain',
    node: process.env.NODE_NAME,
    lease: Number(process.env.LEASE ?? 60_000),
    maxConnections: 8,
  }),
  // One connection per delivery: the sink counts deliveries under way as connections.
  deliver: smtpTransport({ host: '127.0.0.1', port: Number(process.env.UPSTREAM_PORT), name: 'node.test', pool: false }),
  destinations: { concurrency: Number(process.env.CONCURRENCY ?? 5) },
  hostname: process.env.NODE_NAME ?? 'node.test',
  pollInterval: 200,
  activeLimit: 20,
  retry: { minimum: 200, maximum: 400 },
})
queue.events.subscribe((e) => {
  if (e.type === 'error') console.error(`${process.env.NODE_NAME}: ${e.message}: ${(e as { error?: Error }).error?.message}`)
})
const relay = createRelay({
  hostname: process.env.NODE_NAME ?? 'node.test',
  stages: [{ name: 'allow-all', grantsRelay: true, rcptTo: () => ({ relay: true }) }],
  transport: queue,
  listeners: [{ host: '127.0.0.1', port: 0, mode: 'submission' }],
  limits: { clientLimitExceptions: ['127.0.0.0/8'] },
})
const [bound] = await relay.listen()
console.log(`READY ${bound!.port}`)

for await (const line of createInterface({ input: process.stdin })) {
  if (line === 'close') {
    await relay.close()
    console.log('CLOSED')
    process.exit(0)
  }
}
