/**
 * The PostgreSQL queue store against the directory store, in one run on this machine:
 * `npx tsx bench/pg-store.ts` (MESSAGES=3000 SIZE=4096 WRITERS=16 by default). Starts a
 * temporary PostgreSQL (Debian's, as the tests do, default settings: fsync and synchronous_commit
 * on), then measures for each store: adds per second (each one durable before it resolves, as
 * before a 250), and the latency of one claim of one due entry (claimDue + release).
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { dirStore, type EntryHeader, pgStore, type QueueStore } from '../src/index.js'
import { startPostgres } from '../test/helpers/postgres.js'

const MESSAGES = Number(process.env.MESSAGES ?? 3000)
const SIZE = Number(process.env.SIZE ?? 4096)
const WRITERS = Number(process.env.WRITERS ?? 16)
const CLAIMS = 300
const body = Buffer.alloc(SIZE, 'x')

function header(i: number): EntryHeader {
  return {
    id: `B${process.pid}x${i}`,
    created: Date.now(),
    from: { address: 'a@example.com' },
    recipients: [{ rcpt: { address: 'b@example.org' } }],
    original: { mailFrom: { address: 'a@example.com' }, rcptTo: [{ address: 'b@example.org' }] },
    size: 0,
  }
}

async function measure(name: string, store: QueueStore) {
  await store.open()
  let next = 0
  const started = performance.now()
  await Promise.all(
    Array.from({ length: WRITERS }, async () => {
      while (next < MESSAGES) await store.add(header(next++), Readable.from([body]))
    }),
  )
  const seconds = (performance.now() - started) / 1000
  const latencies: number[] = []
  for (let i = 0; i < CLAIMS; i++) {
    const t = performance.now()
    const [claim] = await store.claimDue(Date.now(), 1, new Set())
    latencies.push(performance.now() - t)
    await claim?.release()
  }
  latencies.sort((a, b) => a - b)
  await store.close()
  const row = {
    store: name,
    'adds/s': Math.round(MESSAGES / seconds),
    'claim p50 ms': Number(latencies[Math.floor(CLAIMS / 2)]!.toFixed(2)),
    'claim p95 ms': Number(latencies[Math.floor(CLAIMS * 0.95)]!.toFixed(2)),
  }
  console.log(JSON.stringify(row))
  return row
}

const dir = await mkdtemp(join(tmpdir(), 'relaychain-bench-'))
const pg = await startPostgres()
try {
  console.log(`${MESSAGES} messages of ${SIZE} bytes, ${WRITERS} writers at once`)
  const d = await measure('dir', dirStore(dir))
  const p = await measure('pg', pgStore({ connectionString: pg.url, maxConnections: WRITERS }))
  console.log(`pg / dir adds: ${(p['adds/s'] / d['adds/s']).toFixed(2)}×`)
} finally {
  await pg.stop()
  await rm(dir, { recursive: true, force: true })
}
