/**
 * Several relay nodes, one queue: each node is a relay whose durable queue is the PostgreSQL
 * store, so any node can deliver what any node accepted, a node that dies leaves its work to the
 * others once its lease runs out, and the limit of connections per destination holds for all
 * nodes together. Put a load balancer in front of the nodes (see the README's deployment section).
 *
 *   npx tsx examples/cluster.ts           one node, until Ctrl-C (start as many as you like)
 *   npx tsx examples/cluster.ts --once    checks itself: starts two nodes (child processes),
 *                                         sends through both while the next hop holds every
 *                                         delivery, SIGKILLs one, and shows the other finishing
 *                                         the dead node's work after the lease; exits non-zero
 *                                         if anything acknowledged is missing. Skipped (exit 0,
 *                                         with a message) when no PostgreSQL is reachable.
 *
 * Environment (defaults in brackets):
 *   DATABASE_URL    the PostgreSQL all nodes share, postgres://user:password@host:port/database
 *                   (CI starts one: npx tsx test/helpers/with-postgres.ts npx tsx examples/cluster.ts --once)
 *   DATABASE_SCHEMA the schema of the queue's tables                   [relaychain]
 *   RELAY_HOST      address to listen on                               [127.0.0.1]
 *   RELAY_PORT      port; 0 picks a free one                           [2525]
 *   UPSTREAM_HOST   the next hop (a smarthost); unset: a local test server that prints what it gets
 *   UPSTREAM_PORT   its port                                           [25]
 *   CONCURRENCY     connections to the next hop at once, all nodes together [5]
 *   LEASE           how long a dead node's work stays with it, in ms   [60000; --once: 3000]
 *   NODE_NAME       this node in leases and logs                       [<hostname>:<pid>]
 *   ONCE_MESSAGES   how many messages --once sends                     [10]
 *
 * Look at the queue from anywhere: `npx relaychain queue list --pg "$DATABASE_URL"`, or SQL:
 * `SELECT status, count(*) FROM relaychain.recipients GROUP BY 1`.
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { createTransport } from 'nodemailer'
import pg from 'pg'
import { consoleLogger, createRelay, durableQueue, pgStore, smtpTransport } from 'relaychain'
import { type Sink, startSink } from 'relaychain/testing'

const env = process.env
const DATABASE_URL = env.DATABASE_URL
const SCHEMA = env.DATABASE_SCHEMA ?? 'relaychain'
const HOST = env.RELAY_HOST ?? '127.0.0.1'
const PORT = Number(env.RELAY_PORT ?? 2525)
const CONCURRENCY = Number(env.CONCURRENCY ?? 5)
const MESSAGES = Number(env.ONCE_MESSAGES ?? 10)

/** One node: a relay taking mail for anyone on loopback (an example: put your relay policy here) into the shared queue. */
async function node(upstream: { host: string; port: number }, lease: number): Promise<{ port: number; close: () => Promise<void> }> {
  const queue = durableQueue({
    store: pgStore({ connectionString: DATABASE_URL!, schema: SCHEMA, lease, ...(env.NODE_NAME ? { node: env.NODE_NAME } : {}) }),
    // One connection per delivery, so the limit below counts connections.
    deliver: smtpTransport({ host: upstream.host, port: upstream.port, pool: false }),
    destinations: { concurrency: CONCURRENCY },
    pollInterval: 200,
  })
  const relay = createRelay({
    hostname: env.NODE_NAME ?? 'cluster-node.example',
    stages: [{ name: 'loopback-only', grantsRelay: true, rcptTo: (m) => ({ relay: m.session.remoteAddress.startsWith('127.') }) }],
    transport: queue,
    listeners: [{ host: HOST, port: PORT, mode: 'submission' }],
    logger: consoleLogger(),
  })
  const [bound] = await relay.listen()
  return { port: bound!.port, close: () => relay.close() }
}

/** True if `DATABASE_URL` answers. */
async function reachable(): Promise<boolean> {
  if (!DATABASE_URL) return false
  const client = new pg.Client({ connectionString: DATABASE_URL, connectionTimeoutMillis: 3000 })
  try {
    await client.connect()
    await client.query('SELECT 1')
    return true
  } catch {
    return false
  } finally {
    await client.end().catch(() => {})
  }
}

/** A node as a child process of this file (so that it can be SIGKILLed). */
async function spawnNode(name: string, upstreamPort: number, lease: number) {
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--node'], {
    env: { ...env, NODE_NAME: name, RELAY_PORT: '0', UPSTREAM_HOST: '127.0.0.1', UPSTREAM_PORT: String(upstreamPort), LEASE: String(lease) },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const exited = once(child, 'exit')
  for await (const line of createInterface({ input: child.stdout! })) {
    const ready = /^READY (\d+)$/.exec(line)
    if (ready) {
      return {
        name,
        port: Number(ready[1]),
        async kill() {
          if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
          await exited
        },
      }
    }
  }
  throw new Error(`node ${name} exited before it listened`)
}

async function selfCheck(): Promise<number> {
  if (!(await reachable())) {
    console.log(
      `cluster --once: SKIPPED: no PostgreSQL reachable at DATABASE_URL (${DATABASE_URL ? 'set but not answering' : 'not set'}); run it with one, e.g. npx tsx test/helpers/with-postgres.ts npx tsx examples/cluster.ts --once`,
    )
    return 0
  }
  const lease = Number(env.LEASE ?? 3000)
  // The next hop holds every delivery until told: the nodes have work in flight when one dies.
  let open!: () => void
  const opened = new Promise<void>((resolve) => (open = resolve))
  const sink: Sink = await startSink({ gate: () => opened })
  const [a, b] = await Promise.all([spawnNode('node-a', sink.port, lease), spawnNode('node-b', sink.port, lease)])
  const problems: string[] = []
  try {
    const sent: string[] = []
    for (let i = 0; i < MESSAGES; i++) {
      const via = i % 2 ? b : a
      const client = createTransport({ host: '127.0.0.1', port: via.port, secure: false, ignoreTLS: true })
      const id = `cluster-${i}@example.test`
      await client.sendMail({
        envelope: { from: 'app@example.test', to: [`user${i}@example.net`] },
        raw: `From: app@example.test\r\nTo: user${i}@example.net\r\nMessage-ID: <${id}>\r\nSubject: ${i}\r\n\r\nThrough ${via.name}.\r\n`,
      })
      client.close()
      sent.push(id)
    }
    console.log(`cluster --once: ${sent.length} messages got 250, half through each node`)
    await a.kill()
    const killedAt = Date.now()
    console.log(`cluster --once: node-a SIGKILLed with its deliveries in flight; node-b takes them after the ${lease} ms lease`)
    open()
    const got = () => sink.messages.map((m) => /Message-ID: <([^>]+)>/.exec(m.raw.toString())?.[1])
    const deadline = Date.now() + lease + 30_000
    // One more message each time, until every acknowledged one is there (a repeat counts too).
    for (let n = sent.length; !sent.every((id) => got().includes(id)); n++) await sink.waitForMessages(n, Math.max(1, deadline - Date.now()))
    const repeated = got().length - new Set(got()).size
    console.log(
      `cluster --once: all ${sent.length} delivered ${((Date.now() - killedAt) / 1000).toFixed(1)} s after the kill (${repeated} delivered twice: in flight at the kill)`,
    )
  } catch (err) {
    problems.push((err as Error).message)
  } finally {
    await Promise.all([a.kill(), b.kill()])
    await sink.close()
  }
  for (const p of problems) console.error(`cluster --once: FAILED: ${p}`)
  if (!problems.length) console.log('cluster --once: OK')
  return problems.length ? 1 : 0
}

if (process.argv.includes('--once')) {
  process.exitCode = await selfCheck()
} else {
  if (!DATABASE_URL) {
    console.error('cluster: set DATABASE_URL to the PostgreSQL all nodes share')
    process.exit(2)
  }
  let local: Sink | undefined
  if (!env.UPSTREAM_HOST) {
    local = await startSink()
    local.waitForMessages(Number.MAX_SAFE_INTEGER, 2 ** 31 - 1).catch(() => {})
  }
  const upstream = local ? { host: local.host, port: local.port } : { host: env.UPSTREAM_HOST!, port: Number(env.UPSTREAM_PORT ?? 25) }
  const n = await node(upstream, Number(env.LEASE ?? 60_000))
  if (process.argv.includes('--node')) console.log(`READY ${n.port}`)
  else console.log(`cluster node on ${HOST}:${n.port}, queue in ${SCHEMA} at ${DATABASE_URL.replace(/:[^:@/]*@/, ':***@')}; Ctrl-C stops`)
  process.once('SIGINT', () => void n.close().then(() => local?.close()))
}
