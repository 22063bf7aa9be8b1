/**
 * TLS-RPT (RFC 8460): the report JSON checked field by field against §4.4 (names, types, the
 * registry of result types, the UTC day), the file name and gzip of §5.3, the `_smtp._tls`
 * record, and delivery to both kinds of `rua`: mail through a transport (the message as §5.3
 * describes it, read back from a real SMTP sink) and an HTTPS POST to a loopback server. A report
 * mailed through mxTransport is delivered despite the recipient's TLS failures and not counted.
 */
import { gunzipSync } from 'node:zlib'
import { simpleParser } from 'mailparser'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Sink, startSink } from '../../../src/testing/sink.js'
import { mxTransport, parseTlsRptRecord, sendTlsReports, type TlsReport, tlsReporter, tlsReportFile } from '../../../src/transports/mx/index.js'
import { smtpTransport } from '../../../src/transports/smtp.js'
import { startDnsServer, type TestDnsServer } from '../../helpers/dns/server.js'
import { a, mx, testZone, txt } from '../../helpers/dns/zones.js'
import { startHttpsServer, type TestHttpsServer } from '../../helpers/mx/https-server.js'
import { type MxHosts, startMxHosts } from '../../helpers/mx/mx-hosts.js'
import { type MxPki, makeMxPki } from '../../helpers/mx/pki.js'
import { havePeer } from '../../helpers/peers.js'

const RESULT_TYPES = [
  'starttls-not-supported',
  'certificate-host-mismatch',
  'certificate-expired',
  'tlsa-invalid',
  'dnssec-invalid',
  'dane-required',
  'certificate-not-trusted',
  'sts-policy-invalid',
  'sts-webpki-invalid',
  'validation-failure',
  'sts-policy-fetch-error',
]
const REPORT_KEYS = ['organization-name', 'date-range', 'contact-info', 'report-id', 'policies']
const POLICY_KEYS = ['policy-type', 'policy-string', 'policy-domain', 'mx-host']
const DETAIL_KEYS = [
  'result-type',
  'sending-mta-ip',
  'receiving-mx-hostname',
  'receiving-mx-helo',
  'receiving-ip',
  'failed-session-count',
  'additional-information',
  'failure-reason-code',
]
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/

/** Checks a report against RFC 8460 §4.4: required fields, their types, no field the RFC does not define. */
function expectRfc8460(report: TlsReport) {
  expect(Object.keys(report).sort()).toEqual([...REPORT_KEYS].sort())
  expect(typeof report['organization-name']).toBe('string')
  expect(typeof report['contact-info']).toBe('string')
  expect(typeof report['report-id']).toBe('string')
  expect(report['date-range']['start-datetime']).toMatch(RFC3339)
  expect(report['date-range']['end-datetime']).toMatch(RFC3339)
  for (const entry of report.policies) {
    expect(Object.keys(entry).every((k) => ['policy', 'summary', 'failure-details'].includes(k))).toBe(true)
    expect(Object.keys(entry.policy).every((k) => POLICY_KEYS.includes(k))).toBe(true)
    expect(['tlsa', 'sts', 'no-policy-found']).toContain(entry.policy['policy-type'])
    expect(Array.isArray(entry.policy['policy-string'])).toBe(true)
    expect(typeof entry.policy['policy-domain']).toBe('string')
    expect(Number.isInteger(entry.summary['total-successful-session-count'])).toBe(true)
    expect(Number.isInteger(entry.summary['total-failure-session-count'])).toBe(true)
    const failed = (entry['failure-details'] ?? []).reduce((n, d) => n + d['failed-session-count'], 0)
    expect(failed).toBe(entry.summary['total-failure-session-count'])
    for (const detail of entry['failure-details'] ?? []) {
      expect(Object.keys(detail).every((k) => DETAIL_KEYS.includes(k))).toBe(true)
      expect(RESULT_TYPES).toContain(detail['result-type'])
      expect(Number.isInteger(detail['failed-session-count'])).toBe(true)
    }
  }
}

describe('TLS-RPT reports', () => {
  const sts = { type: 'sts' as const, strings: ['version: STSv1', 'mode: enforce', 'mx: *.example.org', 'max_age: 86400'], mxHost: ['*.example.org'] }

  it('counts sessions per policy and per UTC day, and builds the RFC 8460 report JSON', () => {
    let now = Date.parse('2026-12-01T23:59:30Z')
    const reporter = tlsReporter({
      organizationName: 'Example Corp',
      contactInfo: 'mailto:tls@example.com',
      submitter: 'mail.example.com',
      clock: () => now,
    })
    const where = { receivingMxHostname: 'mx1.example.org', receivingIp: '192.0.2.10' }
    reporter.record({ domain: 'example.org', policy: sts })
    reporter.record({ domain: 'example.org', policy: sts })
    reporter.record({ domain: 'example.org', policy: sts, failure: { resultType: 'certificate-expired', ...where } })
    reporter.record({ domain: 'example.org', policy: sts, failure: { resultType: 'certificate-expired', ...where } })
    reporter.record({
      domain: 'example.org',
      policy: { type: 'no-policy-found', strings: [] },
      failure: { resultType: 'starttls-not-supported', ...where },
    })
    now = Date.parse('2026-12-02T00:00:30Z')
    reporter.record({ domain: 'example.org', policy: sts })

    const report = reporter.report('example.org', '2026-12-01')!
    expectRfc8460(report)
    expect(report).toMatchObject({
      'organization-name': 'Example Corp',
      'contact-info': 'mailto:tls@example.com',
      'date-range': { 'start-datetime': '2026-12-01T00:00:00Z', 'end-datetime': '2026-12-01T23:59:59Z' },
    })
    expect(report.policies).toEqual([
      {
        policy: { 'policy-type': 'sts', 'policy-string': sts.strings, 'policy-domain': 'example.org', 'mx-host': ['*.example.org'] },
        summary: { 'total-successful-session-count': 2, 'total-failure-session-count': 2 },
        'failure-details': [
          {
            'result-type': 'certificate-expired',
            'receiving-mx-hostname': 'mx1.example.org',
            'receiving-ip': '192.0.2.10',
            'failed-session-count': 2,
          },
        ],
      },
      {
        policy: { 'policy-type': 'no-policy-found', 'policy-string': [], 'policy-domain': 'example.org' },
        summary: { 'total-successful-session-count': 0, 'total-failure-session-count': 1 },
        'failure-details': [
          {
            'result-type': 'starttls-not-supported',
            'receiving-mx-hostname': 'mx1.example.org',
            'receiving-ip': '192.0.2.10',
            'failed-session-count': 1,
          },
        ],
      },
    ])
    expect(reporter.report('example.org')!.policies[0]!.summary['total-successful-session-count']).toBe(2) // "yesterday" is 2026-12-01
    expect(reporter.report('example.org', '2026-12-02')!.policies[0]!.summary['total-successful-session-count']).toBe(1)
    expect(reporter.days()).toEqual(['2026-12-01', '2026-12-02'])
  })

  it('names the file submitter!domain!begin!end.json.gz and gzips the JSON', () => {
    const reporter = tlsReporter({
      organizationName: 'X',
      contactInfo: 'x@example.com',
      submitter: 'mail.example.com',
      clock: () => Date.parse('2026-12-01T06:00:00Z'),
    })
    reporter.record({ domain: 'example.org', policy: sts })
    const report = reporter.report('example.org', '2026-12-01')!
    const file = tlsReportFile(report, 'mail.example.com')
    expect(file.filename).toBe('mail.example.com!example.org!1796083200!1796169599.json.gz')
    expect(JSON.parse(gunzipSync(file.gzip).toString())).toEqual(report)
  })

  it('reads the rua URIs of a TLSRPT record, and nothing of anything else', () => {
    expect(parseTlsRptRecord('v=TLSRPTv1; rua=mailto:tls@example.org, https://r.example.org/v1/tlsrpt')).toEqual([
      'mailto:tls@example.org',
      'https://r.example.org/v1/tlsrpt',
    ])
    expect(parseTlsRptRecord('v=TLSRPTv1;rua=http://insecure.example.org/')).toBeUndefined()
    expect(parseTlsRptRecord('v=STSv1; id=1')).toBeUndefined()
    expect(parseTlsRptRecord('v=TLSRPTv1')).toBeUndefined()
  })
})

describe.runIf(havePeer('openssl', 'apt-get install -y openssl'))('TLS-RPT delivery to the rua', () => {
  let pki: MxPki
  let dns: TestDnsServer
  let sink: Sink
  let endpoint: TestHttpsServer
  let hosts: MxHosts
  const now = Date.parse('2026-12-02T01:00:00Z')

  beforeAll(async () => {
    pki = await makeMxPki()
    endpoint = await startHttpsServer({ ip: '127.0.0.30', ...(await pki.issue(['reports.test'])), respond: () => ({ status: 201 }) })
    sink = await startSink()
    hosts = await startMxHosts([{ ip: '127.0.0.31' }])
    dns = await startDnsServer([
      testZone('test', [
        txt('_smtp._tls.both.test', 'v=TLSRPTv1; rua=mailto:tlsrpt@reports.test,https://reports.test/v1/tlsrpt'),
        txt('_smtp._tls.mx.test', 'v=TLSRPTv1; rua=mailto:tlsrpt@reports.test'),
        a('reports.test', '127.0.0.30'),
        mx('reports.test', 10, 'mx.reports.test'),
        a('mx.reports.test', '127.0.0.31'),
      ]),
    ])
  })
  afterAll(async () => {
    await sink?.close()
    await endpoint?.close()
    await hosts?.close()
    await dns?.close()
    await pki?.cleanup()
  })

  /** A reporter with counts from yesterday (2026-12-01), its clock now on 2026-12-02. */
  const yesterdays = (domains: readonly string[]) => {
    let clock = now - 86_400_000
    const reporter = tlsReporter({
      organizationName: 'Example Corp',
      contactInfo: 'postmaster@example.com',
      submitter: 'mail.example.com',
      clock: () => clock,
    })
    for (const domain of domains) reporter.record({ domain, policy: { type: 'no-policy-found', strings: [] } })
    clock = now
    return reporter
  }

  it('mails the gzipped report as multipart/report; report-type="tlsrpt" and POSTs it as application/tlsrpt+gzip', async () => {
    const r = yesterdays(['both.test', 'none.test'])
    const expected = r.report('both.test', '2026-12-01')!
    const transport = smtpTransport({ host: sink.host, port: sink.port, pool: false })
    const outcomes = await sendTlsReports({
      reporter: r,
      dns: { server: dns.address, cache: false },
      from: 'tlsrpt-noreply@example.com',
      transport,
      https: { ca: pki.ca.cert, port: endpoint.port },
      allowNetworks: ['127.0.0.0/8'],
    })
    await transport.close?.()
    expect(outcomes).toEqual([
      { domain: 'both.test', rua: 'mailto:tlsrpt@reports.test', outcome: 'sent' },
      { domain: 'both.test', rua: 'https://reports.test/v1/tlsrpt', outcome: 'sent' },
      { domain: 'none.test', rua: '', outcome: 'skipped', reason: 'no valid TLSRPT record' },
    ])

    const [mail] = await sink.waitForMessages(1)
    expect(mail).toMatchObject({ mailFrom: 'tlsrpt-noreply@example.com', rcptTo: ['tlsrpt@reports.test'] })
    const parsed = await simpleParser(mail!.raw)
    expect(parsed.subject).toBe(`Report Domain: both.test Submitter: mail.example.com Report-ID: <${expected['report-id']}>`)
    expect(parsed.headers.get('tls-report-domain')).toBe('both.test')
    expect(parsed.headers.get('tls-report-submitter')).toBe('mail.example.com')
    expect(parsed.headers.get('content-type')).toMatchObject({ value: 'multipart/report', params: { 'report-type': 'tlsrpt' } })
    const attachment = parsed.attachments.find((x) => x.contentType === 'application/tlsrpt+gzip')!
    expect(attachment.filename).toBe('mail.example.com!both.test!1796083200!1796169599.json.gz')
    const mailed = JSON.parse(gunzipSync(attachment.content).toString()) as TlsReport
    expect(mailed).toEqual(expected)
    expectRfc8460(mailed)

    const post = endpoint.requests.at(-1)!
    expect(post).toMatchObject({ method: 'POST', path: '/v1/tlsrpt' })
    expect(post.headers['content-type']).toBe('application/tlsrpt+gzip')
    expect(JSON.parse(gunzipSync(post.body).toString())).toEqual(expected)
    expect(r.domains('2026-12-01')).toEqual([])
  })

  it('delivers a mailed report through mxTransport despite a TLS requirement the rua host fails, and does not count that session', async () => {
    const counts = tlsReporter({ organizationName: 'X', contactInfo: 'x@example.com', submitter: 'mail.example.com' })
    const transport = mxTransport({
      dns: { server: dns.address, cache: false },
      port: hosts.port,
      allowNetworks: ['127.0.0.0/8'],
      mtaSts: false,
      requireTls: { 'reports.test': 'verify' },
      tlsReports: counts,
    })
    const r = yesterdays(['mx.test'])
    const outcomes = await sendTlsReports({ reporter: r, dns: { server: dns.address, cache: false }, from: 'tlsrpt@example.com', transport })
    await transport.close()
    expect(outcomes).toEqual([{ domain: 'mx.test', rua: 'mailto:tlsrpt@reports.test', outcome: 'sent' }])
    expect(hosts.host('127.0.0.31').messages.at(-1)).toMatchObject({ rcptTo: ['tlsrpt@reports.test'], secure: false })
    expect(counts.days()).toEqual([])
  })
})
