/**
 * The queue's schedule, with the clock moved by hand: when a deferred recipient is tried again,
 * how the delay grows, when a delay notice goes out, when a message expires, and what each
 * attempt announces.
 */
import { expect, it } from 'vitest'
import { afterTest } from '../helpers/after-test.js'
import { HOUR, MINUTE, START } from '../helpers/queue.js'
import { describeStores } from '../helpers/queue-stores.js'

describeStores('queue retries', (startQueue) => {
  it('defers on a 4xx, does not try again before the minimum backoff, and delivers on the next attempt', async () => {
    let refuse = true
    const q = await startQueue({ sink: { data: () => (refuse ? '451 4.3.0 Try again later' : undefined) } })
    afterTest(() => q.close())
    const id = await q.send()
    await q.queue.runDue()
    expect(q.of('deferred')).toEqual([
      expect.objectContaining({ id, rcpt: 'bob@example.org', attempt: 1, reply: expect.stringMatching(/^451 4\.3\.0 /), next: START + 5 * MINUTE }),
    ])
    expect((await q.entries())[0]).toMatchObject({ id, recipients: [{ address: 'bob@example.org', status: 'deferred' }] })
    refuse = false
    q.clock.advance(4 * MINUTE)
    await q.queue.runDue()
    expect(q.sink.messages).toHaveLength(0)
    q.clock.advance(MINUTE)
    await q.queue.runDue()
    expect(q.sink.messages).toHaveLength(1)
    expect(q.of('delivered')).toEqual([
      expect.objectContaining({ id, rcpt: 'bob@example.org', attempt: 2, response: expect.stringMatching(/^250 /) }),
    ])
    expect(await q.entries()).toEqual([])
  })

  it('waits about as long again as the message has waited, between 5 minutes and an hour', async () => {
    const q = await startQueue({ sink: { data: () => '450 4.2.0 Mailbox busy' } })
    afterTest(() => q.close())
    await q.send()
    await q.queue.runDue()
    for (let i = 0; i < 7; i++) {
      const last = q.of('deferred').at(-1)!
      q.clock.advance(last.next! - q.clock())
      await q.queue.runDue()
    }
    const delays = q.of('deferred').map((e, i, all) => ((e.next ?? 0) - (i ? all[i - 1]!.next! : START)) / MINUTE)
    expect(delays).toEqual([5, 5, 10, 20, 40, 60, 60, 60])
    expect(q.of('deferred').map((e) => e.attempt)).toEqual([1, 2, 3, 4, 5, 6, 7, 8])
  })

  it('spreads retries with jitter of ±10 %', async () => {
    const q = await startQueue({ sink: { data: () => '450 4.2.0 Mailbox busy' }, queue: { random: () => 0 } })
    afterTest(() => q.close())
    await q.send()
    await q.queue.runDue()
    expect(q.of('deferred')[0]!.next).toBe(START + 4.5 * MINUTE)
  })

  it('fails on a 5xx at once, without another attempt', async () => {
    const q = await startQueue({ sink: { rcpt: () => '550 5.1.1 No such user' } })
    afterTest(() => q.close())
    const id = await q.send({ from: null })
    await q.queue.runDue()
    expect(q.of('bounced')).toEqual([expect.objectContaining({ id, rcpt: 'bob@example.org', attempt: 1, reply: '550 5.1.1 No such user' })])
    expect(q.of('bounced')[0]).not.toHaveProperty('notice') // the null sender gets none
    expect(await q.entries()).toEqual([])
  })

  it('gives up after the lifetime with 4.4.7, and the message is gone from the queue', async () => {
    const q = await startQueue({ sink: { data: () => '451 4.3.0 Try again later' }, queue: { retry: { lifetime: '2h', delayNotice: false } } })
    afterTest(() => q.close())
    const id = await q.send({ from: null })
    await q.queue.runDue()
    while (q.clock() - START < 2 * HOUR) {
      q.clock.advance(q.of('deferred').at(-1)!.next! - q.clock())
      await q.queue.runDue()
    }
    const attempts = q.of('deferred').length
    expect(q.of('expired')).toEqual([
      expect.objectContaining({ id, rcpt: 'bob@example.org', attempt: attempts, reply: expect.stringMatching(/^451 4\.3\.0/) }),
    ])
    expect(await q.entries()).toEqual([])
  })
})
