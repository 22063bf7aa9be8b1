/**
 * A relay in front of the queue, seen by real clients: the 250 means stored, and bad input or a
 * bad disk stores nothing.
 */
import { spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { createServer, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createTransport } from 'nodemailer'
import { describe, expect, it } from 'vitest'
import { consoleLogger, createRelay, durableQueue, type Message, type Next, RelayError, type Stage, smtpTransport } from '../../src/index.js'
import { afterTest } from '../helpers/after-test.js'
import { havePeer } from '../helpers/peers.js'
import { startQueue } from '../helpers/queue.js'
import { startQueueProcess } from '../helpers/queue-process.js'
import { RawSmtp } from '../helpers/raw-smtp.js'
import { allowAll, refusal, startRelay } from '../helpers/relay.js'

/** A next hop that accepts connections and never says a word: deliveries hang, the queue keeps its entries. */
async function silentHop(): Promise<{ port: number }> {
  const sockets: Socket[] = []
  const server = createServer((s) => sockets.push(s.on('error', () => {})))
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  afterTest(() => {
    for (const s of sockets) s.destroy()
    return new Promise((resolve) => server.close(resolve))
  })
  return { port: (server.address() as { port: number }).port }
}

describe('a relay with a durable queue', () => {
  it('answers 250 once the message is in the queue, and delivers exactly what the client sent later', async () => {
    let refuse = true
    const q = await startQueue({ sink: { data: () => (refuse ? '451 4.3.0 Later' : undefined) } })
    const t = await startRelay({ stages: [allowAll], transport: q.queue })
    afterTest(
      () => q.close(),
      () => t.close(),
    )
    const raw = 'From: a@example.com\r\nTo: b@example.org\r\nSubject: stored\r\n\r\nline one\r\nline two\r\n'
    const info = await t.client().sendMail({ envelope: { from: 'a@example.com', to: ['b@example.org'] }, raw })
    const id = /queued as (\S+)/.exec(String(info.response))![1]!
    const entry = await q.queue.show(id)
    expect(entry).toMatchObject({ header: { id, from: { address: 'a@example.com' }, recipients: [{ rcpt: { address: 'b@example.org' } }] } })
    expect(q.of('queued')).toEqual([expect.objectContaining({ id, from: 'a@example.com', to: ['b@example.org'], size: entry!.header.size })])
    refuse = false
    q.clock.advance(5 * 60_000)
    await q.queue.runDue()
    const [delivered] = q.sink.messages
    // The relay's Received field on top, then the client's message byte for byte.
    expect(delivered!.raw.toString()).toMatch(/^Received: from /)
    expect(delivered!.raw.subarray(delivered!.raw.length - raw.length).toString()).toBe(raw)
    expect(delivered!.size).toBe(entry!.header.size)
  })

  it('stores each fork a stage passes on as an entry of its own, and delivers every one', async () => {
    const q = await startQueue()
    // One fork per recipient, as tracking or S/MIME encryption do: the forks share the message's id.
    const perRecipient = {
      name: 'per-recipient',
      async data(msg: Message, next: Next) {
        const reports = []
        for (const rcpt of msg.envelope.rcptTo) reports.push(await next(await msg.fork([rcpt])))
        return { accepted: reports.flatMap((r) => r.accepted), rejected: reports.flatMap((r) => r.rejected), response: reports[0]!.response }
      },
    } satisfies Stage
    const t = await startRelay({ stages: [allowAll, perRecipient], transport: q.queue })
    afterTest(
      () => q.close(),
      () => t.close(),
    )
    const to = ['one@example.org', 'two@example.org', 'three@example.org']
    const raw = 'From: a@example.com\r\nSubject: forks\r\n\r\nbody\r\n'
    expect(String((await t.client().sendMail({ envelope: { from: 'a@example.com', to }, raw })).response)).toMatch(/^250 2\.0\.0 /)
    const ids = q.of('queued').map((e) => e.id)
    expect(new Set(ids).size).toBe(3)
    await q.queue.runDue()
    expect(q.sink.messages.map((m) => m.rcptTo).sort()).toEqual(to.map((r) => [r]).sort())
  })

  it('logs the message as queued, then one line per attempt: deferred with the next time, delivered with the attempt', async () => {
    let refuse = true
    const q = await startQueue({ sink: { data: () => (refuse ? '451 4.3.0 Later' : undefined) } })
    const lines: Array<Record<string, unknown>> = []
    const logger = consoleLogger({ stream: { write: (l: string) => lines.push(JSON.parse(l)) } as unknown as NodeJS.WritableStream })
    const t = await startRelay({ stages: [allowAll], transport: q.queue, logger })
    afterTest(
      () => q.close(),
      () => t.close(),
    )
    const info = await t.client().sendMail({ envelope: { from: 'a@example.com', to: ['b@example.org'] }, raw: 'Subject: log\r\n\r\nx\r\n' })
    const id = /queued as (\S+)/.exec(String(info.response))![1]!
    await q.queue.runDue()
    refuse = false
    q.clock.advance(5 * 60_000)
    await q.queue.runDue()
    const mine = lines.filter((l) => l.id === id).map(({ level, msg, to, attempt, reply, next }) => ({ level, msg, to, attempt, reply, next }))
    expect(mine).toEqual([
      { level: 30, msg: 'message queued', to: ['b@example.org'], attempt: undefined, reply: `250 2.0.0 Ok: queued as ${id}`, next: undefined },
      { level: 30, msg: 'deferred', to: 'b@example.org', attempt: 1, reply: '451 4.3.0 Later', next: new Date(q.clock()).toISOString() }, // the first attempt plus 5 minutes: now
      { level: 30, msg: 'delivered', to: 'b@example.org', attempt: 2, reply: expect.stringMatching(/^250 /), next: undefined },
    ])
  })

  it('refuses a message over the size limit with 552 5.3.4 and keeps nothing of it', async () => {
    const q = await startQueue()
    const t = await startRelay({ stages: [allowAll], transport: q.queue, limits: { messageSize: 64 * 1024 } })
    afterTest(
      () => q.close(),
      () => t.close(),
    )
    const big = `Subject: big\r\n\r\n${'x'.repeat(76)}\r\n`.repeat(2000)
    const refused = await refusal(t.client().sendMail({ envelope: { from: 'a@example.com', to: ['b@example.org'] }, raw: big }))
    expect(refused.response).toMatch(/^552 5\.3\.4 /)
    expect(await q.entries()).toEqual([])
    expect(await readdir(join(q.dir, 'tmp'))).toEqual([])
    expect(q.of('queued')).toEqual([])
  })

  it('keeps nothing of a message whose client goes away in DATA', async () => {
    const q = await startQueue()
    const t = await startRelay({ stages: [allowAll], transport: q.queue })
    afterTest(
      () => q.close(),
      () => t.close(),
    )
    const { client } = await RawSmtp.connect(t.port)
    await client.command('EHLO client.test')
    await client.command('MAIL FROM:<a@example.com>')
    await client.command('RCPT TO:<b@example.org>')
    expect(await client.command('DATA')).toMatch(/^354 /)
    client.write(`Subject: cut\r\n\r\n${'y'.repeat(200_000)}`)
    client.reset()
    await client.closed
    // The next client's message is stored: the cut one never was.
    const info = await t.client().sendMail({ envelope: { from: 'a@example.com', to: ['c@example.org'] }, raw: 'Subject: ok\r\n\r\nok\r\n' })
    expect(info.response).toMatch(/^250 2\.0\.0 /)
    await q.queue.runDue()
    expect(q.sink.messages.map((m) => m.rcptTo)).toEqual([['c@example.org']])
    expect(await readdir(join(q.dir, 'tmp'))).toEqual([])
  })

  it('refuses to listen on a queue directory another relay uses, with ERR_RELAY_QUEUE_LOCKED, and binds no port', async () => {
    const q = await startQueue()
    afterTest(() => q.close())
    const relay = createRelay({
      stages: [allowAll],
      transport: durableQueue({ dir: q.dir, deliver: smtpTransport({ host: '127.0.0.1', port: q.sink.port }) }),
      listeners: [{ host: '127.0.0.1', port: 0 }],
    })
    const err = await relay.listen().catch((e: unknown) => e)
    expect(err).toBeInstanceOf(RelayError)
    expect((err as RelayError).code).toBe('ERR_RELAY_QUEUE_LOCKED')
    expect(relay.addresses).toEqual([])
  })
})

const canMount = havePeer('unshare', 'apt-get install -y util-linux') && spawnSync('unshare', ['-rm', 'true']).status === 0

describe.skipIf(!canMount)('a relay whose queue disk is full', () => {
  it('answers 452 4.3.1, stores nothing half, and takes mail again once there is room', async () => {
    const root = await mkdtemp(join(tmpdir(), 'relaychain-full-'))
    afterTest(() => rm(root, { recursive: true, force: true }))
    const hop = await silentHop()
    // A 2 MiB file system of its own (a mount namespace), filled to 300 KB free.
    const mount = ['unshare', '-rm', 'sh', '-c', `mount -t tmpfs -o size=2m tmpfs "${root}" && mkdir "${root}/queue" && exec "$@"`, 'sh']
    const relay = await startQueueProcess(
      { QUEUE_DIR: join(root, 'queue'), UPSTREAM_PORT: String(hop.port), FILL_LEAVE: String(300_000) },
      { prefix: mount },
    )
    afterTest(() => relay.kill())
    const client = createTransport({ host: '127.0.0.1', port: relay.port, secure: false, ignoreTLS: true })
    afterTest(() => client.close())
    const body = `Subject: fill\r\n\r\n${`${'z'.repeat(998)}\r\n`.repeat(100)}`
    const accepted: string[] = []
    let full: string | undefined
    for (let i = 0; i < 10 && !full; i++) {
      try {
        const info = await client.sendMail({ envelope: { from: 'a@example.com', to: ['b@example.org'] }, raw: body })
        accepted.push(/queued as (\S+)/.exec(String(info.response))![1]!)
      } catch (err) {
        full = String((err as { response?: string }).response)
      }
    }
    expect(accepted.length).toBeGreaterThanOrEqual(1)
    expect(full).toMatch(/^452 4\.3\.1 Insufficient system storage/)
    let report = await relay.report()
    expect(report.tmp).toEqual([])
    expect(report.entries.map((e) => e.id).sort()).toEqual([...accepted].sort())

    await relay.free()
    const info = await client.sendMail({ envelope: { from: 'a@example.com', to: ['b@example.org'] }, raw: body })
    expect(info.response).toMatch(/^250 2\.0\.0 Ok: queued as /)
    report = await relay.report()
    expect(report.entries).toHaveLength(accepted.length + 1)
  })
})
