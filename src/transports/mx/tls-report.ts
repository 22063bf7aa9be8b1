/**
 * TLS-RPT counting and the daily report (RFC 8460 §4): every session direct MX delivery tries is
 * counted, per recipient domain (the policy domain) and per policy that applied, as a success or a
 * failure with the RFC's result type; {@link TlsReporter.report} turns one UTC day of it into the
 * report JSON, and `sendTlsReports()` (tls-report-send.ts) delivers it to the domain's `rua`.
 *
 * - Policies: `sts` (an MTA-STS policy: its lines, its `mx` patterns), `tlsa` (DANE: the TLSA
 *   records, the MX host), `no-policy-found` (neither). The policy domain is the recipient
 *   domain in every case, so one domain gets one report with all its MX hosts in it.
 * - A session counts as a success when TLS was negotiated and passed what its policy checks
 *   (an MTA-STS policy in testing mode included); as a failure otherwise, with details: result
 *   type, the MX host and its address, our address, the reason. A policy failure without a
 *   session (an MTA-STS fetch that failed, a TLSA lookup that did not validate) counts too.
 * - Counts live in memory, by UTC day, until `take()`n (or `forget()`): a restart loses them.
 *   Days that are more than `keepDays` old (default 3) are dropped.
 */
import type { Clock } from '../../shared/clock.js'

/**
 * The result types of RFC 8460 §4.3 (the IANA registry "STARTTLS Validation Result Types").
 *
 * @category Transports
 */
export type TlsRptResultType =
  | 'starttls-not-supported'
  | 'certificate-host-mismatch'
  | 'certificate-expired'
  | 'certificate-not-trusted'
  | 'validation-failure'
  | 'tlsa-invalid'
  | 'dnssec-invalid'
  | 'dane-required'
  | 'sts-policy-fetch-error'
  | 'sts-policy-invalid'
  | 'sts-webpki-invalid'

/**
 * The policy a session was held under, as the report names it.
 *
 * @category Transports
 */
export interface ReportedPolicy {
  /** `policy-type`: an MTA-STS policy, DANE TLSA records, or neither. */
  readonly type: 'sts' | 'tlsa' | 'no-policy-found'
  /** `policy-string`: the MTA-STS policy's lines, or the TLSA records in presentation form. */
  readonly strings: readonly string[]
  /** `mx-host`: the MTA-STS `mx` patterns, or the MX host the TLSA records belong to. */
  readonly mxHost?: readonly string[]
}

/**
 * What failed, for `failure-details`.
 *
 * @category Transports
 */
export interface TlsFailure {
  /** `result-type`: the RFC 8460 category of the failure. */
  readonly resultType: TlsRptResultType
  /** `receiving-mx-hostname`: the MX host connected to. */
  readonly receivingMxHostname?: string
  /** `receiving-ip`: the MX host's address that was connected to. */
  readonly receivingIp?: string
  /** `sending-mta-ip`: our local address of the connection. */
  readonly sendingMtaIp?: string
  /** `receiving-mx-helo`: the name the MX host announced in its greeting or EHLO reply. */
  readonly receivingMxHelo?: string
  /** `failure-reason-code`: free text, e.g. the certificate error. */
  readonly reasonCode?: string
}

/**
 * One counted session (or policy failure).
 *
 * @category Transports
 */
export interface TlsSessionRecord {
  /** The recipient domain (A-label). */
  readonly domain: string
  /** The policy the session was held under. */
  readonly policy: ReportedPolicy
  /** Absent for a success. */
  readonly failure?: TlsFailure
}

/**
 * The report JSON of RFC 8460 §4.4, field names as the RFC spells them.
 *
 * @category Transports
 */
export interface TlsReport {
  /** Who sends the report ({@link TlsReporterOptions.organizationName}). */
  readonly 'organization-name': string
  /** The UTC day the report covers. */
  readonly 'date-range': {
    /** Its first instant, ISO 8601 (`2026-12-01T00:00:00Z`). */
    readonly 'start-datetime': string
    /** Its last instant, ISO 8601 (`2026-12-01T23:59:59Z`). */
    readonly 'end-datetime': string
  }
  /** Where to ask about the report ({@link TlsReporterOptions.contactInfo}). */
  readonly 'contact-info': string
  /** A unique id: `day_domain@submitter`. */
  readonly 'report-id': string
  /** One entry per policy that applied to the domain's sessions that day. */
  readonly policies: ReadonlyArray<{
    /** The policy as {@link ReportedPolicy} describes it, with the policy domain. */
    readonly policy: {
      /** `sts`, `tlsa` or `no-policy-found`. */
      readonly 'policy-type': ReportedPolicy['type']
      /** The MTA-STS policy's lines, or the TLSA records in presentation form. */
      readonly 'policy-string': readonly string[]
      /** The recipient domain the policy belongs to. */
      readonly 'policy-domain': string
      /** The MTA-STS `mx` patterns, or the MX host of the TLSA records. */
      readonly 'mx-host'?: readonly string[]
    }
    /** Session counts under this policy. */
    readonly summary: {
      /** Sessions that negotiated TLS and passed the policy. */
      readonly 'total-successful-session-count': number
      /** Sessions (and sessionless policy failures) that failed. */
      readonly 'total-failure-session-count': number
    }
    /** The failures, grouped by identical details; absent when there were none. */
    readonly 'failure-details'?: ReadonlyArray<{
      /** The RFC 8460 category of the failure. */
      readonly 'result-type': TlsRptResultType
      /** Our local address of the connection. */
      readonly 'sending-mta-ip'?: string
      /** The MX host connected to. */
      readonly 'receiving-mx-hostname'?: string
      /** The name the MX host announced in its greeting or EHLO reply. */
      readonly 'receiving-mx-helo'?: string
      /** The MX host's address that was connected to. */
      readonly 'receiving-ip'?: string
      /** How many times these exact details were counted. */
      readonly 'failed-session-count': number
      /** Free text, e.g. the certificate error. */
      readonly 'failure-reason-code'?: string
    }>
  }>
}

/**
 * Options of {@link tlsReporter}.
 *
 * @category Transports
 */
export interface TlsReporterOptions {
  /** `organization-name`: who sends the reports. */
  organizationName: string
  /** `contact-info`: an address or URL for questions about them. */
  contactInfo: string
  /** The sending host's domain, used in report ids and file names (`submitter`). */
  submitter: string
  /** Milliseconds since the epoch; default `Date.now`. */
  clock?: Clock
  /** Days kept before they are dropped untaken. Default 3. */
  keepDays?: number
}

interface PolicyCounts {
  readonly policy: ReportedPolicy
  successes: number
  failures: number
  readonly details: Map<string, { failure: TlsFailure; count: number }>
}

/**
 * Collects TLS-RPT counts; see the file header.
 *
 * @category Transports
 */
export interface TlsReporter {
  /** The options it was created with; `sendTlsReports` reads `submitter` and `clock` from them. */
  readonly options: Readonly<TlsReporterOptions>
  /** Counts one session. Called by `mxTransport`. */
  record(session: TlsSessionRecord): void
  /** UTC days (`YYYY-MM-DD`) with counts, oldest first. */
  days(): string[]
  /** Domains with counts on `day`. */
  domains(day: string): string[]
  /** The report for `domain` on `day` (default: yesterday, UTC), or undefined if nothing was counted. */
  report(domain: string, day?: string): TlsReport | undefined
  /** Forgets `domain` on `day` (after its report was sent), or the whole day. */
  forget(day: string, domain?: string): void
}

/**
 * The UTC day `YYYY-MM-DD` of a time.
 *
 * @example
 * ```ts
 * utcDay(Date.parse('2026-12-01T23:59:59Z')) // '2026-12-01'
 * ```
 */
export const utcDay = (ms: number): string => new Date(ms).toISOString().slice(0, 10)

/** A stable key for a policy: the same policy counts in one entry. */
const policyKey = (p: ReportedPolicy) => JSON.stringify([p.type, p.strings, p.mxHost ?? []])
const detailKey = (f: TlsFailure) =>
  JSON.stringify([f.resultType, f.receivingMxHostname, f.receivingIp, f.sendingMtaIp, f.receivingMxHelo, f.reasonCode])

/**
 * Creates a TLS-RPT collector; pass it to `mxTransport({ tlsReports })` and send its reports
 * daily with `sendTlsReports()`.
 *
 * @example
 * ```ts
 * const tlsReports = tlsReporter({ organizationName: 'Example Corp', contactInfo: 'postmaster@example.com', submitter: 'mail.example.com' })
 * const transport = mxTransport({ dns: '127.0.0.1:53', tlsReports })
 * // once a day, after midnight UTC:
 * await sendTlsReports({ reporter: tlsReports, dns, from: 'tlsrpt@example.com', transport: pipeline })
 * ```
 *
 * @category Transports
 */
export function tlsReporter(options: TlsReporterOptions): TlsReporter {
  const clock = options.clock ?? Date.now
  const keepDays = options.keepDays ?? 3
  const byDay = new Map<string, Map<string, Map<string, PolicyCounts>>>()

  function prune(today: string) {
    const oldest = utcDay(Date.parse(`${today}T00:00:00Z`) - keepDays * 86_400_000)
    for (const day of byDay.keys()) if (day < oldest) byDay.delete(day)
  }

  return {
    options,
    record(session) {
      const day = utcDay(clock())
      let domains = byDay.get(day)
      if (!domains) {
        byDay.set(day, (domains = new Map()))
        prune(day)
      }
      let policies = domains.get(session.domain)
      if (!policies) domains.set(session.domain, (policies = new Map()))
      const key = policyKey(session.policy)
      let counts = policies.get(key)
      if (!counts) policies.set(key, (counts = { policy: session.policy, successes: 0, failures: 0, details: new Map() }))
      if (!session.failure) {
        counts.successes++
        return
      }
      counts.failures++
      const dk = detailKey(session.failure)
      const detail = counts.details.get(dk)
      if (detail) detail.count++
      else counts.details.set(dk, { failure: session.failure, count: 1 })
    },
    days: () => [...byDay.keys()].sort(),
    domains: (day) => [...(byDay.get(day)?.keys() ?? [])],
    report(domain, day = utcDay(clock() - 86_400_000)) {
      const policies = byDay.get(day)?.get(domain)
      if (!policies) return undefined
      return {
        'organization-name': options.organizationName,
        'date-range': { 'start-datetime': `${day}T00:00:00Z`, 'end-datetime': `${day}T23:59:59Z` },
        'contact-info': options.contactInfo,
        'report-id': `${day}_${domain}@${options.submitter}`,
        policies: [...policies.values()].map((c) => ({
          policy: {
            'policy-type': c.policy.type,
            'policy-string': [...c.policy.strings],
            'policy-domain': domain,
            ...(c.policy.mxHost ? { 'mx-host': [...c.policy.mxHost] } : {}),
          },
          summary: { 'total-successful-session-count': c.successes, 'total-failure-session-count': c.failures },
          ...(c.details.size
            ? {
                'failure-details': [...c.details.values()].map(({ failure: f, count }) => ({
                  'result-type': f.resultType,
                  ...(f.sendingMtaIp ? { 'sending-mta-ip': f.sendingMtaIp } : {}),
                  ...(f.receivingMxHostname ? { 'receiving-mx-hostname': f.receivingMxHostname } : {}),
                  ...(f.receivingMxHelo ? { 'receiving-mx-helo': f.receivingMxHelo } : {}),
                  ...(f.receivingIp ? { 'receiving-ip': f.receivingIp } : {}),
                  'failed-session-count': count,
                  ...(f.reasonCode ? { 'failure-reason-code': f.reasonCode } : {}),
                })),
              }
            : {}),
        })),
      }
    },
    forget(day, domain) {
      if (domain === undefined) byDay.delete(day)
      else byDay.get(day)?.delete(domain)
    },
  }
}
