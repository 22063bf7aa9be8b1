/**
 * Delivering TLS-RPT reports (RFC 8460 §3, §5): for each policy domain counted on a day, read its
 * `_smtp._tls` TXT record (`v=TLSRPTv1; rua=mailto:…,https://…`), gzip the report JSON, and
 * send it to every `rua`:
 *
 * - `mailto:` — a message through the transport the application gives (its own relay pipeline,
 *   so DKIM signing applies, or its queue, so it is retried): `multipart/report;
 *   report-type="tlsrpt"` with a short text part and the `application/tlsrpt+gzip` report, the
 *   `TLS-Report-Domain` and `TLS-Report-Submitter` header fields and the RFC's Subject. mxTransport
 *   recognises such a message and delivers it despite TLS failures, without counting it (§5.3).
 * - `https:` — a POST of the gzipped report (`Content-Type: application/tlsrpt+gzip`) through the
 *   same HTTPS client as MTA-STS: our resolver, the address gate, certificate checks, no redirects;
 *   any 2xx is a success.
 *
 * A domain with no valid record (none, several, no usable `rua`) is skipped. A domain whose report
 * reached at least one `rua` is forgotten (unless `keep`); the others stay for another try.
 * The application calls this once a day, after midnight UTC (a timer, cron, a queue job).
 */
import { randomBytes } from 'node:crypto'
import { Readable } from 'node:stream'
import { gzipSync } from 'node:zlib'
import { HeaderBlock } from '../../core/body/header-block.js'
import { createId, MessageImpl } from '../../core/message.js'
import type { Session, Transport } from '../../core/types.js'
import { rfc5322Date } from '../../shared/date.js'
import { addressGate } from './address-policy.js'
import { DnsError } from './dns-errors.js'
import { type ExtraCa, httpsRequest, trustedCas } from './https-client.js'
import { type MxTransportOptions, resolverOf } from './options.js'
import { type TlsReport, type TlsReporter, utcDay } from './tls-report.js'

/**
 * Options of {@link sendTlsReports}.
 *
 * @category Transports
 */
export interface SendTlsReportsOptions {
  /** The collector whose counts are reported and, once sent, forgotten. */
  readonly reporter: TlsReporter
  /** DNS for `_smtp._tls` records and HTTPS hosts (as `mxTransport`'s `dns`). */
  readonly dns?: MxTransportOptions['dns']
  /** The UTC day (`YYYY-MM-DD`). Default: yesterday. */
  readonly day?: string
  /** Sender (envelope and From) of mailed reports, e.g. `tlsrpt-noreply@example.com`. */
  readonly from?: string
  /** Where mailed reports go; without it, `mailto:` addresses are skipped. */
  readonly transport?: Transport
  /** HTTPS reporting: extra CA certificates, milliseconds per POST (default 30 000), a port for every URL (tests). */
  readonly https?: {
    /** PEM CA certificates trusted for report endpoints besides Node's roots. */
    readonly ca?: ExtraCa
    /** Milliseconds per POST. Default 30 000. */
    readonly timeout?: number
    /** Port used for every `https:` URL instead of its own (for tests). */
    readonly port?: number
  }
  /** Networks HTTPS endpoints may be on although private (as `mxTransport`'s). */
  readonly allowNetworks?: readonly string[]
  /** Keep the counts after sending. Default false. */
  readonly keep?: boolean
}

/**
 * What became of one report at one `rua`.
 *
 * @category Transports
 */
export interface TlsReportDelivery {
  /** The policy domain the report is about. */
  readonly domain: string
  /** The `rua` URI, or `''` when the domain publishes none. */
  readonly rua: string
  /** `sent`: a 2xx or accepted by the transport; `failed`: an error; `skipped`: no valid record, or no transport and sender for `mailto:`. */
  readonly outcome: 'sent' | 'failed' | 'skipped'
  /** Why it failed or was skipped: the DNS error, the HTTP status, the rejection reply. */
  readonly reason?: string
}

/**
 * A report as a file: RFC 8460 §5.3's name and the gzipped JSON.
 *
 * @category Transports
 */
export interface TlsReportFile {
  /** `submitter!policy-domain!begin!end.json.gz`, times in seconds since the epoch (RFC 8460 §5.3). */
  readonly filename: string
  /** The report JSON, uncompressed. */
  readonly json: string
  /** `json` gzipped: the `application/tlsrpt+gzip` body. */
  readonly gzip: Buffer
}

/**
 * The report as a file, named `submitter!policy-domain!begin!end.json.gz` (seconds since the epoch).
 *
 * @example
 * ```ts
 * const file = tlsReportFile(reporter.report('example.org', '2026-12-01')!, 'mail.example.com')
 * await writeFile(join(dir, file.filename), file.gzip)
 * ```
 *
 * @category Transports
 */
export function tlsReportFile(report: TlsReport, submitter: string): TlsReportFile {
  const begin = Date.parse(report['date-range']['start-datetime']) / 1000
  const end = Date.parse(report['date-range']['end-datetime']) / 1000
  const domain = report.policies[0]?.policy['policy-domain'] ?? 'unknown'
  const json = JSON.stringify(report)
  return { filename: `${submitter}!${domain}!${begin}!${end}.json.gz`, json, gzip: gzipSync(json) }
}

/**
 * The `rua` URIs of a TLSRPT record's text, or undefined if it is not one (RFC 8460 §3).
 *
 * @example
 * ```ts
 * parseTlsRptRecord('v=TLSRPTv1; rua=mailto:tls@example.org,https://r.example.org/v1') // ['mailto:tls@example.org', 'https://r.example.org/v1']
 * ```
 *
 * @category Transports
 */
export function parseTlsRptRecord(text: string): string[] | undefined {
  const fields = text.split(';').map((f) => f.trim())
  if (!/^v=TLSRPTv1$/i.test(fields[0] ?? '')) return undefined
  const rua = fields.find((f) => /^rua\s*=/i.test(f))
  if (!rua) return undefined
  const uris = rua
    .replace(/^rua\s*=\s*/i, '')
    .split(',')
    .map((u) => u.trim())
    .filter((u) => /^mailto:[^@\s]+@[^@\s]+$/i.test(u) || /^https:\/\/\S+$/i.test(u))
  return uris.length ? uris : undefined
}

function reportMessage(report: TlsReport, file: TlsReportFile, submitter: string, from: string, to: string, day: string): MessageImpl {
  const domain = report.policies[0]?.policy['policy-domain'] ?? ''
  const boundary = `tlsrpt-${randomBytes(9).toString('base64url')}`
  const head = [
    `From: <${from}>`,
    `To: <${to}>`,
    `Date: ${rfc5322Date()}`,
    `Message-ID: <${randomBytes(12).toString('hex')}@${submitter}>`,
    `Subject: Report Domain: ${domain} Submitter: ${submitter} Report-ID: <${report['report-id']}>`,
    `TLS-Report-Domain: ${domain}`,
    `TLS-Report-Submitter: ${submitter}`,
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type="tlsrpt"; boundary="${boundary}"`,
    '',
  ].join('\r\n')
  const base64 = file.gzip.toString('base64').replace(/.{1,76}/g, '$&\r\n')
  const body = [
    `--${boundary}`,
    'Content-Type: text/plain; charset=utf-8',
    '',
    `This is an aggregate TLS report (RFC 8460) from ${submitter} for ${domain}, ${day}.`,
    '',
    `--${boundary}`,
    'Content-Type: application/tlsrpt+gzip',
    'Content-Transfer-Encoding: base64',
    `Content-Disposition: attachment; filename="${file.filename}"`,
    '',
    `${base64}--${boundary}--`,
    '',
  ].join('\r\n')
  const session: Session = {
    id: createId(),
    listener: 'tls-rpt',
    remoteAddress: '127.0.0.1',
    remotePort: 0,
    localAddress: '127.0.0.1',
    localPort: 0,
    clientHostname: 'localhost',
    heloName: submitter,
    secure: true,
  }
  const msg = new MessageImpl({ session, mailFrom: { address: from } })
  msg.addOriginalRecipient({ address: to })
  msg.setEnvelope(msg.original)
  return msg.attachContent(HeaderBlock.parse(Buffer.from(head, 'latin1')), Readable.from([Buffer.from(body)]))
}

/**
 * Sends the reports of one day to the `rua` of each domain (see the file header). Never throws
 * for a report that could not be delivered: see the outcomes.
 *
 * @example
 * ```ts
 * const outcomes = await sendTlsReports({ reporter: tlsReports, dns: '127.0.0.1:53', from: 'tlsrpt@example.com', transport: relay.pipeline })
 * for (const o of outcomes) if (o.outcome === 'failed') log.warn(o, 'TLS report not delivered')
 * ```
 *
 * @category Transports
 */
export async function sendTlsReports(options: SendTlsReportsOptions): Promise<TlsReportDelivery[]> {
  const { reporter } = options
  const clock = reporter.options.clock ?? Date.now
  const day = options.day ?? utcDay(clock() - 86_400_000)
  const dns = resolverOf(options.dns)
  const gate = addressGate(options.allowNetworks)
  const submitter = reporter.options.submitter
  const outcomes: TlsReportDelivery[] = []
  for (const domain of reporter.domains(day)) {
    const report = reporter.report(domain, day)
    if (!report) continue
    let uris: string[] | undefined
    try {
      const answer = await dns.txt(`_smtp._tls.${domain}`)
      const records = answer.answers.map((r) => r.join('')).filter((t) => /^v=TLSRPTv1\s*(;|$)/i.test(t))
      uris = records.length === 1 ? parseTlsRptRecord(records[0]!) : undefined
    } catch (err) {
      if (!(err instanceof DnsError) || err.temporary) {
        outcomes.push({ domain, rua: '', outcome: 'failed', reason: `TXT _smtp._tls.${domain}: ${String(err)}` })
        continue
      }
    }
    if (!uris) {
      outcomes.push({ domain, rua: '', outcome: 'skipped', reason: 'no valid TLSRPT record' })
      if (!options.keep) reporter.forget(day, domain)
      continue
    }
    const file = tlsReportFile(report, submitter)
    let sent = false
    for (const rua of uris) {
      const outcome = await deliver(rua)
      sent ||= outcome.outcome === 'sent'
      outcomes.push(outcome)
    }
    if (sent && !options.keep) reporter.forget(day, domain)

    async function deliver(rua: string): Promise<TlsReportDelivery> {
      try {
        if (rua.toLowerCase().startsWith('mailto:')) {
          if (!options.transport || !options.from) return { domain, rua, outcome: 'skipped', reason: 'no transport and sender for mailed reports' }
          const to = decodeURIComponent(rua.slice('mailto:'.length))
          const msg = reportMessage(report!, file, submitter, options.from, to, day)
          try {
            const result = await options.transport.send(msg)
            if (result.accepted.length) return { domain, rua, outcome: 'sent' }
            return { domain, rua, outcome: 'failed', reason: result.rejected[0]?.error.toReply() ?? 'not accepted' }
          } finally {
            await msg.dispose()
          }
        }
        const res = await httpsRequest({
          url: new URL(rua),
          method: 'POST',
          headers: { 'content-type': 'application/tlsrpt+gzip' },
          body: file.gzip,
          dns,
          gate,
          ca: trustedCas(options.https?.ca),
          port: options.https?.port,
          timeout: options.https?.timeout ?? 30_000,
          maxBytes: 64 * 1024,
        })
        if (res.status >= 200 && res.status < 300) return { domain, rua, outcome: 'sent' }
        return { domain, rua, outcome: 'failed', reason: `HTTP ${res.status}` }
      } catch (err) {
        return { domain, rua, outcome: 'failed', reason: err instanceof Error ? err.message : String(err) }
      }
    }
  }
  return outcomes
}
