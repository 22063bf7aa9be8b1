/**
 * mxTransport behind the durable queue, on loopback with a clock moved by hand: the queue works
 * per recipient domain (mxTransport's destinationOf), so a domain whose MX is down is deferred
 * and throttled on its own while other domains are delivered, and is delivered once its MX
 * comes up; a DNS timeout is retried; NXDOMAIN and a null MX bounce at the first attempt.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createPipeline } from '../../../src/core/pipeline.js'
import { logEvents } from '../../../src/delivery/log.js'
import { consoleLogger } from '../../../src/shared/logger.js'
import { type Sink, startSink } from '../../../src/testing/index.js'
import { mxTransport } from '../../../src/transports/mx/index.js'
import { startDnsServer, type TestDnsServer } from '../../helpers/dns/server.js'
import { a, mx, nullMx, testZone } from '../../helpers/dns/zones.js'
import { MINUTE, type QueueHarness, startQueue } from '../../helpers/queue.js'

describe('mxTransport behind the durable queue', () => {
  let dns: TestDnsServer
  let q: QueueHarness
  const opened: QueueHarness[] = []
  let down: Sink | undefined

  beforeAll(async () => {
    dns = await startDnsServer([
      testZone('up.test', [mx('up.test', 10, 'mx.up.test'), a('mx.up.test', '127.0.0.1')]),
      // Nothing listens on 127.0.0.2 at the test port until the test starts a server there.
      testZone('down.test', [mx('down.test', 10, 'mx.down.test'), a('mx.down.test', '127.0.0.2')]),
      testZone('slow.test', [mx('slow.test', 10, 'mx.up.test')]),
      testZone('void.test', [nullMx('void.test')]),
      testZone('example.com', [mx('example.com', 10, 'mx.up.test')]),
    ])
  })
  afterAll(async () => {
    await dns?.close()
  })
  afterEach(async () => {
    dns.setFault(undefined)
    dns.setFault(undefined, 'slow.test')
    await Promise.all(opened.splice(0).map((h) => h.close()))
    await down?.close()
    down = undefined
  })

  const harness = async (sink: { dsn?: boolean } = {}, options: { pipeline?: boolean } = {}) => {
    const h = await startQueue({
      sink,
      // The sink of the harness is up.test's MX (127.0.0.1); every MX is contacted on its port.
      deliver: (sink) => {
        const transport = mxTransport({
          dns: { server: dns.address, timeout: 100, attempts: 1, deadline: 300, cache: false },
          port: sink.port,
          allowNetworks: ['127.0.0.0/8'],
          name: 'relay.test',
          pool: false,
        })
        // An after-queue pipeline of the application's own, e.g. for DKIM signing after the queue.
        return options.pipeline ? createPipeline({ transport, name: 'after-queue-own' }) : transport
      },
      queue: { destinations: { backoff: 10 * MINUTE } },
    })
    opened.push(h)
    return h
  }

  it('defers and throttles a domain whose MX is down while other domains are delivered, and delivers it once the MX is up', async () => {
    q = await harness()
    const lines: Array<Record<string, unknown>> = []
    const logger = consoleLogger({ level: 'debug', stream: { write: (l: string) => lines.push(JSON.parse(l)) } as unknown as NodeJS.WritableStream })
    const stopLog = logEvents(q.queue.events, logger)
    const first = await q.send({ to: ['bob@down.test', 'carol@up.test'] })
    await q.queue.runDue()

    expect(q.sink.messages.map((m) => m.rcptTo)).toEqual([['carol@up.test']])
    expect(q.of('deferred')).toMatchObject([{ id: first, rcpt: 'bob@down.test', attempt: 1, destination: 'down.test' }])
    expect(q.of('deferred')[0]!.reply).toMatch(/^451 4\.4\.1 /)
    expect(
      q
        .of('delivery-attempt')
        .map((e) => [e.destination, e.ip, e.outcome])
        .sort(),
    ).toEqual([
      ['down.test', '127.0.0.2', 'deferred'],
      ['up.test', '127.0.0.1', 'delivered'],
    ])
    // The log has the connection (host, address, TLS) and the recipient's outcome.
    const logged = (msg: string) =>
      lines.filter((l) => l.msg === msg).map(({ level, relay, destination, to, tls, reply }) => ({ level, relay, destination, to, tls, reply }))
    expect(logged('delivery attempt deferred')).toEqual([
      {
        level: 30,
        relay: `mx.down.test[127.0.0.2]:${q.sink.port}`,
        destination: 'down.test',
        to: ['bob@down.test'],
        tls: 'none',
        reply: expect.stringMatching(/^451 4\.4\.1 /),
      },
    ])
    expect(logged('delivery attempt delivered')).toMatchObject([{ level: 20, relay: `mx.up.test[127.0.0.1]:${q.sink.port}`, destination: 'up.test' }])
    expect(logged('deferred')).toMatchObject([{ level: 30, destination: 'down.test', to: 'bob@down.test' }])
    stopLog()

    // down.test is throttled: new mail for it waits without a connection; up.test is not held up.
    const second = await q.send({ to: ['dave@down.test', 'erin@up.test'] })
    await q.queue.runDue()
    expect(q.sink.messages.map((m) => m.rcptTo)).toEqual([['carol@up.test'], ['erin@up.test']])
    expect(q.of('delivery-attempt').filter((e) => e.destination === 'down.test')).toHaveLength(1)
    expect(q.of('deferred').map((e) => e.rcpt)).toEqual(['bob@down.test'])
    expect((await q.entries()).map((e) => e.id).sort()).toEqual([first, second].sort())

    // Still down at the probe after the backoff: one connection, and the throttle goes on.
    q.clock.advance(10 * MINUTE)
    await q.queue.runDue()
    expect(q.of('delivery-attempt').filter((e) => e.destination === 'down.test')).toHaveLength(2)
    expect(q.of('delivered').map((e) => e.rcpt)).toEqual(['carol@up.test', 'erin@up.test'])

    // The MX comes up; at the next probe (after the doubled backoff) everything waiting for it goes.
    down = await startSink({ host: '127.0.0.2', port: q.sink.port })
    q.clock.advance(20 * MINUTE)
    await q.queue.runDue()
    expect(down.messages.map((m) => m.rcptTo).sort()).toEqual([['bob@down.test'], ['dave@down.test']])
    const delivered = q.of('delivered').filter((e) => e.destination === 'down.test')
    expect(delivered.map((e) => [e.id, e.rcpt]).sort()).toEqual(
      [
        [first, 'bob@down.test'],
        [second, 'dave@down.test'],
      ].sort(),
    )
    expect(delivered.find((e) => e.rcpt === 'bob@down.test')!.attempt).toBeGreaterThanOrEqual(2)
    expect(delivered.every((e) => /^250 /.test(e.response))).toBe(true)
    expect(await q.entries()).toEqual([])
    expect(q.of('bounced')).toEqual([])
  })

  it('retries a domain whose DNS lookup timed out (451 4.4.3) and delivers when DNS answers again', async () => {
    q = await harness()
    dns.setFault('timeout', 'slow.test')
    const id = await q.send({ to: ['frank@slow.test'] })
    await q.queue.runDue()
    expect(q.of('deferred')).toMatchObject([{ id, rcpt: 'frank@slow.test', attempt: 1, destination: 'slow.test' }])
    expect(q.of('deferred')[0]!.reply).toMatch(/^451 4\.4\.3 /)
    expect(q.sink.messages).toHaveLength(0)

    dns.setFault(undefined, 'slow.test')
    q.clock.advance(10 * MINUTE)
    await q.queue.runDue()
    expect(q.sink.messages.map((m) => m.rcptTo)).toEqual([['frank@slow.test']])
    expect(q.of('delivered')).toMatchObject([{ id, rcpt: 'frank@slow.test', attempt: 2, destination: 'slow.test' }])
    expect(await q.entries()).toEqual([])
  })

  it('bounces a null-MX domain (550 5.1.10) and a domain that does not exist (550 5.1.2) at the first attempt, with one failure notice', async () => {
    q = await harness()
    const id = await q.send({ to: ['gina@void.test', 'hank@nowhere.up.test', 'ivy@up.test'] })
    await q.queue.runDue()

    const bounced = q.of('bounced')
    expect(bounced.map((e) => [e.rcpt, e.attempt, e.reply.slice(0, 10)]).sort()).toEqual([
      ['gina@void.test', 1, '550 5.1.10'],
      ['hank@nowhere.up.test', 1, '550 5.1.2 '],
    ])
    expect(q.of('deferred')).toEqual([])
    // One notice for both, queued and delivered to the sender's MX (example.com → the sink) with the original.
    const notices = new Set(bounced.map((e) => e.notice))
    expect(notices.size).toBe(1)
    expect(q.of('queued')).toContainEqual(expect.objectContaining({ id: [...notices][0], notice: 'failure', to: ['alice@example.com'] }))
    const toSender = q.sink.messages.filter((m) => m.rcptTo.includes('alice@example.com'))
    expect(toSender).toHaveLength(1)
    const text = toSender[0]!.raw.toString()
    expect(text).toMatch(/Final-Recipient: rfc822; ?gina@void\.test[\s\S]*Status: 5\.1\.10/i)
    expect(text).toMatch(/Final-Recipient: rfc822; ?hank@nowhere\.up\.test[\s\S]*Status: 5\.1\.2/i)
    expect(q.sink.messages.filter((m) => m.rcptTo.includes('ivy@up.test'))).toHaveLength(1)
    expect(q.of('delivered').map((e) => e.id)).toContain(id)
    expect(await q.entries()).toEqual([])
  })

  it('leaves the success notice of NOTIFY=SUCCESS to an MX that announces DSN, and sends "relayed" itself when it does not', async () => {
    for (const dsn of [true, false]) {
      q = await harness({ dsn })
      await q.send({ to: [{ address: 'jo@up.test', args: { NOTIFY: 'SUCCESS' } }] })
      await q.queue.runDue()
      const got = q.sink.messages.find((m) => m.rcptTo.includes('jo@up.test'))
      expect(got?.rcptArgs[0]).toEqual(dsn ? { NOTIFY: 'SUCCESS' } : {})
      const notices = q.of('queued').filter((e) => e.notice)
      expect(notices.map((e) => e.notice)).toEqual(dsn ? [] : ['success'])
      if (!dsn) expect(q.sink.messages.find((m) => m.rcptTo.includes('alice@example.com'))?.raw.toString()).toMatch(/Action: relayed/i)
    }
  })

  it('passes on the delivery-attempt events of mxTransport inside an after-queue pipeline of the application', async () => {
    q = await harness({}, { pipeline: true })
    const id = await q.send({ to: ['kim@up.test'] })
    await q.queue.runDue()
    expect(q.of('delivery-attempt')).toMatchObject([
      { id, destination: 'up.test', recipients: ['kim@up.test'], ip: '127.0.0.1', outcome: 'delivered' },
    ])
    expect(q.of('delivered')).toMatchObject([{ id, rcpt: 'kim@up.test', destination: 'up.test' }])
  })
})
