/**
 * PostgreSQL stopped and started again under a relay whose queue lives there: clients are told
 * 451 4.3.0 while it is down (they keep the message), nothing acknowledged before is lost, and
 * the relay takes and delivers mail again once the server is back, without a restart.
 */
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { durableQueue, pgStore, smtpTransport } from '../../src/index.js'
import { startSink } from '../../src/testing/index.js'
import { afterTest } from '../helpers/after-test.js'
import { havePostgres, startPostgres, type TestPostgres } from '../helpers/postgres.js'
import { allowAll, startRelay } from '../helpers/relay.js'

const there = havePostgres()

describe.skipIf(!there)('a relay on PostgreSQL when PostgreSQL goes down', () => {
  let server: TestPostgres
  beforeAll(async () => {
    server = await startPostgres()
  })
  afterAll(() => server?.stop())

  it('answers 451 4.3.0 while it is down, loses nothing acknowledged, and takes mail again once it is back', async () => {
    // The next hop defers at first: what was acknowledged sits in the database when it goes down.
    let refuse = true
    const sink = await startSink({ data: () => (refuse ? '451 4.3.0 Later' : undefined) })
    const errors: string[] = []
    const queue = durableQueue({
      store: pgStore({ connectionString: server.url, schema: 'outage', maxConnections: 4, onError: (e) => errors.push(e.message) }),
      deliver: smtpTransport({ host: sink.host, port: sink.port, pool: false }),
      pollInterval: 100,
      retry: { minimum: 100, maximum: 200 },
      // A next hop that failed during the outage is probed again within the test's time, not the default minute.
      destinations: { backoff: 200, maxBackoff: 400 },
    })
    const relay = await startRelay({ stages: [allowAll], transport: queue })
    afterTest(
      () => sink.close(),
      () => relay.close(),
    )
    const client = relay.client({ pool: true, maxConnections: 1 })
    const send = (i: number) =>
      client.sendMail({
        envelope: { from: 'a@example.com', to: [`r${i}@example.org`] },
        raw: `From: a@example.com\r\nMessage-ID: <o${i}@test>\r\nSubject: ${i}\r\n\r\nbody ${i}\r\n`,
      })
    const acked: number[] = []
    for (let i = 0; i < 20; i++) await send(i).then(() => acked.push(i))
    expect(acked).toHaveLength(20)

    await server.halt()
    const replies: string[] = []
    for (let i = 20; i < 25; i++) {
      await send(i).then(
        () => acked.push(i),
        (err: { response?: string }) => replies.push(String(err.response)),
      )
    }
    expect(replies).toHaveLength(5)
    for (const reply of replies) expect(reply).toMatch(/^451 4\.3\.0 /)

    await server.start()
    refuse = false
    // The same relay, not restarted: it takes mail again (the first tries may meet dead pooled
    // connections, one per connection of the store's pool).
    for (let i = 25; i < 45; i++) {
      await send(i)
        .catch(() => send(i))
        .catch(() => send(i))
        .catch(() => send(i))
        .then(() => acked.push(i))
    }
    const all = await sink.waitForMessages(acked.length, 30_000).catch(async (err: Error) => {
      // Say which messages are missing and where the database holds them, not only how many.
      const got = new Set(sink.messages.map((m) => /Message-ID: <o(\d+)@test>/.exec(m.raw.toString())?.[1]))
      const db = new pg.Client({ connectionString: server.url })
      await db.connect()
      const { rows } = await db.query(`SELECT id, place, due_at, destination, lease_owner, lease_until, now() AS now FROM outage.entries ORDER BY id`)
      const { rows: destinations } = await db.query(`SELECT *, now() AS now FROM outage.destinations`)
      const { rows: slots } = await db.query(`SELECT *, now() AS now FROM outage.destination_slots`)
      await db.end()
      const missing = acked.filter((i) => !got.has(String(i)))
      throw new Error(
        `${err.message}; missing ${missing.join(', ')}; entries ${JSON.stringify(rows)}; destinations ${JSON.stringify(destinations)}; slots ${JSON.stringify(slots)}; errors ${errors.join(' | ')}`,
      )
    })
    const ids = all.map((m) => /Message-ID: <o(\d+)@test>/.exec(m.raw.toString())![1]!).map(Number)
    expect(ids.sort((a, b) => a - b)).toEqual([...acked].sort((a, b) => a - b))
    expect(new Set(ids).size).toBe(ids.length)
    expect(acked.filter((i) => i >= 20 && i < 25)).toEqual([])
  })
})
