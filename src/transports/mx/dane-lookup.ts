/**
 * Whether DANE (RFC 7672) applies to one MX host, and with which records.
 *
 * DANE applies only along a chain of DNSSEC-validated answers (§2.2): the MX answer (for an
 * implicit MX, the domain's own address answers), then the host's address answers. Only then is
 * `_<port>._tcp.<host>` TLSA looked up; an insecure step anywhere means no DANE for this host.
 *
 * | TLSA answer | result |
 * |---|---|
 * | validated, usable records (DANE-TA(2) / DANE-EE(3)) | `dane`: TLS required, the certificate must match |
 * | validated, records but none usable | `dane-encrypt`: TLS required, not authenticated (§3.1) |
 * | validated "no records" (NODATA, NXDOMAIN), or not validated | none: the other policies decide |
 * | SERVFAIL (DNSSEC-bogus), timeout, any temporary failure | `defer`: do not connect to this host, never downgrade |
 *
 * The reference names for DANE-TA (§3.2.2) are the TLSA base domain (the host name, or where a
 * CNAME at the TLSA name led) and the MX host name itself.
 */
import { isUsableTlsaRecord } from './dane.js'
import { DnsError } from './dns-errors.js'
import type { DnsResolver, TlsaRecord } from './dns-types.js'

/** The DANE verdict for one host (see the file header). */
export type DaneLookup =
  | { readonly kind: 'none' }
  | { readonly kind: 'dane'; readonly records: readonly TlsaRecord[]; readonly hostnames: readonly string[] }
  | { readonly kind: 'dane-encrypt'; readonly records: readonly TlsaRecord[] }
  | { readonly kind: 'defer'; readonly reason: string }

const NONE: DaneLookup = { kind: 'none' }

/**
 * Looks up the TLSA records of `host` on `port`, given that the MX and address answers that led
 * to it were `secure` (see the file header).
 *
 * @example
 * ```ts
 * const dane = await lookupDane(dns, 'mx1.example.org', 25, route.secure && addresses.secure)
 * if (dane.kind === 'defer') skipHost(dane.reason)
 * ```
 */
export async function lookupDane(dns: DnsResolver, host: string, port: number, secure: boolean): Promise<DaneLookup> {
  if (!secure) return NONE
  const name = `_${port}._tcp.${host}`
  let answer: Awaited<ReturnType<DnsResolver['tlsa']>>
  try {
    answer = await dns.tlsa(name)
  } catch (err) {
    if (err instanceof DnsError && !err.temporary) return NONE
    return { kind: 'defer', reason: `TLSA ${name}: ${err instanceof Error ? err.message : String(err)}` }
  }
  if (!answer.authenticated || answer.answers.length === 0) return NONE
  const usable = answer.answers.filter(isUsableTlsaRecord)
  if (usable.length === 0) return { kind: 'dane-encrypt', records: answer.answers }
  const base = answer.canonicalName.replace(/^_\d+\._tcp\./, '') || host
  return { kind: 'dane', records: answer.answers, hostnames: [...new Set([base, host])] }
}
