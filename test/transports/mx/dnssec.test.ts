/**
 * The DNS client against a real validating resolver (unbound, zones signed with ldns; see
 * test/helpers/dns/resolver.ts): AD=1 from a signed zone becomes `authenticated`, an insecure
 * delegation is answered but not authenticated, DNSSEC-bogus data is SERVFAIL and so a
 * temporary error (defer, never downgrade), and no query ever leaves the machine.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createDnsClient, type DnsClient, DnsError } from '../../../src/transports/mx/index.js'
import { haveValidatingResolver, startValidatingResolver, type ValidatingResolver } from '../../helpers/dns/resolver.js'
import { a, mx, testZone, tlsa, txt } from '../../helpers/dns/zones.js'

const HASH = 'ab'.repeat(32)
const ZONES = [
  testZone('secure.test', [
    mx('secure.test', 10, 'mx.secure.test'),
    a('mx.secure.test', '127.0.0.1'),
    tlsa('_25._tcp.mx.secure.test', 3, 1, 1, HASH),
    txt('_mta-sts.secure.test', 'v=STSv1; id=1'),
  ]),
  testZone(
    'insecure.test',
    [mx('insecure.test', 10, 'mx.insecure.test'), a('mx.insecure.test', '127.0.0.2'), tlsa('_25._tcp.mx.insecure.test', 3, 1, 1, HASH)],
    { security: 'unsigned' },
  ),
  testZone('expired.test', [mx('expired.test', 10, 'mx.expired.test'), a('mx.expired.test', '127.0.0.3')], { security: 'expired' }),
]

const failure = async (promise: Promise<unknown>): Promise<DnsError> => {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(err).toBeInstanceOf(DnsError)
  return err as DnsError
}

describe.runIf(haveValidatingResolver())('DNS client and a validating resolver (unbound)', () => {
  let resolver: ValidatingResolver
  let dns: DnsClient

  beforeAll(async () => {
    resolver = await startValidatingResolver(ZONES, { verbosity: 3 })
    console.log(`unbound validating resolver ready in ${resolver.startupMs} ms (keys, signing, start-up) on ${resolver.address}`)
    dns = createDnsClient({ server: resolver.address, cache: false })
  })
  afterAll(() => resolver?.stop())

  it('reports answers from a signed zone as authenticated (AD=1 from loopback)', async () => {
    expect(await dns.mx('secure.test')).toMatchObject({ answers: [{ preference: 10, exchange: 'mx.secure.test' }], authenticated: true })
    expect(await dns.a('mx.secure.test')).toMatchObject({ answers: ['127.0.0.1'], authenticated: true })
    const answer = await dns.tlsa('_25._tcp.mx.secure.test')
    expect(answer.authenticated).toBe(true)
    expect(Buffer.from(answer.answers[0]!.data).toString('hex')).toBe(HASH)
    expect((await dns.txt('_mta-sts.secure.test')).answers).toEqual([['v=STSv1; id=1']])
  })

  it('reports a signed NODATA as authenticated and empty, and a signed NXDOMAIN as a permanent, authenticated denial', async () => {
    expect(await dns.tlsa('mx.secure.test')).toMatchObject({ answers: [], authenticated: true })
    expect(await failure(dns.tlsa('_25._tcp.missing.secure.test'))).toMatchObject({ code: 'ERR_DNS_NXDOMAIN', temporary: false, authenticated: true })
    expect(await failure(dns.tlsa('_25._tcp.missing.insecure.test'))).toMatchObject({ code: 'ERR_DNS_NXDOMAIN', authenticated: false })
  })

  it('answers from an insecure delegation, not authenticated', async () => {
    expect(await dns.mx('insecure.test')).toMatchObject({ answers: [{ preference: 10, exchange: 'mx.insecure.test' }], authenticated: false })
    expect(await dns.tlsa('_25._tcp.mx.insecure.test')).toMatchObject({ authenticated: false })
  })

  it('rejects DNSSEC-bogus data (expired signatures) with a temporary SERVFAIL: defer, never downgrade', async () => {
    const err = await failure(dns.mx('expired.test'))
    expect(err).toMatchObject({ code: 'ERR_DNS_SERVFAIL', temporary: true })
    expect(resolver.log()).toMatch(/validation failure <expired\.test\. MX IN>.*(expired|signature)/)
  })

  it('sends nothing beyond loopback: a name outside the test zones is refused at once, and unbound sent no query at all', async () => {
    const started = performance.now()
    for (const name of ['example.com', 'com', 'mx.example.net']) {
      expect(await failure(dns.a(name))).toMatchObject({ code: 'ERR_DNS_REFUSED', temporary: true })
    }
    expect(performance.now() - started).toBeLessThan(1000)
    const log = resolver.log()
    expect(log).toMatch(/resolving mx\.secure\.test\. A IN/) // verbosity 3 does log the iterator's work…
    expect(log).not.toMatch(/sending query:|sending to target:/) // …and it never sent a packet
  })

  it('never counts AD from a resolver that is not on loopback', () => {
    // The rule itself is unit-tested in resolver-address.test.ts; here the client's flag.
    expect(dns.trustsAuthenticatedData).toBe(true)
    expect(createDnsClient({ server: '192.0.2.53' }).trustsAuthenticatedData).toBe(false)
    expect(createDnsClient({ server: '[2001:db8::53]:53' }).trustsAuthenticatedData).toBe(false)
  })
})
