import { afterEach, describe, expect, it } from 'vitest'
import { relayTag } from '../../src/stages/relay-tag.js'
import { allowAll, type ReportingHarness, startReporting } from './harness.js'

let h: ReportingHarness | undefined
afterEach(async () => {
  await h?.close()
  h = undefined
})

const sinkReplies = {
  rcpt: (a: string) =>
    a.startsWith('nobody@')
      ? '550 5.1.1 No such user'
      : a.startsWith('policy@')
        ? '550 5.7.1 Sender blocked by policy'
        : a.startsWith('later@')
          ? '452 4.2.2 Mailbox full'
          : undefined,
}

describe('reporting events from the engine and the queue', () => {
  it('reports accepted, queued, delivered, deferred and hard/block bounces with status, category and remote MTA, each with a unique id', async () => {
    h = await startReporting({ sink: sinkReplies, stages: (reporting) => [allowAll, relayTag({ reporting })] })
    await h.send({
      to: ['ok@example.org', 'nobody@example.org', 'policy@example.net', 'later@example.org'],
      headers: { 'X-Relay-Tag': 'spring-sale' },
      messageId: '<m1@shop.example>',
    })
    await h.drain()
    const types = h.events.map((e) => e.type)
    expect(types.slice(0, 2)).toEqual(['accepted', 'queued'])
    const accepted = h.of('accepted')[0]!
    expect(accepted).toMatchObject({ sender: 'news@shop.example', messageId: '<m1@shop.example>', tags: ['spring-sale'], user: 'news' })
    expect(h.of('delivered').map((e) => e.recipient)).toEqual(['ok@example.org'])
    expect(h.of('delivered')[0]).toMatchObject({
      queueId: accepted.queueId,
      messageId: '<m1@shop.example>',
      tags: ['spring-sale'],
      remoteMta: expect.any(String),
    })
    const bounces = Object.fromEntries(h.of('bounced').map((b) => [b.recipient, b]))
    expect(bounces['nobody@example.org']).toMatchObject({
      bounceType: 'hard',
      category: 'user-unknown',
      status: '5.1.1',
      source: 'relay',
      diagnostic: expect.stringContaining('550 5.1.1'),
    })
    expect(bounces['policy@example.net']).toMatchObject({ bounceType: 'block', status: '5.7.1' })
    expect(h.of('deferred')[0]).toMatchObject({ recipient: 'later@example.org', attempt: 1, reply: expect.stringContaining('452 4.2.2') })
    expect(new Set(h.events.map((e) => e.id)).size).toBe(h.events.length)
  })

  it('strips X-Relay-Tag before delivery and honours it only from an authenticated user', async () => {
    h = await startReporting({ stages: (reporting) => [allowAll, relayTag({ reporting })] })
    await h.send({ to: ['a@example.org'], headers: { 'X-Relay-Tag': 'mine' }, auth: false })
    await h.send({ to: ['b@example.org'], headers: { 'X-Relay-Tag': 'stream-a, stream-b' } })
    await h.drain()
    const [anonymous, authenticated] = h.of('accepted')
    expect(anonymous!.tags).toEqual([])
    expect(authenticated!.tags).toEqual(['stream-a', 'stream-b'])
    await h.sink.waitForMessages(2)
    for (const m of h.sink.messages) expect(m.raw.toString()).not.toMatch(/x-relay-tag/i)
  })

  it('reports a message refused before the queue as rejected, with the reply and the stage', async () => {
    const refuseSpam = {
      name: 'no-spam',
      data: async () => Promise.reject(Object.assign(new (await import('../../src/index.js')).SmtpError(554, '5.7.1', 'Message refused'), {})),
    }
    h = await startReporting({ stages: () => [allowAll, refuseSpam] })
    await expect(h.send({ to: ['a@example.org'] })).rejects.toThrow(/554/)
    expect(h.of('rejected')[0]).toMatchObject({
      phase: 'data',
      reply: expect.stringMatching(/^554 5\.7\.1/),
      stage: 'no-spam',
      sender: 'news@shop.example',
    })
  })

  it('suppresses a hard-bounced address for every sender, never a policy-blocked one', async () => {
    h = await startReporting({ sink: sinkReplies })
    await h.send({ to: ['nobody@example.org', 'policy@example.net'] })
    await h.drain()
    expect(h.suppressions.check('nobody@example.org', 'other@else.example')).toMatchObject({ reason: 'hard-bounce', scope: '*' })
    expect(h.suppressions.check('policy@example.net', 'news@shop.example')).toBeUndefined()
  })
})
