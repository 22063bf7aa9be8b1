/**
 * The DNS client against the Node authoritative server (test/helpers/dns/server.ts): typed
 * answers, CNAMEs, NODATA and NXDOMAIN, timeouts and retries, truncation to TCP, spoofed
 * replies, the query's flags, the cache (with a hand-moved clock), aborts. DNSSEC and the AD
 * bit from a real validating resolver are in dnssec.test.ts.
 */
import { describe, expect, it } from 'vitest'
import { RelayError } from '../../../src/core/errors.js'
import { createDnsClient, type DnsAnswer, type DnsClientOptions, DnsError, type DnsResolver } from '../../../src/transports/mx/index.js'
import { afterTest } from '../../helpers/after-test.js'
import { type DnsServerOptions, startDnsServer } from '../../helpers/dns/server.js'
import { a, aaaa, cname, mx, nullMx, type TestZone, testZone, tlsa, txt } from '../../helpers/dns/zones.js'

const ZONES: TestZone[] = [
  testZone('example.test', [
    mx('example.test', 10, 'MX1.Example.Test'),
    mx('example.test', 20, 'mx2.example.test'),
    a('mx1.example.test', '127.0.0.1', 60),
    a('mx1.example.test', '127.0.0.2', 120),
    aaaa('mx1.example.test', '::1'),
    txt('_mta-sts.example.test', ['v=STSv1; ', 'id=20260101']),
    tlsa('_25._tcp.mx1.example.test', 3, 1, 1, 'aa'.repeat(32)),
    cname('alias.example.test', 'mx1.example.test', 30),
    cname('loop1.example.test', 'loop2.example.test'),
    cname('loop2.example.test', 'loop1.example.test'),
    nullMx('nomail.example.test'),
    ...Array.from({ length: 40 }, (_, i) => txt('big.example.test', `record ${i} ${'x'.repeat(60)}`)),
  ]),
]

async function setup(clientOptions: Partial<DnsClientOptions> = {}, serverOptions: DnsServerOptions = {}) {
  const server = await startDnsServer(ZONES, serverOptions)
  afterTest(() => server.close())
  const dns = createDnsClient({ server: server.address, timeout: 200, attempts: 2, deadline: 2000, ...clientOptions })
  return { server, dns }
}

const rejection = (promise: Promise<unknown>): Promise<DnsError> =>
  promise.then(
    () => expect.unreachable('the query should have failed'),
    (err: unknown) => {
      expect(err).toBeInstanceOf(DnsError)
      return err as DnsError
    },
  )

describe('DNS client: answers', () => {
  it('answers MX with lower-case exchanges and their preferences, in the order served', async () => {
    const { dns } = await setup()
    const answer = await dns.mx('Example.Test.')
    expect(answer).toMatchObject({ rcode: 'NOERROR', canonicalName: 'example.test', authenticated: false, ttl: 300 })
    expect(answer.answers).toEqual([
      { preference: 10, exchange: 'mx1.example.test' },
      { preference: 20, exchange: 'mx2.example.test' },
    ])
  })

  it('answers A and AAAA as address strings, with the smallest TTL of the set', async () => {
    const { dns } = await setup()
    expect(await dns.a('mx1.example.test')).toMatchObject({ answers: ['127.0.0.1', '127.0.0.2'], ttl: 60 })
    expect((await dns.aaaa('mx1.example.test')).answers).toEqual(['::1'])
  })

  it('answers TXT as character-strings and TLSA as usage, selector, matching type and data', async () => {
    const { dns } = await setup()
    expect((await dns.txt('_mta-sts.example.test')).answers).toEqual([['v=STSv1; ', 'id=20260101']])
    const [record] = (await dns.tlsa('_25._tcp.mx1.example.test')).answers
    expect(record).toMatchObject({ usage: 3, selector: 1, matchingType: 1 })
    expect(Buffer.from(record!.data).toString('hex')).toBe('aa'.repeat(32))
  })

  it("answers a null MX (RFC 7505) as preference 0, exchange '.'", async () => {
    const { dns } = await setup()
    expect((await dns.mx('nomail.example.test')).answers).toEqual([{ preference: 0, exchange: '.' }])
  })

  it('follows a CNAME: records of the target, its name as canonicalName, the smallest TTL on the way', async () => {
    const { dns } = await setup()
    expect(await dns.a('alias.example.test')).toMatchObject({ canonicalName: 'mx1.example.test', answers: ['127.0.0.1', '127.0.0.2'], ttl: 30 })
  })

  it('answers NODATA with no records and the SOA negative TTL', async () => {
    const { dns } = await setup()
    expect(await dns.tlsa('mx1.example.test')).toMatchObject({ rcode: 'NOERROR', canonicalName: 'mx1.example.test', answers: [], ttl: 300 })
    expect(await dns.mx('alias.example.test')).toMatchObject({ canonicalName: 'mx1.example.test', answers: [], ttl: 30 })
  })

  it('sends RD, AD and EDNS DO, with a random id per query', async () => {
    const { server, dns } = await setup({ cache: false })
    for (let i = 0; i < 8; i++) await dns.a('mx1.example.test')
    expect(server.queries.every((q) => q.flags.rd && q.flags.ad && q.flags.do)).toBe(true)
    expect(new Set(server.queries.map((q) => q.id)).size).toBeGreaterThan(1)
  })

  it('works with a resolver on ::1', async () => {
    const { server, dns } = await setup({}, { host: '::1' })
    expect(server.address).toMatch(/^\[::1\]:\d+$/)
    expect((await dns.a('mx1.example.test')).answers).toHaveLength(2)
  })
})

describe('DNS client: failures', () => {
  it('rejects a name that does not exist with a permanent ERR_DNS_NXDOMAIN', async () => {
    const { dns } = await setup()
    const err = await rejection(dns.mx('nowhere.example.test'))
    expect(err).toMatchObject({ code: 'ERR_DNS_NXDOMAIN', temporary: false, rcode: 'NXDOMAIN', hostname: 'nowhere.example.test', type: 'MX' })
  })

  it('rejects SERVFAIL and REFUSED with temporary errors', async () => {
    const { server, dns } = await setup()
    server.setFault('servfail', 'example.test')
    expect(await rejection(dns.mx('example.test'))).toMatchObject({ code: 'ERR_DNS_SERVFAIL', temporary: true, rcode: 'SERVFAIL' })
    expect(await rejection(dns.mx('outside.invalid'))).toMatchObject({ code: 'ERR_DNS_REFUSED', temporary: true })
  })

  it('resends after each timeout, then rejects with a temporary ERR_DNS_TIMEOUT', async () => {
    const { server, dns } = await setup({ timeout: 100, attempts: 3 })
    server.setFault('timeout')
    const started = performance.now()
    expect(await rejection(dns.a('mx1.example.test'))).toMatchObject({ code: 'ERR_DNS_TIMEOUT', temporary: true })
    expect(performance.now() - started).toBeGreaterThanOrEqual(290)
    expect(server.queries.map((q) => q.transport)).toEqual(['udp', 'udp', 'udp'])
    expect(new Set(server.queries.map((q) => q.id)).size).toBe(1) // a resend, not a new query
  })

  it('stops at the total deadline even with attempts left', async () => {
    const { server, dns } = await setup({ timeout: 1000, attempts: 5, deadline: 150 })
    server.setFault('timeout')
    const started = performance.now()
    expect(await rejection(dns.a('mx1.example.test'))).toMatchObject({ code: 'ERR_DNS_TIMEOUT' })
    expect(performance.now() - started).toBeLessThan(900)
  })

  it('rejects with ERR_DNS_ABORTED as soon as the signal aborts, and at once when already aborted', async () => {
    const { server, dns } = await setup({ timeout: 5000 })
    server.setFault('timeout')
    const controller = new AbortController()
    setTimeout(() => controller.abort(new Error('shutting down')), 50)
    const err = await rejection(dns.a('mx1.example.test', { signal: controller.signal }))
    expect(err).toMatchObject({ code: 'ERR_DNS_ABORTED', temporary: true })
    expect((err.cause as Error).message).toBe('shutting down')
    expect(await rejection(dns.a('mx1.example.test', { signal: AbortSignal.abort() }))).toMatchObject({ code: 'ERR_DNS_ABORTED' })
  })

  it('rejects a CNAME loop with a temporary ERR_DNS_BAD_RESPONSE', async () => {
    const { dns } = await setup()
    expect(await rejection(dns.a('loop1.example.test'))).toMatchObject({ code: 'ERR_DNS_BAD_RESPONSE', temporary: true })
  })

  it('rejects an invalid name without sending anything, and refuses a server that is not an IP address', async () => {
    const { server, dns } = await setup()
    for (const name of ['', 'a..b', `${'x'.repeat(64)}.test`, 'sp ace.test', 'ex\u00e4mple.test']) {
      expect(await rejection(dns.a(name))).toMatchObject({ code: 'ERR_DNS_INVALID_NAME', temporary: false })
    }
    expect(server.queries).toHaveLength(0)
    expect(() => createDnsClient({ server: 'localhost:53' })).toThrow(RelayError)
    expect(() => createDnsClient({ server: '127.0.0.1:0' })).toThrow(/IP address with an optional port/)
  })

  it('rejects with a temporary error when nothing listens on the port', async () => {
    const { server } = await setup()
    const port = server.port
    await server.close()
    const dns = createDnsClient({ server: `127.0.0.1:${port}`, timeout: 200, attempts: 2 })
    const err = await rejection(dns.a('mx1.example.test'))
    expect(err.temporary).toBe(true)
    expect(['ERR_DNS_NETWORK', 'ERR_DNS_TIMEOUT']).toContain(err.code)
  })
})

describe('DNS client: transport', () => {
  it('asks again over TCP when the UDP reply is truncated', async () => {
    const { server, dns } = await setup()
    server.setFault('truncate', 'mx1.example.test')
    expect((await dns.a('mx1.example.test')).answers).toEqual(['127.0.0.1', '127.0.0.2'])
    expect(server.queries.map((q) => q.transport)).toEqual(['udp', 'tcp'])
  })

  it('gets an answer too large for UDP over TCP', async () => {
    const { server, dns } = await setup()
    expect((await dns.txt('big.example.test')).answers).toHaveLength(40)
    expect(server.queries.map((q) => q.transport)).toEqual(['udp', 'tcp'])
  })

  it('ignores replies with the wrong id, the wrong question or from another port, and takes the real one', async () => {
    const { server, dns } = await setup()
    server.setFault('spoof')
    expect((await dns.a('mx1.example.test')).answers).toEqual(['127.0.0.1', '127.0.0.2'])
  })

  it('reports the AD bit of a resolver on loopback as authenticated', async () => {
    const { dns } = await setup({}, { authenticatedData: true })
    expect(dns.trustsAuthenticatedData).toBe(true)
    expect(await dns.mx('example.test')).toMatchObject({ authenticated: true })
  })
})

describe('DNS client: cache', () => {
  function clock() {
    let now = 1_000_000
    return { now: () => now, advance: (seconds: number) => void (now += seconds * 1000) }
  }

  it('answers from the cache until the TTL runs out, reporting the TTL that remains', async () => {
    const time = clock()
    const { server, dns } = await setup({ cache: { clock: time.now } })
    expect((await dns.a('mx1.example.test')).ttl).toBe(60)
    time.advance(45)
    expect(await dns.a('mx1.example.test')).toMatchObject({ answers: ['127.0.0.1', '127.0.0.2'], ttl: 15 })
    expect(server.queries).toHaveLength(1)
    time.advance(15)
    expect((await dns.a('mx1.example.test')).ttl).toBe(60)
    expect(server.queries).toHaveLength(2)
  })

  it('keeps NXDOMAIN and NODATA for the negative TTL, and never keeps a failure', async () => {
    const time = clock()
    const { server, dns } = await setup({ cache: { clock: time.now } })
    for (let i = 0; i < 2; i++) expect(await rejection(dns.mx('gone.example.test'))).toMatchObject({ code: 'ERR_DNS_NXDOMAIN' })
    for (let i = 0; i < 2; i++) expect((await dns.mx('mx1.example.test')).answers).toEqual([])
    expect(server.queries).toHaveLength(2)
    time.advance(300)
    await rejection(dns.mx('gone.example.test'))
    expect(server.queries).toHaveLength(3)

    server.setFault('servfail', 'example.test')
    for (let i = 0; i < 2; i++) await rejection(dns.mx('example.test'))
    expect(server.queries).toHaveLength(5)
  })

  it('holds at most maxEntries answers and caps TTLs at maxTtl', async () => {
    const time = clock()
    const { server, dns } = await setup({ cache: { clock: time.now, maxEntries: 2, maxTtl: 10 } })
    await dns.a('mx1.example.test')
    await dns.aaaa('mx1.example.test')
    await dns.mx('example.test')
    await dns.mx('example.test')
    expect(server.queries).toHaveLength(3)
    await dns.a('mx1.example.test') // evicted, the oldest of three
    expect(server.queries).toHaveLength(4)
    time.advance(10)
    expect((await dns.mx('example.test')).ttl).toBe(300) // capped entry expired after 10 s
    expect(server.queries).toHaveLength(5)
  })

  it('can be turned off', async () => {
    const { server, dns } = await setup({ cache: false })
    await dns.a('mx1.example.test')
    await dns.a('mx1.example.test')
    expect(server.queries).toHaveLength(2)
  })
})

describe('DnsResolver', () => {
  it('can be an object of plain functions (what tests and split-horizon setups pass instead of the client)', async () => {
    const ok = <T>(answers: T[]): DnsAnswer<T> => ({ rcode: 'NOERROR', canonicalName: 'example.test', answers, authenticated: false, ttl: 60 })
    const resolver: DnsResolver = {
      mx: async () => ok([{ preference: 10, exchange: 'mx.example.test' }]),
      a: async () => ok(['127.0.0.1']),
      aaaa: async () => ok([]),
      tlsa: async (name) => {
        throw new DnsError('ERR_DNS_NXDOMAIN', name, 'TLSA', 'no such domain')
      },
      txt: async () => ok([['v=STSv1; id=1']]),
    }
    expect((await resolver.mx('example.test')).answers[0]?.exchange).toBe('mx.example.test')
    await expect(resolver.tlsa('_25._tcp.mx.example.test')).rejects.toMatchObject({ code: 'ERR_DNS_NXDOMAIN', temporary: false })
  })
})
