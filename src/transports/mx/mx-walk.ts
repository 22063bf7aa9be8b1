/**
 * The MX walk (RFC 5321 §5.1): which servers a recipient domain's mail goes to, in which order.
 *
 * - MX records sorted by preference, lowest first; records of equal preference in random order
 *   (the random source is injectable, so tests pin the order).
 * - No MX records (NODATA): the domain itself is the one host, the implicit MX.
 * - A null MX (RFC 7505, `0 .`): the domain accepts no mail, `550 5.1.10` at once. A `.` among
 *   other MX records is ignored (the domain broke RFC 7505 §3; its other hosts still count).
 * - The domain does not exist: `550 5.1.2`. A DNS timeout or SERVFAIL (DNSSEC-bogus included):
 *   `451 4.4.3`.
 *
 * Each host's addresses are looked up only when the walk reaches it (a backup MX costs nothing
 * while the primary works), IPv6 first, then IPv4. `secure` records whether the answers were
 * DNSSEC-validated, which is what DANE needs (RFC 7672 §2.2).
 */

import { DnsError } from './dns-errors.js'
import type { DnsResolver } from './dns-types.js'
import { mxReply } from './replies.js'

/** One mail exchanger of a domain. */
export interface MxHost {
  /** Host name, lower case, no trailing dot; for an implicit MX, the domain. */
  readonly name: string
  readonly preference: number
  /** True for the implicit MX (the domain had no MX records). */
  readonly implicit: boolean
}

/** The mail exchangers of a domain, in the order to try them. */
export interface MxRoute {
  readonly domain: string
  readonly hosts: readonly MxHost[]
  /** True if the MX answer (or, for an implicit MX, the lack of one) was DNSSEC-validated. */
  readonly secure: boolean
}

/** The addresses of one host. */
export interface HostAddresses {
  /** IPv6 first, then IPv4, each in the order DNS gave them. */
  readonly addresses: readonly string[]
  /** True if every address answer that came (NODATA included) was DNSSEC-validated. */
  readonly secure: boolean
  /** Why there are none, when there are none: a temporary failure, or the host does not exist. */
  readonly error?: DnsError
}

/** Reorders `list` in place so that entries with equal `key` are shuffled among themselves. */
function shuffleEqual<T>(list: T[], key: (item: T) => number, random: () => number): T[] {
  list.sort((x, y) => key(x) - key(y))
  for (let start = 0; start < list.length; ) {
    let end = start
    while (end < list.length && key(list[end]!) === key(list[start]!)) end++
    for (let i = end - 1; i > start; i--) {
      const j = start + Math.floor(random() * (i - start + 1))
      ;[list[i], list[j]] = [list[j]!, list[i]!]
    }
    start = end
  }
  return list
}

/**
 * The mail exchangers of `domain` (an A-label domain). Throws the `SmtpError` that fails its
 * recipients: `550 5.1.2`, `550 5.1.10` or `451 4.4.3` (see the file header).
 *
 * @example
 * ```ts
 * const route = await lookupMx(dns, 'example.org', Math.random)
 * route.hosts // [{ name: 'mx1.example.org', preference: 10, implicit: false }, …]
 * ```
 */
export async function lookupMx(dns: DnsResolver, domain: string, random: () => number): Promise<MxRoute> {
  let answer: Awaited<ReturnType<DnsResolver['mx']>>
  try {
    answer = await dns.mx(domain)
  } catch (err) {
    if (err instanceof DnsError && !err.temporary) throw mxReply.noSuchDomain(`MX ${domain}: ${err.message}`)
    throw mxReply.dnsFailure(`MX ${domain}: ${err instanceof Error ? err.message : String(err)}`, err)
  }
  if (answer.answers.length === 0) {
    return { domain, hosts: [{ name: domain, preference: 0, implicit: true }], secure: answer.authenticated }
  }
  const real = answer.answers.filter((r) => r.exchange !== '.' && r.exchange !== '')
  if (real.length === 0) throw mxReply.nullMx(`${domain} publishes a null MX (RFC 7505)`)
  const hosts = real.map((r) => ({ name: r.exchange.toLowerCase().replace(/\.$/, ''), preference: r.preference, implicit: false }))
  return { domain, hosts: shuffleEqual(hosts, (h) => h.preference, random), secure: answer.authenticated }
}

/**
 * The addresses of one host (AAAA and A in parallel; `ipv6: false` skips AAAA). Never throws: a
 * failure is in `error`, and a host with some addresses is usable even if one lookup failed.
 *
 * @example
 * ```ts
 * const { addresses, secure } = await resolveHost(dns, 'mx1.example.org', true)
 * ```
 */
export async function resolveHost(dns: DnsResolver, name: string, ipv6: boolean): Promise<HostAddresses> {
  const lookups = await Promise.allSettled([ipv6 ? dns.aaaa(name) : Promise.resolve(undefined), dns.a(name)])
  const addresses: string[] = []
  let secure = true
  let error: DnsError | undefined
  for (const lookup of lookups) {
    if (lookup.status === 'fulfilled') {
      if (!lookup.value) continue
      addresses.push(...lookup.value.answers)
      secure &&= lookup.value.authenticated
      continue
    }
    const reason: unknown = lookup.reason
    const dnsError = reason instanceof DnsError ? reason : new DnsError('ERR_DNS_BAD_RESPONSE', name, 'A', String(reason), { cause: reason })
    // A temporary failure says more than "no such host": keep it.
    if (!error || (dnsError.temporary && !error.temporary)) error = dnsError
  }
  return addresses.length ? { addresses, secure } : { addresses, secure: false, ...(error ? { error } : {}) }
}
