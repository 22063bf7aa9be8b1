/**
 * MTA-STS policy discovery and its cache (RFC 8461 §3, §5.1). mailauth reads the `_mta-sts` TXT
 * record (`resolvePolicy`, through our resolver), parses policy files and matches MX names; it
 * refetches whenever asked, so the caching is ours:
 *
 * - A fetched policy is kept until `max_age` has passed. While the TXT record's `id` is the one
 *   the policy was fetched for, no fetch happens; a new `id` fetches at once (a refresh).
 * - The TXT record gone, or unreadable (timeout, SERVFAIL, several `v=STSv1` records): a policy
 *   that has not expired still applies (an attacker who can hide a record must not switch the
 *   policy off); otherwise there is none.
 * - A fetch that fails leaves the cached policy in force if it has not expired; otherwise
 *   delivery goes on as though the domain had no policy (§5.1), and the failure is reported
 *   (TLS-RPT). A failed fetch is not repeated for `retryAfter` seconds (default 300), so a domain
 *   whose web host is down costs one fetch per five minutes, not one per message.
 * - Concurrent lookups of one domain share one fetch. At most `maxEntries` domains are kept
 *   (least recently used go first). Time comes from an injectable clock.
 */
import type { Clock } from '../../shared/clock.js'
import type { AddressGate } from './address-policy.js'
import { DnsError } from './dns-errors.js'
import type { DnsResolver } from './dns-types.js'
import { type ExtraCa, trustedCas } from './https-client.js'
import { fetchStsPolicy, loadMtaStsLib, type StsFailureType, StsFetchError, type StsPolicy } from './sts-fetch.js'

/**
 * Options for MTA-STS (`mxTransport({ mtaSts })`).
 *
 * @category Transports
 */
export interface MtaStsOptions {
  /** HTTPS port of policy hosts. Default 443 (tests use a high port). */
  port?: number
  /** Extra CA certificates trusted for policy hosts, besides Node's roots. Default: the transport's `tls.ca`. */
  ca?: ExtraCa
  /** Milliseconds a policy fetch may take. Default 15 000. */
  timeout?: number
  /** Seconds before a failed fetch is tried again. Default 300. */
  retryAfter?: number
  /** Domains kept at most. Default 10 000. */
  maxEntries?: number
  /** Milliseconds since the epoch; default `Date.now`. */
  clock?: Clock
}

/**
 * What applies to a domain now.
 *
 * @category Transports
 */
export interface StsLookup {
  /** The policy in force, if any (mode `none` included). */
  readonly policy?: StsPolicy
  /** A fetch that failed this time or recently, for TLS-RPT; delivery goes on regardless. */
  readonly failure?: {
    /** The TLS-RPT result type of the failure. */
    readonly type: StsFailureType
    /** What went wrong, for the log and the report. */
    readonly reason: string
  }
}

interface Entry {
  policy?: StsPolicy
  /** When `policy` expires (ms). */
  expires: number
  /** After a failed fetch: the id it was for, when to try again, and why it failed. */
  failed?: { id: string; until: number; type: StsFailureType; reason: string }
}

/**
 * MTA-STS policies by domain (see the file header).
 *
 * @example
 * ```ts
 * const sts = new MtaStsCache({ dns, gate: addressGate() })
 * const { policy } = await sts.lookup('example.org')
 * if (policy?.mode === 'enforce' && !sts.allows(policy, 'mx1.example.org')) skipHost()
 * ```
 *
 * @category Transports
 */
export class MtaStsCache {
  readonly #dns: DnsResolver
  readonly #gate: AddressGate
  readonly #options: MtaStsOptions
  readonly #clock: Clock
  readonly #entries = new Map<string, Entry>()
  readonly #inFlight = new Map<string, Promise<StsLookup>>()
  readonly #ca: (string | Buffer)[] | undefined
  #validateMx: ((mx: string, policy: StsPolicy) => string | false) | undefined

  constructor(deps: { dns: DnsResolver; gate: AddressGate }, options: MtaStsOptions = {}) {
    this.#dns = deps.dns
    this.#gate = deps.gate
    this.#options = options
    this.#clock = options.clock ?? Date.now
    this.#ca = trustedCas(options.ca)
  }

  /** The policy that applies to `domain` (an A-label); never throws. */
  lookup(domain: string): Promise<StsLookup> {
    const running = this.#inFlight.get(domain)
    if (running) return running
    const work = this.#lookup(domain).finally(() => this.#inFlight.delete(domain))
    this.#inFlight.set(domain, work)
    return work
  }

  /**
   * True if `policy` names `host` (RFC 8461 §4.1: exact, or `*.` matching exactly one leftmost
   * label). Call after a `lookup()`, which loads the matcher.
   */
  allows(policy: StsPolicy, host: string): boolean {
    const match = this.#validateMx?.(host, policy)
    if (!match) return false
    // mailauth lets `*.example.org` match `a.b.example.org` too; the RFC allows one label only.
    return !match.startsWith('.') || !host.slice(0, -match.length).includes('.')
  }

  async #lookup(domain: string): Promise<StsLookup> {
    const lib = await loadMtaStsLib()
    this.#validateMx ??= (mx, policy) => {
      const result = lib.validateMx(mx, { mode: policy.mode, mx: [...policy.mx] })
      return result.valid ? (result.match ?? mx) : false
    }
    const now = this.#clock()
    const entry = this.#entries.get(domain)
    const fresh = entry?.policy && entry.expires > now ? entry.policy : undefined
    let id: string | false
    try {
      id = await lib.resolvePolicy(domain, { resolver: (name: string) => this.#txt(name) })
    } catch {
      id = false
    }
    if (!id) return this.#keep(domain, fresh)
    if (fresh && fresh.id === id) return this.#keep(domain, fresh)
    if (entry?.failed && entry.failed.id === id && entry.failed.until > now) {
      return { ...(fresh ? { policy: fresh } : {}), failure: { type: entry.failed.type, reason: entry.failed.reason } }
    }
    try {
      const policy = await fetchStsPolicy(domain, id, {
        dns: this.#dns,
        gate: this.#gate,
        ca: this.#ca,
        port: this.#options.port,
        timeout: this.#options.timeout ?? 15_000,
      })
      this.#store(domain, { policy, expires: this.#clock() + policy.maxAge * 1000 })
      return { policy }
    } catch (err) {
      const failure =
        err instanceof StsFetchError ? { type: err.type, reason: err.message } : { type: 'sts-policy-fetch-error' as const, reason: String(err) }
      const until = this.#clock() + (this.#options.retryAfter ?? 300) * 1000
      this.#store(domain, { ...(fresh ? { policy: fresh } : {}), expires: fresh ? entry!.expires : 0, failed: { id, until, ...failure } })
      return { ...(fresh ? { policy: fresh } : {}), failure }
    }
  }

  /** The answer when nothing is fetched: the fresh policy if there is one (an expired one is forgotten). */
  #keep(domain: string, fresh: StsPolicy | undefined): StsLookup {
    const entry = this.#entries.get(domain)
    if (!fresh) {
      if (entry && !entry.failed) this.#entries.delete(domain)
      return {}
    }
    if (entry) this.#store(domain, entry)
    return { policy: fresh }
  }

  #store(domain: string, entry: Entry): void {
    this.#entries.delete(domain)
    this.#entries.set(domain, entry)
    const max = this.#options.maxEntries ?? 10_000
    while (this.#entries.size > max) {
      const oldest = this.#entries.keys().next().value
      if (oldest === undefined) break
      this.#entries.delete(oldest)
    }
  }

  /** TXT records for mailauth's `resolvePolicy`, with its error codes for "no record". */
  async #txt(name: string): Promise<string[][]> {
    try {
      const answer = await this.#dns.txt(name)
      return answer.answers.map((record) => [...record])
    } catch (err) {
      if (err instanceof DnsError && !err.temporary) throw Object.assign(new Error(err.message), { code: 'ENOTFOUND' })
      throw err
    }
  }
}
