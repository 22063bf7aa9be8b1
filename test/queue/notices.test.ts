/**
 * The notices the queue sends (RFC 3464 DSNs through the same queue, null sender), read by an
 * independent parser: Python's email package.
 */
import { expect, it } from 'vitest'
import { afterTest } from '../helpers/after-test.js'
import { parseDsn } from '../helpers/mime.js'
import { HOUR } from '../helpers/queue.js'
import { describeStores } from '../helpers/queue-stores.js'

const ALICE = { address: 'alice@example.com', args: { ENVID: 'env-1', RET: 'HDRS' } }
const fromSender = (m: { mailFrom: string }) => m.mailFrom !== ''

describeStores('queue notices', (startQueue) => {
  it('sends one failure DSN for a recipient refused with 5xx, field by field, and delivers the other', async () => {
    const q = await startQueue({ sink: { rcpt: (a) => (a === 'carol@example.org' ? '550 5.1.1 No such user' : undefined) } })
    afterTest(() => q.close())
    const id = await q.send({ from: ALICE, to: ['bob@example.org', { address: 'carol@example.org', args: { ORCPT: 'rfc822;carol@old.example' } }] })
    await q.queue.runDue()
    const [original, notice] = await q.sink.waitForMessages(2)
    expect(original).toMatchObject({ mailFrom: 'alice@example.com', rcptTo: ['bob@example.org'] })
    expect(notice).toMatchObject({ mailFrom: '', rcptTo: ['alice@example.com'] })
    const [bounced] = q.of('bounced')
    expect(bounced).toMatchObject({ id, rcpt: 'carol@example.org', attempt: 1, reply: '550 5.1.1 No such user', notice: expect.any(String) })
    expect(q.of('queued').map((e) => e.id)).toContain(bounced!.notice)
    const [dsn] = parseDsn(notice!.raw)
    expect(dsn!.defects).toEqual([])
    expect(dsn!.type).toBe('multipart/report')
    expect(dsn!.reportType).toBe('delivery-status')
    expect(dsn!.parts).toEqual(['text/plain', 'message/delivery-status', 'text/rfc822-headers'])
    expect(dsn!.headers).toMatchObject({
      from: 'Mail Delivery System <MAILER-DAEMON@relay.test>',
      to: 'alice@example.com',
      subject: 'Undelivered Mail Returned to Sender',
      'auto-submitted': 'auto-replied',
    })
    expect(dsn!.message).toMatchObject({ 'reporting-mta': 'dns; relay.test', 'original-envelope-id': 'env-1', 'x-relaychain-queue-id': id })
    expect(dsn!.recipients).toEqual([
      {
        'final-recipient': 'rfc822; carol@example.org',
        'original-recipient': 'rfc822; carol@old.example',
        action: 'failed',
        status: '5.1.1',
        'diagnostic-code': 'smtp; 550 5.1.1 No such user',
      },
    ])
    expect(dsn!.human).toContain('<carol@example.org>: 550 5.1.1 No such user')
    expect(dsn!.returned).toEqual({ type: 'text/rfc822-headers', messageId: '<q1@example.com>' })
    expect(await q.entries()).toEqual([])
  })

  it('returns the whole message with RET=FULL', async () => {
    const q = await startQueue({ sink: { rcpt: (a) => (a === 'bob@example.org' ? '550 5.1.1 No such user' : undefined) } })
    afterTest(() => q.close())
    await q.send({ from: { address: 'alice@example.com', args: { RET: 'FULL' } } })
    await q.queue.runDue()
    const [notice] = await q.sink.waitForMessages(1)
    const [dsn] = parseDsn(notice!.raw)
    expect(dsn!.parts[2]).toBe('message/rfc822')
    expect(dsn!.returned).toMatchObject({ messageId: '<q1@example.com>', body: 'Hello through the queue.\n' })
  })

  it('sends one delay notice once delivery has taken 4 hours, with Will-Retry-Until, and no second one', async () => {
    const q = await startQueue({ sink: { data: (m) => (fromSender(m) ? '451 4.3.0 Try again later' : undefined) } })
    afterTest(() => q.close())
    const id = await q.send({ from: ALICE })
    await q.queue.runDue()
    while (q.of('deferred').length < 12) {
      q.clock.advance(q.of('deferred').at(-1)!.next! - q.clock())
      await q.queue.runDue()
    }
    const notices = q.sink.messages.filter((m) => m.mailFrom === '')
    expect(notices).toHaveLength(1)
    const [delayed] = q.of('delayed')
    expect(q.of('delayed')).toHaveLength(1)
    expect(delayed).toMatchObject({ id, rcpt: 'bob@example.org', reply: expect.stringMatching(/^451 4\.3\.0/) })
    // The attempt that passed the 4 hours sent it.
    const deferredBefore = q.of('deferred').filter((e) => e.time <= delayed!.time)
    expect(deferredBefore.length).toBeGreaterThan(1)
    const [dsn] = parseDsn(notices[0]!.raw)
    expect(dsn!.headers.subject).toBe('Delayed Mail (still being retried)')
    expect(dsn!.recipients).toEqual([
      expect.objectContaining({ action: 'delayed', status: '4.3.0', 'will-retry-until': expect.stringMatching(/^\w{3}, \d{1,2} \w{3} 2026 /) }),
    ])
    expect(q.clock() - (await q.queue.show(id))!.header.created).toBeGreaterThanOrEqual(4 * HOUR)
  })

  it('bounces an expired message with Status 4.4.7 and the last reply', async () => {
    const q = await startQueue({
      sink: { data: (m) => (fromSender(m) ? '451 4.3.0 Try again later' : undefined) },
      queue: { retry: { lifetime: '1h', delayNotice: false } },
    })
    afterTest(() => q.close())
    await q.send({ from: ALICE })
    await q.queue.runDue()
    while (!q.of('expired').length) {
      q.clock.advance(q.of('deferred').at(-1)!.next! - q.clock())
      await q.queue.runDue()
    }
    const [notice] = q.sink.messages.filter((m) => m.mailFrom === '')
    const [dsn] = parseDsn(notice!.raw)
    expect(dsn!.recipients).toEqual([
      expect.objectContaining({ action: 'failed', status: '4.4.7', 'diagnostic-code': 'smtp; 451 4.3.0 Try again later' }),
    ])
    expect(q.of('expired')[0]!.notice).toBeDefined()
  })

  it('honours NOTIFY: NEVER gets no failure notice, FAILURE no delay notice', async () => {
    const q = await startQueue({
      sink: {
        rcpt: (a) => (a.startsWith('never') ? '550 5.1.1 No such user' : undefined),
        data: (m) => (fromSender(m) ? '451 4.3.0 Try again later' : undefined),
      },
    })
    afterTest(() => q.close())
    await q.send({
      from: ALICE,
      to: [
        { address: 'never@example.org', args: { NOTIFY: 'NEVER' } },
        { address: 'fail@example.org', args: { NOTIFY: 'FAILURE' } },
      ],
    })
    await q.queue.runDue()
    q.clock.advance(5 * HOUR)
    await q.queue.runDue()
    expect(q.of('bounced').map((e) => e.rcpt)).toEqual(['never@example.org'])
    expect(q.of('bounced')[0]).not.toHaveProperty('notice')
    expect(q.of('deferred').length).toBeGreaterThanOrEqual(2)
    expect(q.of('delayed')).toEqual([])
    expect(q.sink.messages.filter((m) => m.mailFrom === '')).toEqual([])
  })

  it('passes NOTIFY, ORCPT, RET and ENVID to a next hop that supports DSN, and sends no success notice of its own', async () => {
    const q = await startQueue()
    afterTest(() => q.close())
    await q.send({ from: ALICE, to: [{ address: 'bob@example.org', args: { NOTIFY: 'SUCCESS,FAILURE', ORCPT: 'rfc822;bob@old.example' } }] })
    await q.queue.runDue()
    expect(q.sink.messages).toHaveLength(1)
    expect(q.sink.messages[0]!.mailArgs).toMatchObject({ RET: 'HDRS', ENVID: 'env-1' })
    expect(q.sink.messages[0]!.rcptArgs[0]).toMatchObject({ NOTIFY: 'SUCCESS,FAILURE', ORCPT: 'rfc822;bob@old.example' })
  })

  it('sends a "relayed" success notice for NOTIFY=SUCCESS when the next hop does not support DSN', async () => {
    const q = await startQueue({ sink: { dsn: false } })
    afterTest(() => q.close())
    await q.send({ from: ALICE, to: [{ address: 'bob@example.org', args: { NOTIFY: 'SUCCESS' } }] })
    await q.queue.runDue()
    const [, notice] = await q.sink.waitForMessages(2)
    expect(notice).toMatchObject({ mailFrom: '', rcptTo: ['alice@example.com'] })
    const [dsn] = parseDsn(notice!.raw)
    expect(dsn!.recipients).toEqual([expect.objectContaining({ 'final-recipient': 'rfc822; bob@example.org', action: 'relayed', status: '2.0.0' })])
  })

  it('sends a notice nobody can take to the postmaster, with the null sender', async () => {
    const q = await startQueue({
      sink: { rcpt: (a) => (a === 'bob@example.org' || a === 'alice@example.com' ? '550 5.1.1 No such user' : undefined) },
      queue: { postmaster: 'postmaster@relay.test' },
    })
    afterTest(() => q.close())
    await q.send({ from: ALICE })
    await q.queue.runDue()
    const [copy] = await q.sink.waitForMessages(1)
    expect(copy).toMatchObject({ mailFrom: '', rcptTo: ['postmaster@relay.test'] })
    expect(parseDsn(copy!.raw)[0]!.recipients).toEqual([expect.objectContaining({ 'final-recipient': 'rfc822; bob@example.org', action: 'failed' })])
    expect(await q.entries()).toEqual([])
  })

  it('holds a notice nobody can take when there is no postmaster, and never deletes it', async () => {
    const q = await startQueue({ sink: { rcpt: () => '550 5.1.1 No such user' } })
    afterTest(() => q.close())
    await q.send({ from: ALICE })
    await q.queue.runDue()
    const [held] = q.of('held')
    expect(held).toMatchObject({ recipients: ['alice@example.com'], reason: expect.stringContaining('no postmaster') })
    const entries = await q.entries()
    expect(entries).toEqual([expect.objectContaining({ id: held!.id, from: '<>', place: { kind: 'held' } })])
    q.clock.advance(10 * HOUR)
    await q.queue.runDue()
    expect(await q.entries()).toEqual(entries)
  })
})
