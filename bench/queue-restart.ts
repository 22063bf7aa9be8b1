/**
 * The queue's restart cost: fills a queue directory with `count` due messages (2 KB each, written
 * through the store as the relay writes them), then starts a relay on it in a fresh process whose
 * next hop is down, and measures the time from `relay.listen()` being called to the listener
 * taking connections, and the process's peak RSS over the following seconds while the worker
 * works through the backlog (claims, a failed attempt, the dead-destination throttle).
 *
 *   tsx bench/queue-restart.ts              10,000 and 100,000 entries (BENCH_RESTART_COUNTS)
 *   tsx bench/queue-restart.ts open DIR     (internal) the measured process
 */
import { spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { fileURLToPath } from 'node:url'
import { createRelay, dirStore, durableQueue, smtpTransport } from '../src/index.js'
import { freePort } from './load.js'

export interface RestartSample {
  count: number
  fillSeconds: number
  /** From `relay.listen()` to the listener taking connections. */
  readyMs: number
  /** Peak RSS of the restarted process during its first seconds of work. */
  peakRssMiB: number
}

const BODY = Buffer.from(`From: <bench@example.com>\r\nTo: <sink@example.org>\r\nSubject: restart\r\n\r\n${`${'X'.repeat(76)}\r\n`.repeat(26)}`)

/** Adds `count` due entries, 64 at a time, as the relay's queue transport does. */
async function fill(dir: string, count: number, log: (line: string) => void): Promise<void> {
  const store = dirStore(dir)
  await store.open()
  const now = Date.now()
  let next = 0
  const writer = async () => {
    while (next < count) {
      const i = next++
      const rcpt = { address: 'sink@example.org' }
      await store.add(
        {
          id: `R${i.toString(36).padStart(8, '0')}`,
          created: now,
          from: { address: 'bench@example.com' },
          recipients: [{ rcpt }],
          original: { mailFrom: { address: 'bench@example.com' }, rcptTo: [rcpt] },
          size: BODY.length,
        },
        Readable.from([BODY]),
      )
      if ((i + 1) % 20_000 === 0) log(`    ${i + 1} of ${count} stored`)
    }
  }
  await Promise.all(Array.from({ length: 64 }, writer))
  await store.close()
}

/** The measured process: prints {"readyMs"} once listening, then {"peakRssMiB"} after `WATCH_MS`. */
async function openAndWatch(dir: string): Promise<void> {
  const queue = durableQueue({ dir, deliver: smtpTransport({ host: '127.0.0.1', port: await freePort() }), hostname: 'restart.bench' })
  const relay = createRelay({ hostname: 'restart.bench', transport: queue, listeners: [{ host: '127.0.0.1', port: 0, mode: 'submission' }] })
  const started = performance.now()
  await relay.listen()
  console.log(JSON.stringify({ readyMs: performance.now() - started }))
  await new Promise((resolve) => setTimeout(resolve, Number(process.env.WATCH_MS ?? 5000)))
  console.log(JSON.stringify({ peakRssMiB: process.resourceUsage().maxRSS / 1024 }))
  await relay.close()
}

/** Fills a fresh directory with `count` entries and restarts a relay on it. */
export async function measureRestart(count: number, log: (line: string) => void = console.log): Promise<RestartSample> {
  const dir = await mkdtemp(join(tmpdir(), 'relaychain-bench-restart-'))
  try {
    const filling = performance.now()
    await fill(dir, count, log)
    const fillSeconds = (performance.now() - filling) / 1000
    const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), 'open', dir], { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    child.stdout.on('data', (d: Buffer) => (out += d.toString()))
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
    if (code !== 0) throw new Error(`the restarted relay exited ${code}`)
    const lines = out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, number>)
    return { count, fillSeconds, readyMs: lines[0]!.readyMs!, peakRssMiB: lines[1]!.peakRssMiB! }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

if (process.argv[2] === 'open') await openAndWatch(process.argv[3]!)
else if (import.meta.url === `file://${process.argv[1]}`) {
  for (const count of (process.env.BENCH_RESTART_COUNTS ?? '10000,100000').split(',').map(Number)) {
    const s = await measureRestart(count)
    console.log(
      `${count} queued: filled in ${s.fillSeconds.toFixed(1)} s; ready ${s.readyMs.toFixed(0)} ms after listen(); peak RSS ${s.peakRssMiB.toFixed(0)} MiB`,
    )
  }
}
