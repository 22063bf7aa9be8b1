/**
 * MTA-STS (RFC 8461) end to end on loopback: policy hosts are real HTTPS servers with
 * certificates from a test CA, `_mta-sts` TXT records come from the test DNS server (changed
 * between messages to change the policy id), MX hosts are real STARTTLS servers. Time is an
 * injected clock: max_age and the retry after a failed fetch pass without waiting. Fetches are
 * counted on the HTTPS server, not taken from the cache's word.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { Transport } from '../../../src/core/types.js'
import { mxTransport, type TlsReporter, tlsReporter } from '../../../src/transports/mx/index.js'
import { startDnsServer, type TestDnsServer } from '../../helpers/dns/server.js'
import { a, mx, type TestRecord, testZone, txt } from '../../helpers/dns/zones.js'
import { send } from '../../helpers/mx/deliver.js'
import { type HttpsAnswer, startHttpsServer, type TestHttpsServer } from '../../helpers/mx/https-server.js'
import { type MxHosts, startMxHosts } from '../../helpers/mx/mx-hosts.js'
import { type MxPki, makeMxPki } from '../../helpers/mx/pki.js'
import { havePeer } from '../../helpers/peers.js'

const GOOD = '127.0.0.2' // certificates from the CA for every MX name
const SELF = '127.0.0.3' // a self-signed certificate
const WEB = '127.0.0.20' // policy hosts, certificate from the CA
const WEB_SELF = '127.0.0.21' // a policy host with a self-signed certificate

const policy = (mode: string, mxs: string[], maxAge = 86_400) =>
  `version: STSv1\r\nmode: ${mode}\r\n${mxs.map((m) => `mx: ${m}\r\n`).join('')}max_age: ${maxAge}\r\n`

/** What each policy host serves, by `mta-sts.<domain>`. */
const SITES: Record<string, HttpsAnswer> = {
  'enforce.test': { headers: { 'content-type': 'text/plain' }, body: policy('enforce', ['mx.enforce.test']) },
  'cache.test': { headers: { 'content-type': 'text/plain; charset=utf-8' }, body: policy('enforce', ['*.cache.test'], 3600) },
  'badcert.test': { headers: { 'content-type': 'text/plain' }, body: policy('enforce', ['mx.badcert.test']) },
  'mismatch.test': { headers: { 'content-type': 'text/plain' }, body: policy('enforce', ['listed.mismatch.test']) },
  'nomatch.test': { headers: { 'content-type': 'text/plain' }, body: policy('enforce', ['*.elsewhere.test']) },
  'wildcard.test': { headers: { 'content-type': 'text/plain' }, body: policy('enforce', ['*.wildcard.test']) },
  'testing.test': { headers: { 'content-type': 'text/plain' }, body: policy('testing', ['mx.testing.test']) },
  'none.test': { headers: { 'content-type': 'text/plain' }, body: 'version: STSv1\r\nmode: none\r\nmax_age: 86400\r\n' },
  'missing.test': { status: 404, body: 'not here' },
  'redirect.test': { status: 301, headers: { location: 'https://mta-sts.enforce.test/.well-known/mta-sts.txt' } },
  'html.test': { headers: { 'content-type': 'text/html' }, body: policy('enforce', ['mx.html.test']) },
  'invalid.test': { headers: { 'content-type': 'text/plain' }, body: 'mode: enforce\r\nmx: mx.invalid.test\r\n' },
  'webpki.test': { headers: { 'content-type': 'text/plain' }, body: policy('enforce', ['mx.webpki.test']) },
}

describe.runIf(havePeer('openssl', 'apt-get install -y openssl'))('mxTransport with MTA-STS', () => {
  let pki: MxPki
  let hosts: MxHosts
  let dns: TestDnsServer
  let web: TestHttpsServer
  let webSelf: TestHttpsServer
  const records: Record<string, TestRecord> = {}
  const transports: Transport[] = []
  let now = Date.parse('2026-12-01T08:00:00Z')
  let reports: TlsReporter

  beforeAll(async () => {
    pki = await makeMxPki()
    const domains = Object.keys(SITES)
    const [webCert, webSelfCert, mxCert, selfCert] = await Promise.all([
      pki.issue(domains.map((d) => `mta-sts.${d}`)),
      pki.selfSigned(['mta-sts.webpki.test']),
      pki.issue([...domains.map((d) => `mx.${d}`), 'listed.mismatch.test', 'unlisted.mismatch.test', 'a.cache.test', 'a.b.wildcard.test']),
      pki.selfSigned(domains.map((d) => `mx.${d}`)),
    ])
    hosts = await startMxHosts([
      { ip: GOOD, tls: mxCert },
      { ip: SELF, tls: selfCert },
    ])
    web = await startHttpsServer({
      ip: WEB,
      ...webCert,
      respond: (req) => SITES[req.host.replace(/^mta-sts\./, '').replace(/:\d+$/, '')] ?? { status: 404 },
    })
    webSelf = await startHttpsServer({ ip: WEB_SELF, port: web.port, ...webSelfCert, respond: () => SITES['webpki.test']! })
    const zone: TestRecord[] = []
    for (const domain of domains) {
      records[domain] = txt(`_mta-sts.${domain}`, 'v=STSv1; id=1')
      zone.push(records[domain]!, a(`mta-sts.${domain}`, domain === 'webpki.test' ? WEB_SELF : WEB))
    }
    zone.push(
      mx('enforce.test', 10, 'mx.enforce.test'),
      a('mx.enforce.test', GOOD),
      mx('cache.test', 10, 'a.cache.test'),
      a('a.cache.test', GOOD),
      mx('badcert.test', 10, 'mx.badcert.test'),
      a('mx.badcert.test', SELF),
      mx('mismatch.test', 10, 'unlisted.mismatch.test'),
      mx('mismatch.test', 20, 'listed.mismatch.test'),
      a('unlisted.mismatch.test', GOOD),
      a('listed.mismatch.test', GOOD),
      mx('nomatch.test', 10, 'mx.nomatch.test'),
      a('mx.nomatch.test', GOOD),
      mx('wildcard.test', 10, 'a.b.wildcard.test'),
      a('a.b.wildcard.test', GOOD),
      ...['testing.test', 'none.test', 'missing.test', 'redirect.test', 'html.test', 'invalid.test', 'webpki.test'].flatMap((d) => [
        mx(d, 10, `mx.${d}`),
        a(`mx.${d}`, SELF),
      ]),
      mx('nosts.test', 10, 'mx.nosts.test'),
      a('mx.nosts.test', SELF),
    )
    dns = await startDnsServer([testZone('test', zone)])
  })
  afterEach(async () => {
    await Promise.all(transports.splice(0).map((t) => t.close?.()))
  })
  afterAll(async () => {
    await hosts?.close()
    await web?.close()
    await webSelf?.close()
    await dns?.close()
    await pki?.cleanup()
  })

  const transport = (options: Parameters<typeof mxTransport>[0] = {}) => {
    reports = tlsReporter({ organizationName: 'Test', contactInfo: 'postmaster@example.com', submitter: 'relay.example.com', clock: () => now })
    const t = mxTransport({
      dns: { server: dns.address, cache: false },
      port: hosts.port,
      allowNetworks: ['127.0.0.0/8'],
      tls: { ca: pki.ca.cert },
      mtaSts: { port: web.port, clock: () => now },
      tlsReports: reports,
      ...options,
    })
    transports.push(t)
    return t
  }
  const fetches = (domain: string) => [...web.requests, ...webSelf.requests].filter((r) => r.host.startsWith(`mta-sts.${domain}`)).length
  const failures = (domain: string) =>
    reports
      .report(domain, new Date(now).toISOString().slice(0, 10))
      ?.policies.flatMap((p) => (p['failure-details'] ?? []).map((f) => `${p.policy['policy-type']}:${f['result-type']}`))

  it('enforce: delivers only over TLS whose certificate is valid for the MX name, and says so in the event', async () => {
    const { outcome, attempts } = await send(transport(), ['a@enforce.test'])
    expect(outcome.reply).toMatch(/^250 /)
    expect(attempts).toMatchObject([{ host: 'mx.enforce.test', policy: 'mta-sts', verified: true, tls: expect.stringMatching(/^TLSv1/) }])
    expect(hosts.host(GOOD).messages.at(-1)).toMatchObject({ secure: true, rcptTo: ['a@enforce.test'] })
    expect(web.requests.at(-1)).toMatchObject({ method: 'GET', path: '/.well-known/mta-sts.txt', host: `mta-sts.enforce.test:${web.port}` })
  })

  it('enforce: defers with 451 4.7.5 when the certificate does not verify, and reports it', async () => {
    const { outcome } = await send(transport(), ['b@badcert.test'])
    expect(outcome.reply).toBe('451 4.7.5 Secure connection to the recipient server failed, try again later')
    expect(failures('badcert.test')).toEqual(['sts:certificate-not-trusted'])
  })

  it('enforce: skips MX hosts the policy does not name (a policy mismatch), and defers when none is named', async () => {
    const connections = hosts.host(GOOD).connections
    const skipped = await send(transport(), ['c@mismatch.test'])
    expect(skipped.outcome.reply).toMatch(/^250 /)
    expect(skipped.attempts.map((e) => e.host)).toEqual(['listed.mismatch.test'])
    expect(failures('mismatch.test')).toEqual(['sts:validation-failure'])

    const none = await send(transport(), ['c@nomatch.test'])
    expect(none.outcome.reply).toMatch(/^451 4\.7\.5 /)
    expect(none.outcome.error?.reason).toMatch(/not named by the MTA-STS policy/)
    expect(none.attempts).toEqual([])
    // a wildcard covers one label only (RFC 8461 §4.1): a.b.wildcard.test is not *.wildcard.test
    expect((await send(transport(), ['c@wildcard.test'])).outcome.reply).toMatch(/^451 4\.7\.5 /)
    expect(hosts.host(GOOD).connections).toBe(connections + 1)
  })

  it('testing: delivers despite a certificate that does not verify, and reports the failure', async () => {
    const { outcome, attempts } = await send(transport(), ['d@testing.test'])
    expect(outcome.reply).toMatch(/^250 /)
    expect(attempts).toMatchObject([{ policy: 'mta-sts-testing', verified: false }])
    expect(failures('testing.test')).toEqual(['sts:certificate-not-trusted'])
    const report = reports.report('testing.test', '2026-12-01')!
    expect(report.policies[0]!.policy).toEqual({
      'policy-type': 'sts',
      'policy-string': ['version: STSv1', 'mode: testing', 'mx: mx.testing.test', 'max_age: 86400'],
      'policy-domain': 'testing.test',
      'mx-host': ['mx.testing.test'],
    })
  })

  it('none, and no policy at all: opportunistic TLS, no certificate check', async () => {
    for (const domain of ['none.test', 'nosts.test']) {
      const { outcome, attempts } = await send(transport(), [`e@${domain}`])
      expect(outcome.reply).toMatch(/^250 /)
      expect(attempts).toMatchObject([{ policy: 'opportunistic', verified: false }])
    }
  })

  it('a policy that cannot be fetched (404, redirect, not text/plain, invalid, untrusted certificate) is reported and mail goes on without it', async () => {
    const expected: Record<string, string> = {
      'missing.test': 'sts:sts-policy-fetch-error',
      'redirect.test': 'sts:sts-policy-fetch-error',
      'html.test': 'sts:sts-policy-fetch-error',
      'invalid.test': 'sts:sts-policy-invalid',
      'webpki.test': 'sts:sts-webpki-invalid',
    }
    const t = transport()
    for (const [domain, failure] of Object.entries(expected)) {
      const { outcome, attempts } = await send(t, [`f@${domain}`])
      expect(outcome.reply).toMatch(/^250 /)
      expect(attempts).toMatchObject([{ policy: 'opportunistic' }])
      expect(failures(domain)).toEqual([failure])
    }
    // The redirect was not followed: nothing asked mta-sts.enforce.test on its behalf.
    expect(web.requests.filter((r) => r.host.startsWith('mta-sts.redirect.test'))).toHaveLength(1)
  })

  it('a failed fetch is not repeated before retryAfter, then is', async () => {
    const t = transport({ mtaSts: { port: web.port, clock: () => now, retryAfter: 300 } })
    const before = fetches('missing.test')
    await send(t, ['g@missing.test'])
    await send(t, ['g@missing.test'])
    expect(fetches('missing.test')).toBe(before + 1)
    now += 301_000
    await send(t, ['g@missing.test'])
    expect(fetches('missing.test')).toBe(before + 2)
  })

  it('caches a policy until max_age: one fetch for many messages, a new fetch when the id changes or max_age has passed', async () => {
    const t = transport()
    const before = fetches('cache.test')
    for (let i = 0; i < 5; i++) expect((await send(t, [`h${i}@cache.test`])).outcome.reply).toMatch(/^250 /)
    expect(fetches('cache.test')).toBe(before + 1)

    records['cache.test']!.data = ['v=STSv1; id=2']
    await send(t, ['h@cache.test'])
    await send(t, ['h@cache.test'])
    expect(fetches('cache.test')).toBe(before + 2)

    now += 3601_000
    await send(t, ['h@cache.test'])
    expect(fetches('cache.test')).toBe(before + 3)
  })

  it('keeps enforcing a cached policy when its TXT record disappears before max_age', async () => {
    const t = transport()
    expect((await send(t, ['i@enforce.test'])).attempts[0]!.policy).toBe('mta-sts')
    const record = records['enforce.test']!
    const saved = record.data
    record.data = ['v=spf1 -all']
    try {
      const again = await send(t, ['i@enforce.test'])
      expect(again.attempts[0]!.policy).toBe('mta-sts')
    } finally {
      record.data = saved
    }
  })

  it('concurrent messages to one domain share one fetch', async () => {
    records['enforce.test']!.data = ['v=STSv1; id=concurrent']
    const t = transport()
    const before = fetches('enforce.test')
    await Promise.all([0, 1, 2, 3].map((i) => send(t, [`j${i}@enforce.test`])))
    expect(fetches('enforce.test')).toBe(before + 1)
  })
})
