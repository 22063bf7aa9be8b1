/**
 * Three relay nodes (child processes) on one PostgreSQL and one sink: every recipient accepted
 * with a 250 is delivered, none twice without a crash; a global limit per destination holds
 * whichever node delivers (counted at the sink's TCP port, every connection); and a node
 * SIGKILLed under load leaves its leased entries to the others once the lease has run out.
 *
 * Size: RELAYCHAIN_CLUSTER_RECIPIENTS recipients (default 3000 here; the full run is
 * 10000), ten per message.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { type AddressInfo, connect, createServer, type Server } from 'node:net'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import nodemailer from 'nodemailer'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Sink, startSink } from '../../src/testing/index.js'
import { afterTest } from '../helpers/after-test.js'
import { havePostgres, startPostgres, type TestPostgres } from '../helpers/postgres.js'

const NODE = fileURLToPath(new URL('../helpers/pg-node.ts', import.meta.url))
const RECIPIENTS = Number(process.env.RELAYCHAIN_CLUSTER_RECIPIENTS ?? 3000)
const PER_MESSAGE = 10
const LIMIT = 4
const LEASE = 10_000

/**
 * A TCP front of the sink that counts, at every open and close, the connections open at once and
 * the sessions at work at once (a session ends at the client's QUIT: nodemailer reports a
 * delivery done when it sends QUIT, so the TCP close of one delivery can overlap the next one's
 * connect by that round trip).
 */
async function countingFront(sink: Sink) {
  let open = 0
  let max = 0
  let working = 0
  let maxWorking = 0
  const server: Server = createServer((socket) => {
    open++
    working++
    max = Math.max(max, open)
    maxWorking = Math.max(maxWorking, working)
    let quit = false
    const stop = () => {
      if (quit) return
      quit = true
      working--
    }
    socket.on('data', (chunk: Buffer) => {
      if (/(^|\r\n)QUIT\r\n/i.test(chunk.toString('latin1'))) stop()
    })
    const upstream = connect(sink.port, sink.host)
    socket.pipe(upstream).pipe(socket)
    let closed = false
    const done = () => {
      if (closed) return
      closed = true
      open--
      stop()
      socket.destroy()
      upstream.destroy()
    }
    socket.on('close', done).on('error', done)
    upstream.on('close', done).on('error', done)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return {
    port: (server.address() as AddressInfo).port,
    /** Most TCP connections open at once. */
    max: () => max,
    /** Most sessions at once before their QUIT. */
    maxWorking: () => maxWorking,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
}

interface Node {
  readonly name: string
  readonly port: number
  readonly child: ChildProcess
  kill(): Promise<void>
}

async function startNode(env: Record<string, string>): Promise<Node> {
  const child = spawn(process.execPath, ['--import', 'tsx', NODE], { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'inherit'] })
  const exited = once(child, 'exit')
  const lines = createInterface({ input: child.stdout! })
  const [line] = (await Promise.race([once(lines, 'line'), exited.then(() => Promise.reject(new Error(`${env.NODE_NAME} exited`)))])) as [string]
  expect(line).toMatch(/^READY \d+$/)
  return {
    name: env.NODE_NAME!,
    port: Number(line.slice(6)),
    child,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
      await exited
    },
  }
}

const there = havePostgres()

describe.skipIf(!there)('three relay nodes on one PostgreSQL', () => {
  let server: TestPostgres
  let sql: pg.Pool
  beforeAll(async () => {
    server = await startPostgres()
    sql = new pg.Pool({ connectionString: server.url, max: 2 })
    sql.on('error', () => {}) // idle connections see the server stop at the end
  })
  afterAll(async () => {
    await sql?.end()
    await server?.stop()
  })

  async function run(schema: string, killAt?: number) {
    // Transactions in DATA at once, counted by the sink itself: from DATA to the end of the content,
    // or to the close of a connection whose sender died mid-DATA (its content never ends).
    let maxInData = 0
    const sink: Sink = await startSink({
      gate: async () => {
        maxInData = Math.max(maxInData, sink.inData)
      },
    })
    const front = await countingFront(sink)
    afterTest(
      () => sink.close(),
      () => front.close(),
    )
    const env = { DATABASE_URL: server.url, SCHEMA: schema, UPSTREAM_PORT: String(front.port), CONCURRENCY: String(LIMIT), LEASE: String(LEASE) }
    const nodes = await Promise.all([1, 2, 3].map((i) => startNode({ ...env, NODE_NAME: `node${i}` })))
    afterTest(...nodes.map((n) => () => n.kill()))
    const alive = new Set(nodes)
    const clients = new Map(
      nodes.map((n) => [
        n,
        nodemailer.createTransport({ host: '127.0.0.1', port: n.port, secure: false, ignoreTLS: true, pool: true, maxConnections: 2 }),
      ]),
    )
    afterTest(() => {
      for (const c of clients.values()) c.close()
    })

    const messages = Math.ceil(RECIPIENTS / PER_MESSAGE)
    const accepted = new Map<string, string[]>()
    let unacknowledged = 0
    let next = 0
    let killed: { node: Node; at: number; leased: string[] } | undefined
    const started = Date.now()

    async function sendOne(i: number, attempt = 0): Promise<void> {
      const live = [...alive]
      const node = live[(i + attempt) % live.length]!
      const id = `m${i}.${attempt}@cluster.test`
      const to = Array.from({ length: PER_MESSAGE }, (_, k) => `r${i}-${k}@dest.example`)
      try {
        await clients.get(node)!.sendMail({
          envelope: { from: 'sender@cluster.test', to },
          raw: `From: sender@cluster.test\r\nTo: list@dest.example\r\nMessage-ID: <${id}>\r\nSubject: ${i}\r\n\r\nbody ${i}\r\n`,
        })
        accepted.set(id, to)
      } catch {
        // The node died under us: as a load balancer would, the client tries another one.
        unacknowledged++
        if (attempt > 5) throw new Error(`message ${i} refused by every node`)
        await sendOne(i, attempt + 1)
      }
    }

    async function maybeKill(): Promise<void> {
      if (killAt === undefined || killed || sink.messages.length * PER_MESSAGE < killAt * RECIPIENTS) return
      const node = nodes[0]!
      alive.delete(node)
      await node.kill()
      const at = Date.now()
      const { rows } = await sql.query(`SELECT id FROM ${schema}.entries WHERE lease_owner = $1 AND lease_until > now()`, [node.name])
      killed = { node, at, leased: rows.map((r) => r.id) }
    }

    // Six senders, spread over the nodes; the kill comes once the sink has its share of recipients.
    await Promise.all(
      Array.from({ length: 6 }, async () => {
        while (next < messages) {
          await sendOne(next++)
          await maybeKill()
        }
      }),
    )
    const acceptedAt = Date.now()
    // Until the database holds nothing (no entry, so no delivery can still come), then count.
    let reclaimed: number | undefined
    for (const deadline = Date.now() + 240_000; ; ) {
      await maybeKill()
      if (killed && reclaimed === undefined) {
        const { rows } = await sql.query(`SELECT count(*)::int AS n FROM ${schema}.entries WHERE lease_owner = $1`, [killed.node.name])
        if (rows[0].n === 0) reclaimed = Date.now() - killed.at
      }
      const { rows } = await sql.query(`SELECT count(*)::int AS n FROM ${schema}.entries`)
      if (rows[0].n === 0 && (!killed || reclaimed !== undefined)) break
      if (Date.now() > deadline) throw new Error(`not drained: ${rows[0].n} entries left`)
      await new Promise((r) => setTimeout(r, 100)) // polling the database for the end of the run
    }
    const drainedAt = Date.now()

    const delivered = new Map<string, number>()
    for (const m of sink.messages) {
      const id = /Message-ID: <([^>]+)>/.exec(m.raw.toString())![1]!
      for (const rcpt of m.rcptTo) delivered.set(`${id} ${rcpt}`, (delivered.get(`${id} ${rcpt}`) ?? 0) + 1)
    }
    let lost = 0
    let duplicated = 0
    let total = 0
    for (const [id, to] of accepted) {
      for (const rcpt of to) {
        total++
        const count = delivered.get(`${id} ${rcpt}`) ?? 0
        if (count === 0) lost++
        if (count > 1) duplicated += count - 1
      }
    }
    const notAcked = [...delivered.keys()].filter((k) => !accepted.has(k.split(' ')[0]!)).length
    const result = {
      recipients: total,
      lost,
      duplicated,
      deliveredWithoutA250: notAcked,
      clientRetries: unacknowledged,
      maxConcurrent: maxInData,
      maxSessionsBeforeQuit: front.maxWorking(),
      maxTcpConnections: front.max(),
      limit: LIMIT,
      acceptSeconds: (acceptedAt - started) / 1000,
      totalSeconds: (drainedAt - started) / 1000,
      ...(killed ? { killedLeased: killed.leased.length, reclaimedAfterMs: reclaimed, leaseMs: LEASE } : {}),
    }
    console.log(`cluster run ${schema}: ${JSON.stringify(result)}`)
    return result
  }

  it('delivers every accepted recipient exactly once, never more than the global limit of connections to the sink at once', async () => {
    const r = await run('cluster_plain')
    expect(r.recipients).toBe(Math.ceil(RECIPIENTS / PER_MESSAGE) * PER_MESSAGE)
    expect(r.lost).toBe(0)
    expect(r.duplicated).toBe(0)
    expect(r.deliveredWithoutA250).toBe(0)
    expect(r.maxConcurrent).toBeLessThanOrEqual(LIMIT)
    expect(r.maxConcurrent).toBeGreaterThan(1) // the nodes did deliver side by side
    // A slot is freed when nodemailer has sent QUIT, before the TCP close: at most one closing
    // connection per slot besides.
    expect(r.maxTcpConnections).toBeLessThanOrEqual(2 * LIMIT)
  }, 300_000)

  it('loses nothing when a node is SIGKILLed under load: the others take its leased entries after the lease and finish', async () => {
    const r = await run('cluster_kill', 0.3)
    expect(r.lost).toBe(0)
    expect(r.maxConcurrent).toBeLessThanOrEqual(LIMIT)
    expect(r.killedLeased).toBeGreaterThan(0)
    // Repeats only of what the dead node had in flight (its leased entries, ten recipients each).
    expect(r.duplicated).toBeLessThanOrEqual(r.killedLeased! * PER_MESSAGE)
    // Within the lease and a poll or two of the others (they are busy with their own work too).
    expect(r.reclaimedAfterMs).toBeLessThanOrEqual(LEASE + 3000)
  }, 300_000)
})
