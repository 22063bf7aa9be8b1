/**
 * A relay with a durable queue in a process of its own, for tests that kill it (SIGKILL) or run it
 * on a disk of their own. Environment: QUEUE_DIR, UPSTREAM_PORT (the next hop on 127.0.0.1),
 * RELAY_PORT (default 0), MESSAGE_SIZE (the relay's limit), FILL_LEAVE (fill the queue's file
 * system up to this many free bytes first). Prints `READY <port>` once it listens. Commands on
 * stdin, one per line: `report` prints `REPORT <json>` (entries and tmp/), `drain` delivers
 * everything and prints `DRAINED`, `free` removes the filler and prints `FREED`.
 */
import { readdir, rm, statfs, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { createRelay, durableQueue, smtpTransport } from '../../src/index.js'

const dir = process.env.QUEUE_DIR!
const filler = join(dir, '..', 'filler')
if (process.env.FILL_LEAVE) {
  const fs = await statfs(dir)
  const free = fs.bavail * fs.bsize
  await writeFile(filler, Buffer.alloc(Math.max(0, free - Number(process.env.FILL_LEAVE))))
}
const queue = durableQueue({
  dir,
  deliver: smtpTransport({
    host: '127.0.0.1',
    port: Number(process.env.UPSTREAM_PORT),
    name: 'relay.test',
    pool: { maxConnections: 5, maxMessages: 1000 },
  }),
  hostname: 'relay.test',
  pollInterval: 100,
  retry: { minimum: 100, maximum: 200 },
})
const relay = createRelay({
  hostname: 'relay.test',
  stages: [{ name: 'allow-all', grantsRelay: true, rcptTo: () => ({ relay: true }) }],
  transport: queue,
  listeners: [{ host: '127.0.0.1', port: Number(process.env.RELAY_PORT ?? 0), mode: 'submission' }],
  limits: { ...(process.env.MESSAGE_SIZE ? { messageSize: Number(process.env.MESSAGE_SIZE) } : {}), clientLimitExceptions: ['127.0.0.0/8'] },
})
const [bound] = await relay.listen()
console.log(`READY ${bound!.port}`)

for await (const line of createInterface({ input: process.stdin })) {
  if (line === 'report') {
    const entries = []
    for await (const e of queue.list()) entries.push(e)
    console.log(`REPORT ${JSON.stringify({ entries, tmp: await readdir(join(dir, 'tmp')) })}`)
  } else if (line === 'drain') {
    // Everything due now and delivered, until nothing is left (a next hop that deferred is tried again).
    for (let left = 1; left; ) {
      await queue.flush()
      await queue.runDue()
      left = 0
      for await (const _ of queue.list()) left++
    }
    console.log('DRAINED')
  } else if (line === 'free') {
    await rm(filler, { force: true })
    console.log('FREED')
  }
}
