/**
 * The PostgreSQL store on its own, against a real server started for this file: what is in the
 * tables after an add, bodies in chunks, claims that two nodes never share, leases that run out
 * when a node dies (and fence the node that lost one), schema migrations from many nodes at once.
 */
import { spawnSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { Readable } from 'node:stream'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type EntryHeader, type PgQueueStore, pgStore, RelayError, SmtpError } from '../../src/index.js'
import { afterTest } from '../helpers/after-test.js'
import { type AnswerDroppingProxy, startAnswerDroppingProxy } from '../helpers/answer-dropping-proxy.js'
import { havePostgres, startPostgres, type TestPostgres } from '../helpers/postgres.js'
import { START } from '../helpers/queue.js'

const there = havePostgres()
let n = 0

describe.skipIf(!there)('PostgreSQL queue store', () => {
  let server: TestPostgres
  let sql: pg.Pool
  beforeAll(async () => {
    server = await startPostgres()
    sql = new pg.Pool({ connectionString: server.url, max: 4 })
    sql.on('error', () => {}) // idle connections see the server stop at the end
  })
  afterAll(async () => {
    await sql?.end()
    await server?.stop()
  })

  function store(options: Parameters<typeof pgStore>[0] = {}, schema = `t_${process.pid}_${++n}`) {
    const s = pgStore({ connectionString: server.url, schema, maxConnections: 4, ...options })
    afterTest(() => s.close())
    return s
  }

  function header(id: string, to = ['bob@example.org']): EntryHeader {
    return {
      id,
      created: START,
      from: { address: 'alice@example.com' },
      recipients: to.map((address) => ({ rcpt: { address } })),
      original: { mailFrom: { address: 'alice@example.com' }, rcptTo: to.map((address) => ({ address })) },
      size: 0,
    }
  }

  async function text(stream: Readable): Promise<Buffer> {
    const parts: Buffer[] = []
    for await (const p of stream) parts.push(p as Buffer)
    return Buffer.concat(parts)
  }

  it('commits an entry as one row, its content in chunks and one row per recipient, and gives the bytes back unchanged', async () => {
    const s = store({ chunkSize: 64 * 1024 })
    await s.open()
    const body = randomBytes(1024 * 1024 + 123)
    // Streamed in pieces that do not line up with the chunks.
    const pieces = Readable.from(
      (function* () {
        for (let at = 0; at < body.length; at += 10_000) yield body.subarray(at, at + 10_000)
      })(),
    )
    expect(await s.add(header('BIG1', ['bob@example.org', 'carol@example.org']), pieces)).toBe(body.length)
    const rows = await sql.query(`SELECT (SELECT count(*)::int FROM ${s.s}.chunks WHERE entry_id = 'BIG1') AS chunks,
      (SELECT max(length(data))::int FROM ${s.s}.chunks WHERE entry_id = 'BIG1') AS largest,
      (SELECT json_agg(json_build_array(idx, address, status) ORDER BY idx) FROM ${s.s}.recipients WHERE entry_id = 'BIG1') AS recipients,
      (SELECT size::int FROM ${s.s}.entries WHERE id = 'BIG1') AS size`)
    expect(rows.rows[0]).toEqual({
      chunks: Math.ceil(body.length / (64 * 1024)),
      largest: 64 * 1024,
      size: body.length,
      recipients: [
        [0, 'bob@example.org', 'pending'],
        [1, 'carol@example.org', 'pending'],
      ],
    })
    const [claim] = await s.claimDue(START, 10, new Set())
    expect(claim!.header.size).toBe(body.length)
    expect(
      createHash('sha256')
        .update(await text(claim!.content()))
        .digest('hex'),
    ).toBe(createHash('sha256').update(body).digest('hex'))
    await claim!.record([{ type: 'outcome', recipients: [1], status: 'delivered', at: START, attempt: 1, reply: '250 ok' }])
    const { rows: after } = await sql.query(`SELECT idx, status, attempts, reply FROM ${s.s}.recipients WHERE entry_id = 'BIG1' ORDER BY idx`)
    expect(after).toEqual([
      { idx: 0, status: 'pending', attempts: 0, reply: null },
      { idx: 1, status: 'delivered', attempts: 1, reply: '250 ok' },
    ])
    await claim!.finish()
    const { rows: left } = await sql.query(`SELECT (SELECT count(*)::int FROM ${s.s}.entries) AS e, (SELECT count(*)::int FROM ${s.s}.chunks) AS c`)
    expect(left[0]).toEqual({ e: 0, c: 0 })
  })

  it('leaves nothing when the content fails midway, small or large, and answers 451 4.3.0 to an error that is not SMTP', async () => {
    const s = store({ chunkSize: 1024 })
    await s.open()
    const failing = (bytes: number) =>
      Readable.from(
        (async function* () {
          yield Buffer.alloc(bytes, 'x')
          throw new SmtpError(552, '5.3.4', 'Message too big')
        })(),
      )
    await expect(s.add(header('F1'), failing(100))).rejects.toMatchObject({ code: 552 })
    await expect(s.add(header('F2'), failing(10_000))).rejects.toMatchObject({ code: 552 })
    const broken = Readable.from(
      (async function* () {
        yield Buffer.alloc(5000, 'y')
        throw new Error('client gone')
      })(),
    )
    const err = await s.add(header('F3'), broken).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(SmtpError)
    expect((err as SmtpError).toReply()).toMatch(/^451 4\.3\.0 /)
    const { rows } = await sql.query(`SELECT (SELECT count(*)::int FROM ${s.s}.entries) AS e, (SELECT count(*)::int FROM ${s.s}.chunks) AS c`)
    expect(rows[0]).toEqual({ e: 0, c: 0 })
  })

  it('never hands one entry to two nodes claiming at once (SKIP LOCKED), and every entry to one of them', async () => {
    const schema = `t_${process.pid}_${++n}`
    const nodes = [0, 1, 2].map((i) => store({ node: `node${i}` }, schema))
    await Promise.all(nodes.map((s) => s.open()))
    await Promise.all(Array.from({ length: 120 }, (_, i) => nodes[0]!.add(header(`C${i}`), Readable.from([Buffer.from(`msg ${i}\r\n`)]))))
    const claimed = await Promise.all(nodes.flatMap((s) => [s.claimDue(START, 25, new Set()), s.claimDue(START, 25, new Set())]))
    const ids = claimed.flat().map((c) => c.header.id)
    expect(new Set(ids).size).toBe(ids.length)
    const rest = await nodes[1]!.claimDue(START, 1000, new Set())
    expect(ids.length + rest.length).toBe(120)
    const { rows } = await sql.query(`SELECT lease_owner, count(*)::int AS n FROM ${schema}.entries GROUP BY 1 ORDER BY 1`)
    expect(rows.reduce((sum, r) => sum + r.n, 0)).toBe(120)
    expect(rows.every((r) => r.lease_owner !== null)).toBe(true)
  })

  it('gives the work of a node that stopped renewing to another once its lease has run out, and fences the first one', async () => {
    const schema = `t_${process.pid}_${++n}`
    const a = store({ node: 'a', lease: 1500 }, schema)
    const b = store({ node: 'b', lease: 1500 }, schema)
    await a.open()
    await b.open()
    await a.add(header('L1'), Readable.from([Buffer.from('hello\r\n')]))
    const [held] = await a.claimDue(START, 10, new Set())
    expect(held).toBeDefined()
    await a.close() // the node is gone: no more renewals (its claim object lives on, as a process that froze)
    const took = Date.now()
    expect(await b.claimDue(START, 10, new Set())).toEqual([])
    let taken: Awaited<ReturnType<typeof b.claimDue>> = []
    while (!taken.length && Date.now() - took < 10_000) {
      await new Promise((r) => setTimeout(r, 100)) // polling the store like a worker does
      taken = await b.claimDue(START, 10, new Set())
    }
    const waited = Date.now() - took
    expect(taken.map((c) => c.header.id)).toEqual(['L1'])
    expect(waited).toBeGreaterThanOrEqual(1400)
    expect(waited).toBeLessThan(1500 + 1500)
    // The first node wakes up (its store reconnects): its moves and its finish no longer touch the entry.
    expect(await held!.move({ kind: 'held' })).toBe(false)
    await held!.finish()
    expect((await b.get('L1'))?.place).toEqual({ kind: 'due', at: START })
    await taken[0]!.record([{ type: 'outcome', recipients: [0], status: 'delivered', at: START, attempt: 1, reply: '250 ok' }])
    await taken[0]!.finish()
    expect(await b.get('L1')).toBeUndefined()
  })

  it('holds a lease while the node lives, however long the delivery takes', async () => {
    const schema = `t_${process.pid}_${++n}`
    const a = store({ node: 'a', lease: 600 }, schema)
    const b = store({ node: 'b', lease: 600 }, schema)
    await a.open()
    await b.open()
    await a.add(header('R1'), Readable.from([Buffer.from('hello\r\n')]))
    const [held] = await a.claimDue(START, 10, new Set())
    const until = Date.now() + 2000
    while (Date.now() < until) {
      expect(await b.claimDue(START, 10, new Set())).toEqual([])
      await new Promise((r) => setTimeout(r, 150)) // three lease lengths, looked at every 150 ms
    }
    await held!.release()
    expect((await b.claimDue(START, 10, new Set())).map((c) => c.header.id)).toEqual(['R1'])
  })

  describe('when PostgreSQL goes away between a claim and its answer', () => {
    let proxy: AnswerDroppingProxy
    let proxied: string
    beforeAll(async () => {
      proxy = await startAnswerDroppingProxy({ port: server.port })
      proxied = server.url.replace(`:${server.port}/`, `:${proxy.port}/`)
    })
    afterAll(() => proxy?.close())

    /** Polls `look` like a worker polls the store, until it gives something or `within` ms pass. */
    async function pollFor<T>(look: () => Promise<T | undefined>, within: number): Promise<T | undefined> {
      const deadline = Date.now() + within
      for (;;) {
        const found = await look()
        if (found !== undefined || Date.now() > deadline) return found
        await new Promise((r) => setTimeout(r, 100))
      }
    }

    async function dbNow(): Promise<Date> {
      return (await sql.query<{ now: Date }>('SELECT now()')).rows[0]!.now
    }

    /** A node on the proxy with a 20 s lease, and its shared destination limits. */
    async function proxiedGate(schema: string, limits: Parameters<PgQueueStore['destinations']>[0]) {
      const a = store({ connectionString: proxied, node: 'a', lease: '20s' }, schema)
      await a.open()
      return a.destinations(
        limits,
        () => Date.now(),
        () => {},
      )
    }

    /** Waits for `freed` (PostgreSQL's view), then: it happened before `until`, and the destination takes a delivery again. */
    async function expectFreedInTime(freed: () => Promise<boolean>, until: Date, gate: ReturnType<PgQueueStore['destinations']>) {
      expect(await pollFor(async () => ((await freed()) ? true : undefined), 15_000)).toBe(true)
      expect((await dbNow()).getTime()).toBeLessThan(until.getTime())
      const release = await gate.acquire('mx.example')
      expect(release).toBeTypeOf('function')
      release!(true)
    }

    it('gives back an entry whose claim committed unanswered at the next heartbeat, long before its lease runs out', async () => {
      const schema = `t_${process.pid}_${++n}`
      const a = store({ connectionString: proxied, node: 'a', lease: '20s' }, schema)
      const b = store({ node: 'b', lease: '20s' }, schema)
      await a.open()
      await b.open()
      await a.add(header('E1'), Readable.from([Buffer.from('hello\r\n')]))
      const lost = proxy.dropAnswerTo('FOR UPDATE SKIP LOCKED')
      await expect(a.claimDue(START, 10, new Set())).rejects.toThrow()
      await lost
      const { rows } = await sql.query(`SELECT lease_owner, lease_until FROM ${schema}.entries WHERE id = 'E1'`)
      expect(rows[0].lease_owner).toBe('a') // committed: leased to a node that never learned it
      expect(await b.claimDue(START, 10, new Set())).toEqual([])
      const taken = await pollFor(async () => (await b.claimDue(START, 10, new Set()))[0], 15_000)
      expect(taken?.header.id).toBe('E1')
      expect((await dbNow()).getTime()).toBeLessThan(rows[0].lease_until.getTime())
    })

    it('frees a destination whose probe was taken unanswered at the next heartbeat, so probing need not wait out the lease', async () => {
      const schema = `t_${process.pid}_${++n}`
      const gate = await proxiedGate(schema, { backoff: 1 })
      gate.assumeDown('mx.example')
      await pollFor(async () => (await sql.query(`SELECT 1 FROM ${schema}.destinations WHERE name = 'mx.example'`)).rows[0], 5000)
      const lost = proxy.dropAnswerTo('SET probe_token = $2')
      await expect(gate.acquire('mx.example')).rejects.toThrow()
      await lost
      const probe = async () => (await sql.query(`SELECT probe_token, probe_until FROM ${schema}.destinations WHERE name = 'mx.example'`)).rows[0]
      const { probe_until: until } = await probe()
      expect(until).not.toBeNull()
      await expectFreedInTime(async () => (await probe()).probe_token === null, until, gate)
    })

    it('frees a delivery slot taken unanswered at the next heartbeat, so the destination keeps its concurrency', async () => {
      const schema = `t_${process.pid}_${++n}`
      const gate = await proxiedGate(schema, { concurrency: 1 })
      const lost = proxy.dropAnswerTo('INSERT INTO')
      expect(await gate.acquire('mx.example')).toBeUndefined() // the delivery waits, its entry is retried later
      await lost
      const slots = async () => (await sql.query(`SELECT lease_until FROM ${schema}.destination_slots WHERE destination = 'mx.example'`)).rows
      const [{ lease_until: until }] = await slots()
      await expectFreedInTime(async () => (await slots()).length === 0, until, gate)
    })
  })

  it('migrates a new schema once when many nodes open it at once, and refuses a schema newer than it knows', async () => {
    const schema = `t_${process.pid}_${++n}`
    const nodes = Array.from({ length: 6 }, () => store({}, schema))
    await Promise.all(nodes.map((s) => s.open()))
    expect(nodes.filter((s) => s.migration!.applied.length).length).toBe(1)
    const { rows } = await sql.query(`SELECT feature, version FROM ${schema}.migrations`)
    expect(rows).toEqual([{ feature: 'queue', version: 1 }])
    await sql.query(`INSERT INTO ${schema}.migrations (feature, version, name) VALUES ('queue', 99, 'from the future')`)
    const err = await store({}, schema)
      .open()
      .catch((e: unknown) => e)
    expect(err).toBeInstanceOf(RelayError)
    expect((err as RelayError).code).toBe('ERR_RELAY_SCHEMA_VERSION')
  })
  it('creates the schema with `relaychain db migrate --pg URL`, then finds it up to date', () => {
    const cli = new URL('../../src/cli/relaychain.ts', import.meta.url).pathname
    const run = (...args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', cli, ...args], { encoding: 'utf8' })
    const schema = `t_${process.pid}_${++n}`
    const first = run('db', 'migrate', '--pg', server.url, '--schema', schema)
    expect([first.status, first.stdout]).toEqual([0, `schema ${schema}: applied queue migration 1; now at version 1\n`])
    const again = run('db', 'migrate', '--pg', server.url, '--schema', schema, '--json')
    expect(JSON.parse(again.stdout)).toEqual({ schema, applied: [], version: 1 })
    expect(run('db', 'migrate').status).toBe(2)
  })
})

describe('PostgreSQL store without the pg package', () => {
  it('fails with ERR_RELAY_MISSING_DEPENDENCY naming the install command, and the rest of the package loads', () => {
    // A resolve hook that makes `pg` missing, as in an application that never installed it.
    const hook = `data:text/javascript,${encodeURIComponent(
      "export async function resolve(s, c, next) { if (s === 'pg') { const e = new Error('Cannot find package pg'); e.code = 'ERR_MODULE_NOT_FOUND'; throw e } return next(s, c) }",
    )}`
    const register = `data:text/javascript,${encodeURIComponent(`import { register } from 'node:module'; register(${JSON.stringify(hook)})`)}`
    const script = `import('${new URL('../../src/index.ts', import.meta.url).pathname}').then(async (m) => {
      const q = m.durableQueue({ dir: '/tmp/unused', deliver: m.smtpTransport({ host: '127.0.0.1' }) })
      try { await m.pgStore({ connectionString: 'postgres://127.0.0.1:1/x' }).open(); console.log('OPENED') }
      catch (e) { console.log(e.code + ' ' + e.message + ' ' + typeof q.send) }
    })`
    const r = spawnSync(process.execPath, ['--import', register, '--import', 'tsx', '-e', script], { encoding: 'utf8' })
    expect(r.stdout.trim()).toMatch(
      /^ERR_RELAY_MISSING_DEPENDENCY the PostgreSQL queue store \(pgStore\) needs the optional packages? pg, .*: npm install pg@\^8\.11\.0 function$/,
    )
  })
})
