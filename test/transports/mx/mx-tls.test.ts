/**
 * TLS towards MX hosts, against real STARTTLS servers on loopback: opportunistic STARTTLS (and
 * the cleartext retry after a failed handshake), `requireTls` per destination (encrypt, verify),
 * and REQUIRETLS asked by the message (RFC 8689), with the TLS-RPT counts each session leaves.
 * A DNS server that sets the AD bit stands in for DNSSEC-validated MX answers where REQUIRETLS
 * needs them (the DANE tests use a real validating resolver).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { Transport } from '../../../src/core/types.js'
import { mxTransport, type TlsReporter, tlsReporter } from '../../../src/transports/mx/index.js'
import { startDnsServer, type TestDnsServer } from '../../helpers/dns/server.js'
import { a, mx, testZone } from '../../helpers/dns/zones.js'
import { send } from '../../helpers/mx/deliver.js'
import { type MxHosts, startMxHosts } from '../../helpers/mx/mx-hosts.js'
import { type MxPki, makeMxPki } from '../../helpers/mx/pki.js'
import { havePeer } from '../../helpers/peers.js'

const HOSTS = { good: '127.0.0.2', self: '127.0.0.3', broken: '127.0.0.4', plain: '127.0.0.5', rtls: '127.0.0.6', wrong: '127.0.0.7' } as const

describe.runIf(havePeer('openssl', 'apt-get install -y openssl'))('mxTransport: STARTTLS, requireTls and REQUIRETLS', () => {
  let pki: MxPki
  let hosts: MxHosts
  let dns: TestDnsServer
  let dnssec: TestDnsServer
  const transports: Transport[] = []

  beforeAll(async () => {
    pki = await makeMxPki()
    const [good, rtls, wrong, self] = await Promise.all([
      pki.issue(['mx-good.tls.test']),
      pki.issue(['mx-rtls.tls.test']),
      pki.issue(['someone-else.tls.test']),
      pki.selfSigned(['mx-self.tls.test']),
    ])
    hosts = await startMxHosts([
      { ip: HOSTS.good, tls: good },
      { ip: HOSTS.self, tls: self },
      { ip: HOSTS.broken, tls: { ...self, broken: true } },
      { ip: HOSTS.plain },
      { ip: HOSTS.rtls, tls: rtls, requireTls: true },
      { ip: HOSTS.wrong, tls: wrong },
    ])
    const zone = testZone(
      'tls.test',
      Object.entries(HOSTS).flatMap(([name, ip]) => [mx(`${name}.tls.test`, 10, `mx-${name}.tls.test`), a(`mx-${name}.tls.test`, ip)]),
    )
    dns = await startDnsServer([zone])
    dnssec = await startDnsServer([zone], { authenticatedData: true })
  })
  afterEach(async () => {
    await Promise.all(transports.splice(0).map((t) => t.close?.()))
  })
  afterAll(async () => {
    await hosts?.close()
    await dns?.close()
    await dnssec?.close()
    await pki?.cleanup()
  })

  const transport = (options: Parameters<typeof mxTransport>[0] = {}) => {
    const t = mxTransport({ dns: { server: dns.address, cache: false }, port: hosts.port, allowNetworks: ['127.0.0.0/8'], mtaSts: false, ...options })
    transports.push(t)
    return t
  }
  const last = (name: keyof typeof HOSTS) => hosts.host(HOSTS[name]).messages.at(-1)
  const count = (name: keyof typeof HOSTS) => hosts.host(HOSTS[name]).messages.length

  describe('opportunistic (no policy)', () => {
    it('delivers over STARTTLS when offered, without checking the certificate', async () => {
      for (const name of ['good', 'self', 'wrong'] as const) {
        const { outcome, attempts } = await send(transport(), [`a@${name}.tls.test`])
        expect(outcome.reply).toMatch(/^250 /)
        expect(attempts).toMatchObject([{ policy: 'opportunistic', tls: expect.stringMatching(/^TLSv1\.[23]$/), verified: false }])
        expect(last(name)).toMatchObject({ secure: true, rcptTo: [`a@${name}.tls.test`] })
      }
    })

    it('retries the same host in cleartext after a failed STARTTLS handshake', async () => {
      const { outcome, attempts } = await send(transport(), ['b@broken.tls.test'])
      expect(outcome.reply).toMatch(/^250 /)
      expect(attempts.map((e) => [e.ip, e.outcome, e.tls])).toEqual([
        [HOSTS.broken, 'deferred', undefined],
        [HOSTS.broken, 'delivered', undefined],
      ])
      expect(attempts[0]!.reason).toMatch(/TLS handshake failed/)
      expect(last('broken')).toMatchObject({ secure: false })
    })

    it('delivers in cleartext to a host that does not offer STARTTLS', async () => {
      const { outcome, attempts } = await send(transport(), ['c@plain.tls.test'])
      expect(outcome.reply).toMatch(/^250 /)
      expect(attempts[0]!.tls).toBeUndefined()
      expect(last('plain')).toMatchObject({ secure: false })
    })
  })

  describe('requireTls for a destination', () => {
    it("'encrypt': defers with 451 4.7.5 when the handshake fails or STARTTLS is missing, never in cleartext; any certificate will do", async () => {
      const t = transport({ requireTls: ['broken.tls.test', 'plain.tls.test', 'self.tls.test'] })
      const before = [count('broken'), count('plain')]
      for (const domain of ['broken.tls.test', 'plain.tls.test']) {
        const { outcome, attempts } = await send(t, [`d@${domain}`])
        expect(outcome.reply).toBe('451 4.7.5 Secure connection to the recipient server failed, try again later')
        expect(attempts).toHaveLength(1)
        expect(attempts[0]!.policy).toBe('require-tls')
      }
      expect([count('broken'), count('plain')]).toEqual(before)
      const self = await send(t, ['d@self.tls.test'])
      expect(self.outcome.reply).toMatch(/^250 /)
      expect(self.attempts[0]).toMatchObject({ policy: 'require-tls', verified: false })
    })

    it("'verify': delivers only when the certificate chains to a trusted CA and names the MX host", async () => {
      const rule = { '.tls.test': 'verify' } as const
      const trusting = transport({ requireTls: rule, tls: { ca: pki.ca.cert } })
      const good = await send(trusting, ['e@good.tls.test'])
      expect(good.outcome.reply).toMatch(/^250 /)
      expect(good.attempts[0]).toMatchObject({ policy: 'require-tls', verified: true })

      const self = await send(trusting, ['e@self.tls.test'])
      expect(self.outcome.reply).toMatch(/^451 4\.7\.5 /)
      expect(self.outcome.error?.reason).toMatch(/certificate: (DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED)/)
      const wrong = await send(trusting, ['e@wrong.tls.test'])
      expect(wrong.outcome.reply).toMatch(/^451 4\.7\.5 /)
      expect(wrong.outcome.error?.reason).toMatch(/ERR_TLS_CERT_ALTNAME_INVALID/)

      const untrusting = await send(transport({ requireTls: rule }), ['e@good.tls.test'])
      expect(untrusting.outcome.reply).toMatch(/^451 4\.7\.5 /)
    })
  })

  describe('REQUIRETLS asked by the message (RFC 8689)', () => {
    const secureDns = (options: Parameters<typeof mxTransport>[0] = {}) =>
      transport({ dns: { server: dnssec.address, cache: false }, tls: { ca: pki.ca.cert }, ...options })

    it('delivers over verified TLS to a host that supports REQUIRETLS, and passes REQUIRETLS on', async () => {
      for (const how of [{ state: { requireTls: true } }, { fromArgs: { REQUIRETLS: true as const } }]) {
        const { outcome, attempts } = await send(secureDns(), ['f@rtls.tls.test'], how)
        expect(outcome.reply).toMatch(/^250 /)
        expect(attempts[0]).toMatchObject({ policy: 'require-tls', verified: true })
        expect(last('rtls')).toMatchObject({ secure: true, requireTls: true })
      }
    })

    it('refuses with 550 5.7.30 when no MX host supports REQUIRETLS', async () => {
      const { outcome } = await send(secureDns(), ['g@good.tls.test'], { state: { requireTls: true } })
      expect(outcome.reply).toBe('550 5.7.30 REQUIRETLS support required')
    })

    it('defers with 451 4.7.5 when the certificate does not verify or the MX answer was not DNSSEC-validated', async () => {
      const unverified = await send(secureDns({ tls: {} }), ['h@rtls.tls.test'], { state: { requireTls: true } })
      expect(unverified.outcome.reply).toMatch(/^451 4\.7\.5 /)
      const insecureMx = await send(transport({ tls: { ca: pki.ca.cert } }), ['h@rtls.tls.test'], { state: { requireTls: true } })
      expect(insecureMx.outcome.reply).toMatch(/^451 4\.7\.5 /)
      expect(insecureMx.outcome.error?.reason).toMatch(/neither DNSSEC-validated nor named by an MTA-STS policy/)
      expect(insecureMx.attempts).toEqual([])
    })
  })

  it('counts each session for TLS-RPT: successes, a failed handshake, a cleartext session', async () => {
    let now = Date.parse('2026-12-01T10:00:00Z')
    const reports: TlsReporter = tlsReporter({
      organizationName: 'Test',
      contactInfo: 'postmaster@example.com',
      submitter: 'relay.example.com',
      clock: () => now,
    })
    const t = transport({ tlsReports: reports })
    await send(t, ['i@good.tls.test'])
    await send(t, ['i@broken.tls.test'])
    await send(t, ['i@plain.tls.test'])
    now += 86_400_000
    const summary = (domain: string) =>
      reports.report(domain)?.policies.map((p) => [p.policy['policy-type'], p.summary, p['failure-details']?.map((f) => f['result-type'])])
    expect(summary('good.tls.test')).toEqual([
      ['no-policy-found', { 'total-successful-session-count': 1, 'total-failure-session-count': 0 }, undefined],
    ])
    expect(summary('broken.tls.test')).toEqual([
      ['no-policy-found', { 'total-successful-session-count': 0, 'total-failure-session-count': 1 }, ['validation-failure']],
    ])
    expect(summary('plain.tls.test')).toEqual([
      ['no-policy-found', { 'total-successful-session-count': 0, 'total-failure-session-count': 1 }, ['starttls-not-supported']],
    ])
  })
})
