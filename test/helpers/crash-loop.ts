/**
 * The queue's crash proof: a relay with a durable queue in a child process is loaded by real
 * clients and killed with SIGKILL, again and again at random points (while starting, receiving,
 * writing, delivering, recording), then started again on the same directory; a recording sink is
 * its next hop. At the end the last process drains the queue, and we count:
 *
 * - lost: messages a client got 250 for that never reached the sink (must be 0);
 * - half: messages that reached the sink other than as sent (must be 0);
 * - duplicates: deliveries beyond the first, against the deliveries in flight at the kills (the
 *   sink had them, the journal did not yet: read from the queue directory after each kill).
 *
 * The test runs it with a few hundred kills; `npm run soak` with many more.
 */
import { createHash } from 'node:crypto'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'
import { createTransport } from 'nodemailer'
import { dirStore } from '../../src/index.js'
import { startSink } from '../../src/testing/index.js'
import { freePort } from './ports.js'
import { QUEUE_CHILD, type QueueProcess, spawnQueueProcess, startQueueProcess } from './queue-process.js'

export interface CrashCounts {
  kills: number
  /** Kills before the process was listening (during recovery). */
  killsWhileStarting: number
  /** Messages sent, and answered 250. */
  sent: number
  acknowledged: number
  /** Messages the sink received (each counted once), and deliveries in all. */
  received: number
  deliveries: number
  lost: number
  half: number
  duplicates: number
  /** Deliveries the sink had but the journal did not at a kill: the most duplicates there may be. */
  inFlightAtKills: number
  seconds: number
}

/** Bundles the child once: a bundle starts in a fraction of the time tsx needs, so many more kills fit. */
async function bundleChild(): Promise<string> {
  const dir = fileURLToPath(new URL('../../node_modules/.cache/relaychain-tests/', import.meta.url))
  await mkdir(dir, { recursive: true })
  const outfile = join(dir, `queue-child-${process.pid}.mjs`)
  await build({
    entryPoints: [QUEUE_CHILD],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    outfile,
    logLevel: 'error',
  })
  return outfile
}

/** Runs the loop with `kills` kills; `random` picks the kill points (seedable for a rerun). */
export async function crashLoop(kills: number, random: () => number = Math.random, log: (line: string) => void = () => {}): Promise<CrashCounts> {
  const started = performance.now()
  const root = await mkdtemp(join(tmpdir(), 'relaychain-crash-'))
  const dir = join(root, 'queue')
  const script = await bundleChild()
  const sink = await startSink()
  const relayPort = await freePort()
  const env = { QUEUE_DIR: dir, UPSTREAM_PORT: String(sink.port), RELAY_PORT: String(relayPort) }
  const bodies = new Map<string, string>() // test id → sha256 of the body sent
  const acknowledged = new Map<string, string>() // test id → queue id
  const counts = { kills: 0, killsWhileStarting: 0, sent: 0 }
  let next = 0

  /** One client connection after another, until the relay goes away. */
  async function sender(port: number, stop: { stopped: boolean }): Promise<void> {
    const client = createTransport({
      host: '127.0.0.1',
      port,
      secure: false,
      ignoreTLS: true,
      connectionTimeout: 2000,
      greetingTimeout: 2000,
      socketTimeout: 5000,
    })
    try {
      while (!stop.stopped) {
        const id = `t${next++}`
        const body = `Message ${id}\r\n${'0123456789abcdef'.repeat(1 + Math.floor(random() * 200))}\r\n`
        bodies.set(id, digest(body))
        counts.sent++
        try {
          const info = await client.sendMail({
            envelope: { from: 'crash@example.com', to: ['sink@example.org'] },
            raw: `From: crash@example.com\r\nTo: sink@example.org\r\nX-Test-Id: ${id}\r\nSubject: ${id}\r\n\r\n${body}`,
          })
          acknowledged.set(id, /queued as (\S+)/.exec(String(info.response))![1]!)
        } catch {
          return // the relay died under this transaction: its outcome is unknown to the client
        }
      }
    } finally {
      client.close()
    }
  }

  const deliveredQueueIds = () => new Set(sink.messages.map((m) => /\bwith \S+ id ([A-Z0-9]+)\b/.exec(m.raw.toString('latin1'))?.[1]).filter(Boolean))

  /**
   * After a kill: entries the sink already has but the journal still calls pending will be
   * delivered again. Counted per kill: one entry caught so at two kills may arrive three times.
   */
  let inFlight = 0
  async function noteInFlight(): Promise<void> {
    // A transfer the relay finished just before it died may still be in the sink's socket buffer:
    // let the sink read what reached it first, or that delivery would repeat without being counted.
    await sink.waitForIdle(2000).catch(() => {}) // at most 2 s: then counted as it stands
    const delivered = deliveredQueueIds()
    for await (const entry of dirStore(dir).list()) if (delivered.has(entry.id) && entry.recipients.some((r) => r.status !== 'delivered')) inFlight++
  }

  try {
    for (let life = 0; life < kills; life++) {
      if (random() < 0.1) {
        // Killed while starting: loading, taking the lock, recovering, before it listens.
        const starting = spawnQueueProcess(env, { script })
        await new Promise((resolve) => setTimeout(resolve, random() * 150))
        let listening = false
        void starting.ready.then(
          () => (listening = true),
          () => {},
        )
        await starting.kill()
        if (!listening) counts.killsWhileStarting++
      } else {
        const relay: QueueProcess = await startQueueProcess(env, { script })
        const stop = { stopped: false }
        const senders = Array.from({ length: 4 }, () => sender(relay.port, stop))
        // The kill point: somewhere in the next 300 ms of load.
        await new Promise((resolve) => setTimeout(resolve, random() * 300))
        await relay.kill()
        stop.stopped = true
        await Promise.all(senders)
      }
      counts.kills++
      await noteInFlight()
      if (life % 50 === 49) log(`${life + 1} kills, ${acknowledged.size} acknowledged, ${sink.messages.length} delivered`)
    }
    // The last life: no kill; everything queued is delivered.
    const last = await startQueueProcess(env, { script })
    await last.drain()
    await last.kill()

    const byTest = new Map<string, number>()
    let half = 0
    for (const m of sink.messages) {
      const text = m.raw.toString('latin1')
      const id = /^X-Test-Id: (\S+)\r$/m.exec(text)?.[1]
      const body = text.slice(text.indexOf('\r\n\r\n') + 4)
      if (!id || bodies.get(id) !== digest(body)) half++
      if (id) byTest.set(id, (byTest.get(id) ?? 0) + 1)
    }
    const lost = [...acknowledged.keys()].filter((id) => !byTest.has(id)).length
    const duplicates = [...byTest.values()].reduce((sum, n) => sum + n - 1, 0)
    return {
      ...counts,
      acknowledged: acknowledged.size,
      received: byTest.size,
      deliveries: sink.messages.length,
      lost,
      half,
      duplicates,
      inFlightAtKills: inFlight,
      seconds: Math.round((performance.now() - started) / 1000),
    }
  } finally {
    await sink.close()
    await rm(root, { recursive: true, force: true })
    await rm(script, { force: true })
  }
}

function digest(text: string): string {
  return createHash('sha256').update(text).digest('hex')
}
