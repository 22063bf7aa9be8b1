import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { RelayError, type SharedStore, type Stage } from '../../src/index.js'
import { type RateLimitOptions, rateLimit } from '../../src/stages/rate-limit.js'
import { type MemoryTransport, memoryTransport } from '../../src/testing/index.js'
import { afterTest } from '../helpers/after-test.js'
import { havePeer } from '../helpers/peers.js'
import { RawSmtp } from '../helpers/raw-smtp.js'
import { startRedis, type TestRedis } from '../helpers/redis.js'
import { allowAll, startRelay, type TestRelay } from '../helpers/relay.js'

/** A relay with `rateLimit(options)` after a relay-everything policy; the test's own key prefix keeps Redis runs apart. */
async function limitedRelay(options: RateLimitOptions): Promise<{ t: TestRelay; transport: MemoryTransport }> {
  const transport = memoryTransport()
  const t = await startRelay({ stages: [allowAll, rateLimit(options)], transport })
  afterTest(() => t.close())
  return { t, transport }
}

/** One transaction on a raw connection: the replies to MAIL, each RCPT, and the end of DATA (if reached). */
async function send(port: number, from: string, to: readonly string[]): Promise<string[]> {
  const { client } = await RawSmtp.connect(port)
  try {
    await client.command('EHLO raw.test')
    const replies = [await client.command(`MAIL FROM:<${from}>`)]
    if (!replies[0]!.startsWith('250')) return replies
    for (const rcpt of to) replies.push(await client.command(`RCPT TO:<${rcpt}>`))
    if (!replies.slice(1).some((r) => r.startsWith('250'))) return replies
    await client.command('DATA')
    replies.push(await client.command('Subject: x\r\n\r\nx\r\n.'))
    return replies
  } finally {
    client.close()
  }
}

const OK = '250 Accepted'

/**
 * `waitOut(ms)` lets a window pass: memory windows read an injected clock moved by hand; Redis
 * counts in its own time, so there the test waits.
 */
function windowTests(store: () => SharedStore, prefix: string, waitOut: (ms: number) => Promise<void>, clock?: () => number) {
  it('refuses MAIL with 451 4.7.1, naming the window, once the messages of the window are used up, and accepts again in the next window', async () => {
    const { t, transport } = await limitedRelay({
      store: store(),
      limits: [{ key: 'sender-domain', messages: 2, window: '2s' }],
      ...(clock ? { clock } : {}),
    })
    const from = `a@${prefix}-messages.test`
    expect((await send(t.port, from, ['b@example.org']))[0]).toBe(OK)
    // The window's time: the injected clock where there is one (real time would leak into it under load).
    const time = clock ?? Date.now
    const windowStart = time()
    expect((await send(t.port, from, ['b@example.org']))[0]).toBe(OK)
    expect(await send(t.port, from, ['b@example.org'])).toEqual(['451 4.7.1 Rate limit exceeded: at most 2 messages per 2 seconds, try again later'])
    expect((await send(t.port, `a@${prefix}-other.test`, ['b@example.org']))[0]).toBe(OK)
    expect(transport.messages).toHaveLength(3)
    await waitOut(2100 - (time() - windowStart))
    expect((await send(t.port, from, ['b@example.org']))[0]).toBe(OK)
  })

  it('refuses RCPT with 452 4.7.1 past the recipients of the window, counting only recipients that were sent', async () => {
    const { t } = await limitedRelay({ store: store(), limits: [{ key: 'sender-domain', recipients: 3, window: '1h' }] })
    const from = `a@${prefix}-recipients.test`
    const limit = '452 4.7.1 Rate limit exceeded: at most 3 recipients per 1 hour, try again later'
    // A transaction that never reaches DATA counts nothing.
    const { client } = await RawSmtp.connect(t.port)
    await client.command('EHLO raw.test')
    await client.command(`MAIL FROM:<${from}>`)
    for (const rcpt of ['1@x.test', '2@x.test', '3@x.test']) expect(await client.command(`RCPT TO:<${rcpt}>`)).toBe(OK)
    expect(await client.command('RCPT TO:<4@x.test>')).toBe(limit)
    client.close()
    expect(await send(t.port, from, ['1@x.test', '2@x.test'])).toEqual([OK, OK, OK, expect.stringMatching(/^250 2\.0\.0 /)])
    expect(await send(t.port, from, ['3@x.test', '4@x.test'])).toEqual([OK, OK, limit, expect.stringMatching(/^250 2\.0\.0 /)])
    expect(await send(t.port, from, ['5@x.test'])).toEqual([OK, limit])
  })
}

describe('rate-limit (memory store)', () => {
  let now = Date.now()
  windowTests(
    () => 'memory',
    'mem',
    async (ms) => void (now += ms),
    () => now,
  )

  it('counts per client IP and per authenticated user, and skips user rules for unauthenticated clients', async () => {
    const { t } = await limitedRelay({
      limits: [
        { key: 'ip', messages: 1, window: '1h' },
        { key: 'user', messages: 1, window: '1h' },
      ],
    })
    expect((await send(t.port, 'a@one.test', ['b@example.org']))[0]).toBe(OK)
    expect((await send(t.port, 'a@two.test', ['b@example.org']))[0]).toBe(
      '451 4.7.1 Rate limit exceeded: at most 1 message per 1 hour, try again later',
    )
  })

  it('caps the recipients of one message with 452 4.5.3', async () => {
    const { t, transport } = await limitedRelay({ recipientsPerMessage: 2 })
    expect(await send(t.port, 'a@example.com', ['1@x.test', '2@x.test', '3@x.test'])).toEqual([
      OK,
      OK,
      OK,
      '452 4.5.3 Too many recipients',
      expect.stringMatching(/^250 /),
    ])
    expect(transport.messages[0]!.envelope.rcptTo.map((r) => r.address)).toEqual(['1@x.test', '2@x.test'])
  })

  it('refuses invalid limits when the chain is built', () => {
    expect(() => rateLimit({})).toThrow(RelayError)
    expect(() => rateLimit({ limits: [{ key: 'ip', window: '1h' }] })).toThrow(/neither/)
    expect(() => rateLimit({ limits: [{ key: 'ip', messages: 10, window: 1500 }] })).toThrow(/whole seconds/)
    expect(() => rateLimit({ limits: [{ key: 'ip', messages: 0, window: '1d' }] })).toThrow(/positive integer/)
    expect(() => rateLimit({ limits: [{ key: 'host' as 'ip', messages: 1, window: '1d' }] })).toThrow(/key must be/)
  })
})

describe.runIf(havePeer('redis-server', 'apt-get install -y redis-server'))('rate-limit (Redis store)', () => {
  let redis: TestRedis
  beforeAll(async () => void (redis = await startRedis()))
  afterAll(async () => redis?.stop())

  windowTests(
    () => ({ redis: redis.url }),
    'redis',
    (ms) => sleep(ms),
  ) // Redis's own clock: real time

  it('shares the counters between relay processes', async () => {
    const stages = (): Stage[] => [
      allowAll,
      rateLimit({ store: { redis: redis.url }, limits: [{ key: 'sender-domain', messages: 2, window: '1h' }] }),
    ]
    const a = await startRelay({ stages: stages(), transport: memoryTransport() })
    const b = await startRelay({ stages: stages(), transport: memoryTransport() })
    afterTest(
      () => a.close(),
      () => b.close(),
    )
    expect((await send(a.port, 'x@shared.test', ['y@example.org']))[0]).toBe(OK)
    expect((await send(b.port, 'x@shared.test', ['y@example.org']))[0]).toBe(OK)
    expect((await send(a.port, 'x@shared.test', ['y@example.org']))[0]).toMatch(/^451 4\.7\.1 /)
  })
})
