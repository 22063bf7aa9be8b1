/**
 * Per-destination limits: concurrency per next hop, a dead next hop throttled to one connection
 * attempt per backoff period, and its backlog drained progressively once it answers again (the
 * backup MX case). Connections are counted by a real TCP server; time moves by hand.
 */
import { once } from 'node:events'
import { type AddressInfo, createServer, type Server } from 'node:net'
import { expect, it } from 'vitest'
import { routeTransport, smtpTransport } from '../../src/index.js'
import { type Sink, startSink } from '../../src/testing/index.js'
import { afterTest } from '../helpers/after-test.js'
import { MINUTE } from '../helpers/queue.js'
import { describeStores } from '../helpers/queue-stores.js'

/** A next hop that is down: it accepts each connection and closes it at once, and counts them. */
async function deadHop(port = 0): Promise<{ port: number; connections: () => number; close: () => Promise<void> }> {
  let count = 0
  const server: Server = createServer((socket) => {
    count++
    socket.destroy()
  })
  server.listen(port, '127.0.0.1')
  await once(server, 'listening')
  return {
    port: (server.address() as AddressInfo).port,
    connections: () => count,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  }
}

/** Resolves when `count` transfers are held in DATA by the sink's gate (after `pass` let through); `open()` lets them all go. */
function gate(count: number, pass = 0) {
  let held = 0
  let passed = 0
  let opened = false
  let reached!: () => void
  let open!: () => void
  const reachedP = new Promise<void>((r) => (reached = r))
  const openP = new Promise<void>((r) => (open = r))
  return {
    wait: async () => {
      if (passed < pass) return void passed++
      held++
      if (held === count) reached()
      if (!opened) await openP
    },
    reached: reachedP,
    held: () => held,
    open: () => {
      opened = true
      open()
    },
  }
}

describeStores('queue destinations', (startQueue) => {
  it('delivers to one next hop at most 5 at a time while another next hop is not held up', async () => {
    const slow = gate(5)
    const a = await startSink({ gate: slow.wait })
    const b = await startSink()
    afterTest(
      () => a.close(),
      () => b.close(),
    )
    const q = await startQueue({
      deliver: () =>
        routeTransport({
          routes: [
            { domains: ['a.example'], transport: smtpTransport({ host: a.host, port: a.port, pool: false }) },
            { domains: ['b.example'], transport: smtpTransport({ host: b.host, port: b.port, pool: false }) },
          ],
        }),
    })
    afterTest(() => q.close())
    for (let i = 0; i < 12; i++) await q.send({ to: [`user${i}@a.example`] })
    for (let i = 0; i < 3; i++) await q.send({ to: [`user${i}@b.example`] })
    const done = q.queue.runDue()
    await Promise.all([slow.reached, b.waitForMessages(3)])
    expect(slow.held()).toBe(5)
    expect(a.inData).toBe(5)
    slow.open()
    await done
    expect(a.messages).toHaveLength(12)
    expect(slow.held()).toBe(12)
    expect(q.of('delivered').map((e) => e.destination)).toEqual(expect.arrayContaining([`smtp:127.0.0.1:${a.port}`, `smtp:127.0.0.1:${b.port}`]))
  })

  it('throttles a dead next hop to one connection per backoff period, then drains its backlog once it answers', async () => {
    const dead = await deadHop()
    const q = await startQueue({ deliver: () => smtpTransport({ host: '127.0.0.1', port: dead.port, pool: false }) })
    afterTest(() => q.close())
    for (let i = 0; i < 20; i++) await q.send()
    await q.queue.runDue()
    const first = dead.connections()
    expect(first).toBeGreaterThanOrEqual(1)
    expect(first).toBeLessThanOrEqual(5) // the deliveries that were under way when it went down
    expect((await q.entries()).map((e) => e.place)).toEqual(Array(20).fill({ kind: 'waiting', destination: `smtp:127.0.0.1:${dead.port}` }))
    expect(q.of('deferred').every((e) => e.reply.startsWith('451 4.4.1 '))).toBe(true)

    q.clock.advance(30_000)
    await q.queue.runDue()
    expect(dead.connections()).toBe(first)
    q.clock.advance(30_000) // the first backoff (1 minute) is over: one probe
    await q.queue.runDue()
    expect(dead.connections()).toBe(first + 1)
    q.clock.advance(MINUTE) // the probe failed: the backoff doubled
    await q.queue.runDue()
    expect(dead.connections()).toBe(first + 1)
    q.clock.advance(MINUTE)
    await q.queue.runDue()
    expect(dead.connections()).toBe(first + 2)

    // The next hop comes back on its port.
    await dead.close()
    const slow = gate(5, 1) // the probe goes through; the backlog is held in DATA to count it
    const up: Sink = await startSink({ port: dead.port, gate: slow.wait })
    afterTest(() => up.close())
    q.clock.advance(4 * MINUTE)
    const draining = q.queue.runDue()
    await slow.reached
    expect(up.inData).toBe(5) // progressively: at the configured concurrency
    slow.open()
    await draining
    expect(up.messages).toHaveLength(20)
    expect(await q.entries()).toEqual([])
  })
})
