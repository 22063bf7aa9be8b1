/**
 * The pure decisions of direct MX delivery, table by table: which addresses are refused, which
 * TLS each host gets from DANE, MTA-STS, requireTls and REQUIRETLS, the order of the MX walk
 * with an injected random source, the keyed concurrency limit, and every reply code. A DNS of
 * plain functions stands in where no server is needed (the resolver interface allows it).
 */
import { describe, expect, it } from 'vitest'
import type { DnsResolver, MxRecord } from '../../../src/transports/mx/dns-types.js'
import { addressGate, isSpecialAddress, mxReply } from '../../../src/transports/mx/index.js'
import { KeyedLimiter } from '../../../src/transports/mx/limits.js'
import { lookupMx } from '../../../src/transports/mx/mx-walk.js'
import type { StsPolicy } from '../../../src/transports/mx/sts-fetch.js'
import { decideHostTls, type HostTlsInput } from '../../../src/transports/mx/tls-policy.js'

describe('the address policy', () => {
  it.each([
    '127.0.0.1',
    '10.1.2.3',
    '172.16.0.1',
    '192.168.1.1',
    '169.254.169.254',
    '100.64.0.1',
    '0.0.0.0',
    '192.0.2.1',
    '198.51.100.7',
    '203.0.113.9',
    '224.0.0.1',
    '255.255.255.255',
    '::1',
    '::',
    'fe80::1',
    'fd00::1',
    'ff02::1',
    '2001:db8::1',
    '::ffff:10.0.0.1',
    '::ffff:127.0.0.1',
    '2002:0a00:0001::1',
    '64:ff9b::7f00:1',
    'not-an-ip',
  ])('refuses %s by default', (ip) => {
    expect(isSpecialAddress(ip)).toBe(true)
    expect(addressGate()(ip)).toBe(false)
  })

  it.each(['8.8.8.8', '192.0.1.1', '2606:4700::1111', '2a00:1450:4001::1b', '::ffff:8.8.4.4', '64:ff9b::808:808'])('allows the routable %s', (ip) => {
    expect(addressGate()(ip)).toBe(true)
  })

  it('lets allowNetworks through and nothing else', () => {
    const gate = addressGate(['127.0.0.0/8', '10.1.2.0/24'])
    expect([gate('127.0.0.2'), gate('10.1.2.3'), gate('10.1.3.1'), gate('192.168.0.1')]).toEqual([true, true, false, false])
    expect(() => addressGate(['0.0.0.0/0'])).toThrow(/wider than/)
  })
})

describe('the TLS of one host', () => {
  const sts = (mode: StsPolicy['mode']): StsPolicy => ({ id: '1', mode, mx: ['mx.example.org'], maxAge: 86400, lines: [] })
  const dane = {
    kind: 'dane' as const,
    records: [{ usage: 3, selector: 1, matchingType: 1, data: new Uint8Array(32) }],
    hostnames: ['mx.example.org'],
  }
  const base: HostTlsInput = { host: 'mx.example.org', dane: { kind: 'none' }, stsAllows: false, requireTlsMessage: false, mxSecure: false }
  const decide = (input: Partial<HostTlsInput>) => {
    const d = decideHostTls({ ...base, ...input })
    return 'skip' in d
      ? { skip: d.skip.toReply(), failure: d.failure.resultType }
      : { name: d.tls.name, require: d.tls.require, verify: d.tls.verify, enforce: d.tls.enforce, ext: d.tls.requireTlsExtension }
  }

  it.each([
    ['no policy', {}, { name: 'opportunistic', require: false, verify: 'none', enforce: false, ext: false }],
    ['DANE', { dane }, { name: 'dane', require: true, verify: 'dane', enforce: true, ext: false }],
    [
      'DANE over an enforced policy that does not name the host',
      { dane, sts: sts('enforce') },
      { name: 'dane', require: true, verify: 'dane', enforce: true, ext: false },
    ],
    ['MTA-STS enforce', { sts: sts('enforce'), stsAllows: true }, { name: 'mta-sts', require: true, verify: 'pkix', enforce: true, ext: false }],
    [
      'MTA-STS testing',
      { sts: sts('testing'), stsAllows: true },
      { name: 'mta-sts-testing', require: false, verify: 'pkix', enforce: false, ext: false },
    ],
    ['MTA-STS none', { sts: sts('none') }, { name: 'opportunistic', require: false, verify: 'none', enforce: false, ext: false }],
    [
      'TLSA without usable records',
      { dane: { kind: 'dane-encrypt' as const, records: [] } },
      { name: 'dane-encrypt', require: true, verify: 'none', enforce: false, ext: false },
    ],
    [
      'TLSA without usable records, and an enforced policy',
      { dane: { kind: 'dane-encrypt' as const, records: [] }, sts: sts('enforce'), stsAllows: true },
      { name: 'mta-sts', require: true, verify: 'pkix', enforce: true, ext: false },
    ],
    ["requireTls 'encrypt'", { requireTls: 'encrypt' as const }, { name: 'require-tls', require: true, verify: 'none', enforce: false, ext: false }],
    ["requireTls 'verify'", { requireTls: 'verify' as const }, { name: 'require-tls', require: true, verify: 'pkix', enforce: true, ext: false }],
    [
      "requireTls 'encrypt' on MTA-STS testing",
      { requireTls: 'encrypt' as const, sts: sts('testing'), stsAllows: true },
      { name: 'require-tls', require: true, verify: 'pkix', enforce: false, ext: false },
    ],
    [
      'REQUIRETLS, DNSSEC MX',
      { requireTlsMessage: true, mxSecure: true },
      { name: 'require-tls', require: true, verify: 'pkix', enforce: true, ext: true },
    ],
    [
      'REQUIRETLS, MTA-STS names the host',
      { requireTlsMessage: true, sts: sts('testing'), stsAllows: true },
      { name: 'require-tls', require: true, verify: 'pkix', enforce: true, ext: true },
    ],
    ['REQUIRETLS and DANE', { requireTlsMessage: true, dane }, { name: 'dane', require: true, verify: 'dane', enforce: true, ext: true }],
    [
      'REQUIRETLS, insecure MX',
      { requireTlsMessage: true },
      { skip: '451 4.7.5 Secure connection to the recipient server failed, try again later', failure: 'validation-failure' },
    ],
    [
      'MTA-STS enforce, host not named',
      { sts: sts('enforce') },
      { skip: '451 4.7.5 Secure connection to the recipient server failed, try again later', failure: 'validation-failure' },
    ],
    [
      'a TLSA lookup that failed',
      { dane: { kind: 'defer' as const, reason: 'SERVFAIL' } },
      { skip: '451 4.7.5 Secure connection to the recipient server failed, try again later', failure: 'dnssec-invalid' },
    ],
  ])('%s', (_name, input, expected) => {
    expect(decide(input as Partial<HostTlsInput>)).toEqual(expected)
  })
})

describe('the MX walk order', () => {
  const resolver = (records: MxRecord[]): DnsResolver => {
    const ok = <T>(answers: T[]) => Promise.resolve({ rcode: 'NOERROR' as const, canonicalName: '', answers, authenticated: false, ttl: 60 })
    return { mx: () => ok(records), a: () => ok([]), aaaa: () => ok([]), tlsa: () => ok([]), txt: () => ok([]) }
  }
  const records: MxRecord[] = [
    { preference: 20, exchange: 'c.example.org' },
    { preference: 10, exchange: 'a.example.org' },
    { preference: 10, exchange: 'b.example.org' },
    { preference: 30, exchange: 'd.example.org' },
  ]

  it('sorts by preference and shuffles equal preferences with the random source', async () => {
    expect((await lookupMx(resolver(records), 'example.org', () => 0)).hosts.map((h) => h.name)).toEqual([
      'b.example.org',
      'a.example.org',
      'c.example.org',
      'd.example.org',
    ])
    expect((await lookupMx(resolver(records), 'example.org', () => 0.99)).hosts.map((h) => h.name)).toEqual([
      'a.example.org',
      'b.example.org',
      'c.example.org',
      'd.example.org',
    ])
  })

  it('ignores a null MX among real ones, and fails a lone one with 550 5.1.10', async () => {
    const mixed = await lookupMx(
      resolver([
        { preference: 0, exchange: '.' },
        { preference: 10, exchange: 'a.example.org' },
      ]),
      'example.org',
      Math.random,
    )
    expect(mixed.hosts.map((h) => h.name)).toEqual(['a.example.org'])
    await expect(lookupMx(resolver([{ preference: 0, exchange: '.' }]), 'example.org', Math.random)).rejects.toMatchObject({
      code: 550,
      enhanced: '5.1.10',
    })
  })
})

describe('the keyed limiter', () => {
  it('lets `limit` holders per key in at once, the others in arrival order', async () => {
    const limiter = new KeyedLimiter(2)
    const order: string[] = []
    const releases = await Promise.all([limiter.acquire('a'), limiter.acquire('a'), limiter.acquire('b')])
    const third = limiter.acquire('a').then((release) => (order.push('third'), release))
    const fourth = limiter.acquire('a').then((release) => (order.push('fourth'), release))
    expect(limiter.active('a')).toBe(2)
    releases[0]!()
    const r3 = await third
    releases[1]!()
    const r4 = await fourth
    expect(order).toEqual(['third', 'fourth'])
    r3()
    r4()
    releases[2]!()
    expect([limiter.active('a'), limiter.active('b')]).toEqual([0, 0])
  })
})

describe('the replies', () => {
  it.each([
    [mxReply.noSuchDomain('x'), '550 5.1.2', false],
    [mxReply.nullMx('x'), '550 5.1.10', false],
    [mxReply.noHost('x'), '550 5.4.4', false],
    [mxReply.dnsFailure('x'), '451 4.4.3', true],
    [mxReply.forbiddenAddress('x'), '451 4.4.4', true],
    [mxReply.unreachable('x'), '451 4.4.1', true],
    [mxReply.tlsFailure('x'), '451 4.7.5', true],
    [mxReply.requireTlsUnsupported('x'), '550 5.7.30', false],
  ])('%#: %s', (error, codes, temporary) => {
    expect(`${error.code} ${error.enhanced}`).toBe(codes)
    expect(error.temporary).toBe(temporary)
    expect(error.response).not.toMatch(/x$/)
  })
})
