/**
 * Which TLS one MX host gets, from everything that may ask for it, strongest first:
 *
 * 1. DANE (RFC 7672) with usable TLSA records: TLS required, the certificate must match the
 *    records. DANE wins over MTA-STS (RFC 8461 §2): a DANE host is used even if an enforced
 *    policy does not name it.
 * 2. TLSA lookup that did not validate (SERVFAIL, bogus): the host is skipped, never downgraded.
 * 3. MTA-STS `enforce`: hosts the policy does not name are skipped; the others need TLS with a
 *    certificate valid for the MX name (PKIX). Failures are temporary (§5.1).
 * 4. TLSA records but none usable: TLS required, not authenticated (RFC 7672 §3.1).
 * 5. MTA-STS `testing`: checked like `enforce` (names, certificate), but a failure is only
 *    reported (TLS-RPT); a failed handshake falls back to cleartext.
 * 6. Otherwise opportunistic: STARTTLS when offered, no certificate check, cleartext if the
 *    handshake fails.
 *
 * On top: the transport's `requireTls` for the destination makes TLS mandatory (`'verify'`: with
 * a PKIX-valid certificate too); REQUIRETLS asked by the message (RFC 8689 §4.2.1) needs all of an
 * MX list that is DNSSEC-validated or named by an MTA-STS policy, TLS, a verified certificate
 * (DANE or PKIX) and a server that supports REQUIRETLS, to which it is passed on.
 */

import type { SmtpError } from '../../core/errors.js'
import type { TlsPolicyName } from '../../delivery/events.js'
import type { DaneLookup } from './dane-lookup.js'
import type { TlsaRecord } from './dns-types.js'
import { mxReply } from './replies.js'
import type { StsPolicy } from './sts-fetch.js'
import type { ReportedPolicy, TlsFailure } from './tls-report.js'

/** The TLS a host gets (see the file header). */
export interface HostTls {
  readonly name: TlsPolicyName
  /** Never send in cleartext. */
  readonly require: boolean
  /** What to check of the certificate. */
  readonly verify: 'none' | 'pkix' | 'dane'
  /** A failed check stops delivery to this host (false: report it, deliver anyway). */
  readonly enforce: boolean
  /** For `verify: 'dane'`. */
  readonly dane?: { readonly records: readonly TlsaRecord[]; readonly hostnames: readonly string[] }
  /** REQUIRETLS: pass it on; the server must support it. */
  readonly requireTlsExtension: boolean
  /** What TLS-RPT counts the session under. */
  readonly report: ReportedPolicy
  /** A failure found before connecting that is reported but not enforced (testing mode, host not in the policy). */
  readonly reported?: TlsFailure
}

/** The verdict for a host: its TLS, or why it is skipped. */
export type HostDecision = { readonly tls: HostTls } | { readonly skip: SmtpError; readonly report: ReportedPolicy; readonly failure: TlsFailure }

/** What {@link decideHostTls} weighs. */
export interface HostTlsInput {
  readonly host: string
  readonly dane: DaneLookup
  /** The domain's MTA-STS policy (mode `none` counts as none). */
  readonly sts?: StsPolicy | undefined
  /** Whether the policy names the host. */
  readonly stsAllows: boolean
  /** The transport's own rule for this destination. */
  readonly requireTls?: 'encrypt' | 'verify' | undefined
  /** REQUIRETLS asked for by the message. */
  readonly requireTlsMessage: boolean
  /** The MX answer was DNSSEC-validated. */
  readonly mxSecure: boolean
}

const NO_POLICY: ReportedPolicy = { type: 'no-policy-found', strings: [] }

/** A TLSA record in presentation form, as TLS-RPT's `policy-string` lists them. */
const tlsaLine = (r: TlsaRecord) => `${r.usage} ${r.selector} ${r.matchingType} ${Buffer.from(r.data).toString('hex')}`

/**
 * Decides the TLS of one host (see the file header).
 *
 * @example
 * ```ts
 * const decision = decideHostTls({ host: 'mx1.example.org', dane, sts, stsAllows: true, requireTlsMessage: false, mxSecure: true })
 * if ('skip' in decision) tryNextHost(decision.skip)
 * ```
 */
export function decideHostTls(input: HostTlsInput): HostDecision {
  const { host, dane } = input
  const sts = input.sts && input.sts.mode !== 'none' ? input.sts : undefined
  const stsReport: ReportedPolicy | undefined = sts && { type: 'sts', strings: sts.lines, mxHost: sts.mx }
  const tlsaReport = (records: readonly TlsaRecord[]): ReportedPolicy => ({ type: 'tlsa', strings: records.map(tlsaLine), mxHost: [host] })
  const notInPolicy: TlsFailure = { resultType: 'validation-failure', receivingMxHostname: host, reasonCode: 'mx-not-in-policy' }

  let tls: HostTls
  if (dane.kind === 'defer') {
    return {
      skip: mxReply.tlsFailure(`${host}: ${dane.reason}`),
      report: { type: 'tlsa', strings: [], mxHost: [host] },
      failure: { resultType: 'dnssec-invalid', receivingMxHostname: host, reasonCode: dane.reason },
    }
  }
  if (dane.kind === 'dane') {
    tls = { name: 'dane', require: true, verify: 'dane', enforce: true, dane, requireTlsExtension: false, report: tlsaReport(dane.records) }
  } else if (sts && stsReport && sts.mode === 'enforce') {
    if (!input.stsAllows) return { skip: mxReply.tlsFailure(`${host} is not named by the MTA-STS policy`), report: stsReport, failure: notInPolicy }
    tls = { name: 'mta-sts', require: true, verify: 'pkix', enforce: true, requireTlsExtension: false, report: stsReport }
  } else if (dane.kind === 'dane-encrypt') {
    tls = { name: 'dane-encrypt', require: true, verify: 'none', enforce: false, requireTlsExtension: false, report: tlsaReport(dane.records) }
  } else if (sts && stsReport) {
    tls = {
      name: 'mta-sts-testing',
      require: false,
      verify: 'pkix',
      enforce: false,
      requireTlsExtension: false,
      report: stsReport,
      ...(input.stsAllows ? {} : { reported: notInPolicy }),
    }
  } else {
    tls = { name: 'opportunistic', require: false, verify: 'none', enforce: false, requireTlsExtension: false, report: NO_POLICY }
  }

  const weak = tls.name === 'opportunistic' || tls.name === 'mta-sts-testing' || tls.name === 'dane-encrypt'
  if (input.requireTls) {
    const verify = input.requireTls === 'verify' || tls.verify !== 'none'
    tls = {
      ...tls,
      ...(weak ? { name: 'require-tls' as const } : {}),
      require: true,
      verify: tls.verify === 'dane' ? 'dane' : verify ? 'pkix' : 'none',
      enforce: tls.enforce || input.requireTls === 'verify',
    }
  }
  if (input.requireTlsMessage) {
    if (dane.kind !== 'dane' && !input.mxSecure && !(sts && input.stsAllows)) {
      return {
        skip: mxReply.tlsFailure(`REQUIRETLS: ${host} comes from an MX answer neither DNSSEC-validated nor named by an MTA-STS policy`),
        report: tls.report,
        failure: { resultType: 'validation-failure', receivingMxHostname: host, reasonCode: 'requiretls-insecure-mx' },
      }
    }
    tls = {
      ...tls,
      ...(weak ? { name: 'require-tls' as const } : {}),
      require: true,
      verify: tls.verify === 'dane' ? 'dane' : 'pkix',
      enforce: true,
      requireTlsExtension: true,
    }
  }
  return { tls }
}
