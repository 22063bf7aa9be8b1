/**
 * `createDnsClient()`: the DNS client of direct MX delivery. It sends its own queries (with
 * `dns-packet`) to one configured resolver, because Node's resolver neither shows the AD bit
 * (nodejs/node#57159) nor, before Node 22.15, looks up TLSA records, and DANE needs both.
 *
 * How a query runs: a cache hit answers at once. Otherwise a random id, a UDP datagram with RD,
 * AD and EDNS DO set, resent after `timeout` up to `attempts` times; a truncated reply (TC) is
 * asked again over TCP. All of it within `deadline`, and the caller's AbortSignal stops it at
 * any point. Outcomes:
 *
 * - NOERROR: a {@link DnsAnswer}, CNAMEs followed; no records of the type is NODATA, an empty
 *   `answers`. `authenticated` is the reply's AD bit, and only if the resolver is on loopback.
 * - NXDOMAIN: a permanent `DnsError` (`ERR_DNS_NXDOMAIN`, with `authenticated` as above),
 *   cached for the SOA's negative TTL. For a TLSA name that means "no TLSA records".
 * - SERVFAIL, REFUSED, no reply, a broken reply: a temporary `DnsError`, never cached. A
 *   validating resolver answers SERVFAIL for DNSSEC-bogus data: defer, never downgrade.
 *
 * Point it at a validating resolver on this machine (unbound, or systemd-resolved with DNSSEC
 * on) for DANE; pointed anywhere else it still resolves, but nothing is ever authenticated.
 */
import { randomInt } from 'node:crypto'
import { DnsCache, type DnsCacheOptions } from './dns-cache.js'
import { DnsError } from './dns-errors.js'
import { type ExchangeOptions, tcpExchange, udpExchange } from './dns-exchange.js'
import type { DnsAnswer, DnsQueryOptions, DnsRecordMap, DnsRecordType, DnsResolver } from './dns-types.js'
import { canonicalName, encodeQuery, matchReply, negativeTtl, type Reply, readReply } from './dns-wire.js'
import { parseResolverAddress, type ResolverAddress, type ResolverAddressInput, trustsAuthenticatedData } from './resolver-address.js'

/**
 * Options of {@link createDnsClient}.
 *
 * @category Transports
 */
export interface DnsClientOptions {
  /** The resolver: an IP literal with an optional port (`'127.0.0.1:5353'`, `'[::1]:53'`). */
  server: ResolverAddressInput
  /** Milliseconds to wait for each UDP reply (and for the TCP exchange). Default 2000. */
  timeout?: number
  /** UDP sends per query before giving up. Default 2. */
  attempts?: number
  /** Milliseconds a query may take in all, retries and TCP included. Default 5000. */
  deadline?: number
  /** Cache bounds and clock, or `false` for no cache. Default: 1000 entries, a day at most. */
  cache?: DnsCacheOptions | false
}

/**
 * A {@link DnsResolver} that queries a resolver over the wire.
 *
 * @category Transports
 */
export interface DnsClient extends DnsResolver {
  /** The generic form of the typed methods. */
  query<T extends DnsRecordType>(name: string, type: T, options?: DnsQueryOptions): Promise<DnsAnswer<DnsRecordMap[T]>>
  /** Where queries go. */
  readonly server: Readonly<ResolverAddress>
  /** Whether replies from `server` may ever count as authenticated (it is on loopback). */
  readonly trustsAuthenticatedData: boolean
  /** Forgets every cached answer. */
  clearCache(): void
}

const positive = (value: number | undefined, fallback: number): number => (value !== undefined && value > 0 ? value : fallback)

/**
 * A DNS client for one resolver (see the file header for what it does and how it fails).
 *
 * @example
 * ```ts
 * const dns = createDnsClient({ server: '127.0.0.1:53' }) // a local validating resolver
 * const tlsa = await dns.tlsa('_25._tcp.mx.example.com')
 * if (tlsa.authenticated && tlsa.answers.length > 0) {
 *   // DANE applies: TLS is required and the certificate must match (see verifyDane)
 * }
 * ```
 *
 * @category Transports
 */
export function createDnsClient(options: DnsClientOptions): DnsClient {
  const server = parseResolverAddress(options.server)
  const timeout = positive(options.timeout, 2000)
  const attempts = Math.floor(positive(options.attempts, 2))
  const deadline = positive(options.deadline, 5000)
  const trusted = trustsAuthenticatedData(server.host)
  const cache = options.cache === false ? undefined : new DnsCache(options.cache)

  async function exchange(name: string, type: DnsRecordType, signal: AbortSignal): Promise<Reply> {
    const udpId = randomInt(0, 65536)
    const base: Omit<ExchangeOptions, 'match'> = { name, type, timeout, signal }
    const udp = await udpExchange(server, encodeQuery(udpId, name, type), attempts, { ...base, match: (b) => matchReply(b, udpId, name, type) })
    if (!udp.flag_tc) return udp
    const tcpId = randomInt(0, 65536)
    return tcpExchange(server, encodeQuery(tcpId, name, type), { ...base, match: (b) => matchReply(b, tcpId, name, type) })
  }

  async function query<T extends DnsRecordType>(rawName: string, type: T, queryOptions: DnsQueryOptions = {}): Promise<DnsAnswer<DnsRecordMap[T]>> {
    const name = canonicalName(rawName, type)
    const key = `${type} ${name}`
    const hit = cache?.get(key)
    if (hit && 'nxdomain' in hit)
      throw new DnsError('ERR_DNS_NXDOMAIN', name, type, 'no such domain (cached)', { rcode: 'NXDOMAIN', authenticated: hit.authenticated })
    if (hit) return hit.answer as DnsAnswer<DnsRecordMap[T]>

    const { signal: callerSignal } = queryOptions
    const aborted = () => new DnsError('ERR_DNS_ABORTED', name, type, 'query aborted', { cause: callerSignal?.reason })
    if (callerSignal?.aborted) throw aborted()
    const controller = new AbortController()
    const onAbort = () => controller.abort(aborted())
    callerSignal?.addEventListener('abort', onAbort, { once: true })
    const timer = setTimeout(() => controller.abort(new DnsError('ERR_DNS_TIMEOUT', name, type, `no answer within ${deadline} ms`)), deadline)
    try {
      const reply = await exchange(name, type, controller.signal)
      const authenticated = trusted && reply.flag_ad
      try {
        const answer = readReply(reply, name, type, authenticated)
        cache?.set(key, { answer: { ...answer, answers: [...answer.answers] } }, answer.ttl)
        return answer
      } catch (err) {
        const ttl = negativeTtl(reply)
        if (err instanceof DnsError && err.code === 'ERR_DNS_NXDOMAIN') cache?.set(key, { nxdomain: true, authenticated, ttl }, ttl)
        throw err
      }
    } finally {
      clearTimeout(timer)
      callerSignal?.removeEventListener('abort', onAbort)
    }
  }

  return {
    query,
    server: Object.freeze({ ...server }),
    trustsAuthenticatedData: trusted,
    clearCache: () => cache?.clear(),
    mx: (name, o) => query(name, 'MX', o),
    a: (name, o) => query(name, 'A', o),
    aaaa: (name, o) => query(name, 'AAAA', o),
    tlsa: (name, o) => query(name, 'TLSA', o),
    txt: (name, o) => query(name, 'TXT', o),
  }
}
