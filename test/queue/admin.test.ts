/**
 * Operating a queue while the relay runs: `relaychain queue list|show|hold|release|flush|delete|
 * requeue` as a separate process against the directory of a relay that is serving clients, and
 * the same operations through the API.
 */
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { expect, it } from 'vitest'
import type { DeliveryEvent } from '../../src/index.js'
import { afterTest } from '../helpers/after-test.js'
import { parseDsn } from '../helpers/mime.js'
import { describeStores, type StartQueue } from '../helpers/queue-stores.js'
import { allowAll, startRelay } from '../helpers/relay.js'

const CLI = fileURLToPath(new URL('../../src/cli/relaychain.ts', import.meta.url))

/** Runs the command-line tool in its own process. */
function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    child.on('error', reject)
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }))
  })
}

/** A relay in front of a queue whose next hop refuses until told otherwise; real time. */
async function relayWithQueue(startQueue: StartQueue) {
  const state = { refuse: true }
  const q = await startQueue({
    sink: { data: (m) => (state.refuse && m.mailFrom ? '451 4.3.0 Try again later' : undefined) },
    queue: { clock: Date.now },
  })
  const t = await startRelay({ stages: [allowAll], transport: q.queue })
  afterTest(
    () => q.close(),
    () => t.close(),
  )
  const client = t.client()
  const send = async (to: string[]) => {
    const info = await client.sendMail({
      envelope: { from: 'alice@example.com', to },
      raw: `From: alice@example.com\r\nSubject: ops\r\n\r\nfor ${to.join(',')}\r\n`,
    })
    return /queued as (\S+)/.exec(String(info.response))![1]!
  }
  return { q, t, state, send }
}

/** Waits for the first event that matches (the worker runs on its own; an event is the signal). */
function next(
  q: { queue: { events: { subscribe(l: (e: DeliveryEvent) => void): () => void } } },
  match: (e: DeliveryEvent) => boolean,
): Promise<DeliveryEvent> {
  return new Promise((resolve) => {
    const stop = q.queue.events.subscribe((e) => {
      if (match(e)) {
        stop()
        resolve(e)
      }
    })
  })
}

describeStores('relaychain queue, against a running relay', (startQueue, _kind, store) => {
  it('lists entries with size, sender, recipients and the last reply, as text and as JSON lines', async () => {
    const { q, send } = await relayWithQueue(startQueue)
    const deferred = next(q, (e) => e.type === 'deferred')
    const id = await send(['bob@example.org'])
    await deferred
    const text = await cli('queue', 'list', ...store(q.dir))
    expect(text.code).toBe(0)
    expect(text.stdout).toMatch(new RegExp(`^${id} +\\d+ +\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d +due \\S+ \\S+ +alice@example.com$`, 'm'))
    expect(text.stdout).toContain('bob@example.org (deferred: 451 4.3.0 Try again later)')
    expect(text.stdout).toMatch(/^-- \d+ KiB in 1 entry\.$/m)
    const json = await cli('queue', 'list', ...store(q.dir), '--json')
    const [line] = json.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
    expect(line).toMatchObject({
      id,
      from: 'alice@example.com',
      place: { kind: 'due' },
      recipients: [{ address: 'bob@example.org', status: 'deferred', reply: expect.stringMatching(/^451 4\.3\.0/) }],
    })
    expect(line.age).toBeGreaterThanOrEqual(0)
    const shown = await cli('queue', 'show', id, ...store(q.dir))
    expect(shown.stdout).toContain('bob@example.org: deferred, 1 attempt, last reply: 451 4.3.0 Try again later')
  })

  it('holds an entry so flush does not deliver it, releases it, and flush delivers before the retry time', async () => {
    const { q, state, send } = await relayWithQueue(startQueue)
    let deferred = next(q, (e) => e.type === 'deferred')
    const held = await send(['held@example.org'])
    await deferred
    deferred = next(q, (e) => e.type === 'deferred')
    const waiting = await send(['waiting@example.org'])
    await deferred
    expect(await cli('queue', 'hold', held, ...store(q.dir))).toMatchObject({ code: 0, stdout: `${held}: held\n` })
    state.refuse = false
    const delivered = next(q, (e) => e.type === 'delivered' && e.id === waiting)
    const flushed = await cli('queue', 'flush', ...store(q.dir))
    expect(flushed.stdout).toMatch(/^1 entry made due now/)
    await delivered // within the relay's poll interval, not in 5 minutes
    await q.queue.idle() // the delivery's entry removed (the event comes before that)
    expect(q.sink.messages.map((m) => m.rcptTo)).toEqual([['waiting@example.org']])
    expect((await q.entries()).map((e) => [e.id, e.place.kind])).toEqual([[held, 'held']])

    const released = next(q, (e) => e.type === 'delivered' && e.id === held)
    expect(await cli('queue', 'release', held, ...store(q.dir))).toMatchObject({ code: 0 })
    await released
    await q.queue.idle()
    expect(await q.entries()).toEqual([])
  })

  it('deletes an entry silently, or with a failure notice to its sender', async () => {
    const { q, send } = await relayWithQueue(startQueue)
    let deferred = next(q, (e) => e.type === 'deferred')
    const quiet = await send(['quiet@example.org'])
    await deferred
    deferred = next(q, (e) => e.type === 'deferred')
    const told = await send(['told@example.org'])
    await deferred
    expect(await cli('queue', 'delete', quiet, ...store(q.dir))).toMatchObject({ code: 0, stdout: `${quiet}: deleted\n` })
    const notice = q.sink.waitForMessages(1)
    expect(await cli('queue', 'delete', told, ...store(q.dir), '--notify')).toMatchObject({ code: 0 })
    await q.queue.flush() // the notice the tool queued is picked up at once
    const [dsn] = await notice
    await q.queue.idle() // the notice's entry removed once delivered
    expect(dsn).toMatchObject({ mailFrom: '', rcptTo: ['alice@example.com'] })
    expect(parseDsn(dsn!.raw)[0]!.recipients).toEqual([
      expect.objectContaining({ 'final-recipient': 'rfc822; told@example.org', action: 'failed', status: '5.3.0' }),
    ])
    expect(q.sink.messages).toHaveLength(1)
    expect(await q.entries()).toEqual([])
  })

  it('answers a missing entry, a directory that is no queue and a bad command with exit codes 1, 1 and 2', async () => {
    const { q } = await relayWithQueue(startQueue)
    expect(await cli('queue', 'hold', 'NOSUCHID', ...store(q.dir))).toMatchObject({
      code: 1,
      stderr: expect.stringMatching(/^NOSUCHID: no such entry in \S/),
    })
    expect(await cli('queue', 'list', '--dir', '/')).toMatchObject({ code: 1, stderr: expect.stringContaining('/ is not a queue directory') })
    expect((await cli('queue', 'frobnicate', ...store(q.dir))).code).toBe(2)
    expect((await cli('queue', 'hold', ...store(q.dir))).code).toBe(2)
  })
})

describeStores('queue operations through the API', (startQueue) => {
  it('requeues a held notice nobody could take: it is tried again with a fresh start', async () => {
    let refuseAlice = true
    const q = await startQueue({
      sink: { rcpt: (a) => (a === 'bob@example.org' || (refuseAlice && a === 'alice@example.com') ? '550 5.1.1 No such user' : undefined) },
    })
    afterTest(() => q.close())
    await q.send()
    await q.queue.runDue()
    const [held] = q.of('held')
    expect(held).toBeDefined()
    refuseAlice = false
    expect(await q.queue.requeue(held!.id)).toBe(true)
    await q.queue.runDue()
    expect(q.sink.messages.map((m) => m.rcptTo)).toEqual([['alice@example.com']])
    expect(await q.entries()).toEqual([])
    expect(q.of('released')).toEqual([expect.objectContaining({ id: held!.id, reason: 'requeued by the operator' })])
  })

  it('keeps what was delivered on requeue: only the others are tried again', async () => {
    let refuseCarol = true
    const q = await startQueue({ sink: { rcpt: (a) => (refuseCarol && a === 'carol@example.org' ? '450 4.2.1 Busy' : undefined) } })
    afterTest(() => q.close())
    const id = await q.send({ to: ['bob@example.org', 'carol@example.org'] })
    await q.queue.runDue()
    refuseCarol = false
    expect(await q.queue.requeue(id)).toBe(true)
    await q.queue.runDue()
    expect(q.sink.messages.map((m) => m.rcptTo)).toEqual([['bob@example.org'], ['carol@example.org']])
    expect(q.of('delivered').map((e) => [e.rcpt, e.attempt])).toEqual([
      ['bob@example.org', 1],
      ['carol@example.org', 1],
    ])
  })
})
