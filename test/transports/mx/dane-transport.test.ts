/**
 * DANE (RFC 7672) in mxTransport, with a real validating resolver: unbound on loopback serving
 * zones signed offline by ldns (test/helpers/dns/resolver.ts), and real STARTTLS servers as MX
 * hosts presenting chains from a small test PKI. Covers DANE-EE(3) SPKI matches and mismatches,
 * DANE-TA(2) with a chain (and its name check), TLSA records none of which are usable (TLS
 * required, not authenticated), an insecure zone (no DANE), a bogus TLSA answer (the host is
 * deferred, never downgraded), a bogus MX answer, and DANE winning over an MTA-STS policy.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { Transport } from '../../../src/core/types.js'
import { mxTransport, type TlsReporter, tlsReporter } from '../../../src/transports/mx/index.js'
import { makeTestPki, type TestCert, type TestPki } from '../../helpers/dns/certs.js'
import { haveValidatingResolver, startValidatingResolver, type ValidatingResolver } from '../../helpers/dns/resolver.js'
import { a, cname, mx, testZone, tlsa, txt } from '../../helpers/dns/zones.js'
import { send } from '../../helpers/mx/deliver.js'
import { startHttpsServer, type TestHttpsServer } from '../../helpers/mx/https-server.js'
import { type MxHosts, startMxHosts } from '../../helpers/mx/mx-hosts.js'
import { type MxPki, makeMxPki } from '../../helpers/mx/pki.js'
import { havePeer } from '../../helpers/peers.js'

const CHAIN = '127.0.0.2' // leaf (mx.example.test, *.pool.example.test) + intermediate
const CHAIN2 = '127.0.0.3' // the same chain
const TA = '127.0.0.4' // the same chain, for DANE-TA
const OTHER = '127.0.0.5' // a self-signed certificate (an impostor's)
const PLAIN = '127.0.0.6' // no STARTTLS
const WEB = '127.0.0.20' // MTA-STS policy host

const pem = (chain: TestCert[]) => ({ key: chain[0]!.key, cert: chain.map((c) => c.pem).join('') })

describe.runIf(haveValidatingResolver() && havePeer('openssl', 'apt-get install -y openssl'))('mxTransport with DANE (validating resolver)', () => {
  let pki: TestPki
  let webPki: MxPki
  let hosts: MxHosts
  let resolver: ValidatingResolver
  let web: TestHttpsServer
  let reports: TlsReporter
  const transports: Transport[] = []
  const now = Date.now()

  beforeAll(async () => {
    ;[pki, webPki] = await Promise.all([makeTestPki(), makeMxPki()])
    const webCert = await webPki.issue(['mta-sts.stsdane.example.test'])
    web = await startHttpsServer({
      ip: WEB,
      ...webCert,
      respond: () => ({ headers: { 'content-type': 'text/plain' }, body: 'version: STSv1\nmode: enforce\nmx: mx.elsewhere.test\nmax_age: 86400\n' }),
    })
    const chain = pem([pki.leaf, pki.intermediate])
    hosts = await startMxHosts([
      { ip: CHAIN, tls: chain },
      { ip: CHAIN2, tls: chain },
      { ip: TA, tls: chain },
      { ip: OTHER, tls: pem([pki.other]) },
      { ip: PLAIN },
    ])
    const p = hosts.port
    const leafKey = await pki.tlsa(pki.leaf, 1, 1)
    const otherKey = await pki.tlsa(pki.other, 1, 1)
    const intermediate = await pki.tlsa(pki.intermediate, 0, 1)
    const route = (domain: string, host: string, ip: string) => [mx(domain, 10, host), a(host, ip)]
    resolver = await startValidatingResolver([
      testZone('example.test', [
        ...route('ee.example.test', 'ee.pool.example.test', CHAIN),
        tlsa(`_${p}._tcp.ee.pool.example.test`, 3, 1, 1, leafKey),
        ...route('mismatch.example.test', 'mm.pool.example.test', CHAIN2),
        tlsa(`_${p}._tcp.mm.pool.example.test`, 3, 1, 1, otherKey),
        mx('fallback.example.test', 10, 'mm.pool.example.test'),
        mx('fallback.example.test', 20, 'ee.pool.example.test'),
        ...route('ta.example.test', 'ta.pool.example.test', TA),
        tlsa(`_${p}._tcp.ta.pool.example.test`, 2, 0, 1, intermediate),
        ...route('taname.example.test', 'mail.taname.example.test', TA),
        tlsa(`_${p}._tcp.mail.taname.example.test`, 2, 0, 1, intermediate),
        ...route('unusable.example.test', 'un.pool.example.test', OTHER),
        tlsa(`_${p}._tcp.un.pool.example.test`, 1, 1, 1, otherKey),
        tlsa(`_${p}._tcp.un.pool.example.test`, 0, 0, 1, intermediate),
        ...route('unusableplain.example.test', 'unp.pool.example.test', PLAIN),
        tlsa(`_${p}._tcp.unp.pool.example.test`, 1, 1, 1, otherKey),
        ...route('bogus.example.test', 'bg.pool.example.test', CHAIN),
        cname(`_${p}._tcp.bg.pool.example.test`, 'tlsa.expired.test'),
        ...route('notlsa.example.test', 'nt.pool.example.test', OTHER),
        ...route('stsdane.example.test', 'sd.pool.example.test', CHAIN),
        tlsa(`_${p}._tcp.sd.pool.example.test`, 3, 1, 1, leafKey),
        txt('_mta-sts.stsdane.example.test', 'v=STSv1; id=1'),
        a('mta-sts.stsdane.example.test', WEB),
      ]),
      testZone('insecure.test', [...route('insecure.test', 'mx.insecure.test', CHAIN), tlsa(`_${p}._tcp.mx.insecure.test`, 3, 1, 1, otherKey)], {
        security: 'unsigned',
      }),
      testZone('expired.test', [...route('expired.test', 'mx.expired.test', CHAIN), tlsa('tlsa.expired.test', 3, 1, 1, leafKey)], {
        security: 'expired',
      }),
    ])
  })
  afterEach(async () => {
    await Promise.all(transports.splice(0).map((t) => t.close?.()))
  })
  afterAll(async () => {
    await hosts?.close()
    await web?.close()
    await resolver?.stop()
    await pki?.cleanup()
    await webPki?.cleanup()
  })

  const transport = () => {
    reports = tlsReporter({ organizationName: 'Test', contactInfo: 'postmaster@example.com', submitter: 'relay.example.com', clock: () => now })
    const t = mxTransport({
      dns: { server: resolver.address, cache: false },
      port: hosts.port,
      allowNetworks: ['127.0.0.0/8'],
      tls: { ca: webPki.ca.cert },
      mtaSts: { port: web.port },
      tlsReports: reports,
    })
    transports.push(t)
    return t
  }
  const details = (domain: string) =>
    reports
      .report(domain, new Date(now).toISOString().slice(0, 10))
      ?.policies.map((p) => [
        p.policy['policy-type'],
        p.summary['total-successful-session-count'],
        (p['failure-details'] ?? []).map((f) => f['result-type']),
      ])

  it('DANE-EE 3 1 1: delivers to the host whose key matches, authenticated', async () => {
    const { outcome, attempts } = await send(transport(), ['a@ee.example.test'])
    expect(outcome.reply).toMatch(/^250 /)
    expect(attempts).toMatchObject([{ host: 'ee.pool.example.test', policy: 'dane', verified: true, tls: expect.stringMatching(/^TLSv1/) }])
    expect(details('ee.example.test')).toEqual([['tlsa', 1, []]])
    expect(reports.report('ee.example.test', new Date(now).toISOString().slice(0, 10))!.policies[0]!.policy).toMatchObject({
      'policy-type': 'tlsa',
      'policy-string': [expect.stringMatching(/^3 1 1 [0-9a-f]{64}$/)],
      'mx-host': ['ee.pool.example.test'],
    })
  })

  it('DANE-EE 3 1 1 mismatch: defers with 451 4.7.5 and sends nothing there; the next MX that matches gets it', async () => {
    const before = hosts.host(CHAIN2).messages.length
    const { outcome, attempts } = await send(transport(), ['b@mismatch.example.test'])
    expect(outcome.reply).toBe('451 4.7.5 Secure connection to the recipient server failed, try again later')
    expect(outcome.error?.reason).toMatch(/DANE: no DANE-EE record matches/)
    expect(attempts).toMatchObject([{ policy: 'dane', outcome: 'deferred', verified: false }])
    expect(hosts.host(CHAIN2).messages.length).toBe(before)
    expect(details('mismatch.example.test')).toEqual([['tlsa', 0, ['tlsa-invalid']]])

    const fallback = await send(transport(), ['b@fallback.example.test'])
    expect(fallback.outcome.reply).toMatch(/^250 /)
    expect(fallback.attempts.map((e) => [e.host, e.outcome])).toEqual([
      ['mm.pool.example.test', 'deferred'],
      ['ee.pool.example.test', 'delivered'],
    ])
  })

  it('DANE-TA 2 0 1 with a chain: delivers when the chain leads to the anchor and names the host, defers when it does not name it', async () => {
    const ok = await send(transport(), ['c@ta.example.test'])
    expect(ok.outcome.reply).toMatch(/^250 /)
    expect(ok.attempts).toMatchObject([{ host: 'ta.pool.example.test', policy: 'dane', verified: true }])

    const wrongName = await send(transport(), ['c@taname.example.test'])
    expect(wrongName.outcome.reply).toMatch(/^451 4\.7\.5 /)
    expect(wrongName.outcome.error?.reason).toMatch(/not for mail\.taname\.example\.test/)
  })

  it('TLSA records none of which is usable: TLS is still required, without authentication', async () => {
    const encrypted = await send(transport(), ['d@unusable.example.test'])
    expect(encrypted.outcome.reply).toMatch(/^250 /)
    expect(encrypted.attempts).toMatchObject([{ policy: 'dane-encrypt', verified: false, tls: expect.stringMatching(/^TLSv1/) }])
    expect(hosts.host(OTHER).messages.at(-1)).toMatchObject({ secure: true })

    const before = hosts.host(PLAIN).messages.length
    const cleartext = await send(transport(), ['d@unusableplain.example.test'])
    expect(cleartext.outcome.reply).toMatch(/^451 4\.7\.5 /)
    expect(hosts.host(PLAIN).messages.length).toBe(before)
    expect(details('unusableplain.example.test')).toEqual([['tlsa', 0, ['starttls-not-supported']]])
  })

  it('a signed zone without TLSA records, and an insecure zone whatever its TLSA records say: opportunistic TLS', async () => {
    for (const domain of ['notlsa.example.test', 'insecure.test']) {
      const { outcome, attempts } = await send(transport(), [`e@${domain}`])
      expect(outcome.reply).toMatch(/^250 /)
      expect(attempts).toMatchObject([{ policy: 'opportunistic', verified: false }])
    }
  })

  it('a bogus TLSA answer defers the host (never a downgrade); a bogus MX answer defers the domain', async () => {
    const connections = hosts.host(CHAIN).connections
    const tlsaBogus = await send(transport(), ['f@bogus.example.test'])
    expect(tlsaBogus.outcome.reply).toMatch(/^451 4\.7\.5 /)
    expect(tlsaBogus.outcome.error?.reason).toMatch(/TLSA _\d+\._tcp\.bg\.pool\.example\.test/)
    expect(tlsaBogus.attempts).toEqual([])
    expect(hosts.host(CHAIN).connections).toBe(connections)
    expect(details('bogus.example.test')).toEqual([['tlsa', 0, ['dnssec-invalid']]])

    expect((await send(transport(), ['f@expired.test'])).outcome.reply).toBe('451 4.4.3 Temporary DNS failure, try again later')
  })

  it('DANE wins over MTA-STS: a DANE host the enforced policy does not name is used, authenticated by DANE', async () => {
    const { outcome, attempts } = await send(transport(), ['g@stsdane.example.test'])
    expect(outcome.reply).toMatch(/^250 /)
    expect(attempts).toMatchObject([{ host: 'sd.pool.example.test', policy: 'dane', verified: true }])
    expect(web.requests).toHaveLength(1)
  })
})
