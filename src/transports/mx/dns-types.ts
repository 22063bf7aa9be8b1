/**
 * The contract between direct MX delivery and DNS: the records it reads (MX, A, AAAA, TLSA, TXT),
 * the shape of an answer, and the {@link DnsResolver} interface the MX transport calls.
 *
 * Two implementations are expected: {@link createDnsClient} (queries a configured resolver over
 * the wire and reports whether the answer was DNSSEC-validated), and plain objects of functions
 * that tests and applications write themselves (static tables, a resolver of their own). Nothing
 * here depends on how the answer was obtained.
 *
 * Who calls it: the MX walk (MX, then A/AAAA per exchange), DANE (TLSA per exchange and port),
 * MTA-STS and TLS-RPT (TXT). How often: once per destination and attempt; implementations cache.
 */

/**
 * The record types a {@link DnsResolver} answers. CNAMEs are followed, never returned.
 *
 * @category Transports
 */
export type DnsRecordType = 'MX' | 'A' | 'AAAA' | 'TLSA' | 'TXT'

/**
 * An MX record. `exchange` is lower case without the trailing dot; the root is `'.'`, so a
 * null MX (RFC 7505: the domain accepts no mail) is `{ preference: 0, exchange: '.' }`.
 *
 * @category Transports
 */
export interface MxRecord {
  /** Lower is tried first; hosts of equal preference are tried in random order. */
  preference: number
  /** The host name of the mail exchanger (lower case, no trailing dot; `'.'` for a null MX). */
  exchange: string
}

/**
 * A TLSA record (RFC 6698): certificate usage (for SMTP only 2, DANE-TA, and 3, DANE-EE,
 * count: RFC 7672 §3.1), selector (0 full certificate, 1 SubjectPublicKeyInfo), matching type
 * (0 exact, 1 SHA-256, 2 SHA-512) and the association data.
 *
 * @category Transports
 */
export interface TlsaRecord {
  /** Certificate usage: 2 (DANE-TA, a trust anchor) or 3 (DANE-EE, the server's own certificate) count for SMTP. */
  usage: number
  /** What is matched: 0 the full certificate, 1 its SubjectPublicKeyInfo. */
  selector: number
  /** How it is matched: 0 exact bytes, 1 SHA-256, 2 SHA-512. */
  matchingType: number
  /** The certificate association data: the selected bytes or their digest. */
  data: Uint8Array
}

/**
 * One TXT record as its character-strings, in order (as `dns.resolveTxt` gives them). Protocols
 * that read TXT records (MTA-STS, TLS-RPT) join them without a separator.
 *
 * @category Transports
 */
export type TxtRecord = readonly string[]

/**
 * What each record type is answered with; A and AAAA are address strings.
 *
 * @category Transports
 */
export interface DnsRecordMap {
  /** Mail exchangers of a domain. */
  MX: MxRecord
  /** An IPv4 address, dotted decimal. */
  A: string
  /** An IPv6 address in text form. */
  AAAA: string
  /** A DANE record of a `_port._tcp.host` name. */
  TLSA: TlsaRecord
  /** One TXT record's character-strings. */
  TXT: TxtRecord
}

/**
 * A successful answer. An empty `answers` is NODATA: the name exists but has no record of the
 * type. A name that does not exist is not an answer but a permanent `DnsError`
 * (`ERR_DNS_NXDOMAIN`); timeouts and SERVFAIL are temporary `DnsError`s.
 *
 * @category Transports
 */
export interface DnsAnswer<T> {
  /** Always `'NOERROR'`: every other response code is thrown as a `DnsError`. */
  rcode: 'NOERROR'
  /** The name the records belong to after following CNAMEs (lower case, no trailing dot). */
  canonicalName: string
  /** The records of the asked type, empty for NODATA. */
  answers: T[]
  /**
   * True only when a DNSSEC-validating resolver vouched for the whole answer (the AD bit) and that
   * resolver is trusted to say so (it runs on this machine). DANE needs it; everything else may
   * ignore it. A resolver of functions sets it only if it knows.
   */
  authenticated: boolean
  /** Seconds the answer may be kept: the smallest TTL involved (for NODATA, from the SOA). */
  ttl: number
}

/**
 * Per-query options.
 *
 * @category Transports
 */
export interface DnsQueryOptions {
  /** Abandons the query; it then rejects with `ERR_DNS_ABORTED`. */
  signal?: AbortSignal
}

/**
 * The DNS that direct MX delivery needs. Methods take a domain name (A-labels for
 * internationalised names; a trailing dot is allowed), resolve to a {@link DnsAnswer} and reject
 * with a `DnsError` whose `temporary` flag says whether to retry later (timeouts, SERVFAIL) or
 * to give up (no such domain).
 *
 * @example
 * ```ts
 * // A fixed resolver for tests or for a split-horizon setup: plain functions are enough.
 * const ok = <T>(answers: T[]) => ({ rcode: 'NOERROR' as const, canonicalName: '', answers, authenticated: false, ttl: 60 })
 * const resolver: DnsResolver = {
 *   mx: async () => ok([{ preference: 10, exchange: 'mx.example.test' }]),
 *   a: async () => ok(['127.0.0.1']),
 *   aaaa: async () => ok([]),
 *   tlsa: async () => ok([]),
 *   txt: async () => ok([]),
 * }
 * ```
 *
 * @category Transports
 */
export interface DnsResolver {
  /** The MX records of a domain; a domain without any is NODATA (empty `answers`), not an error. */
  mx(name: string, options?: DnsQueryOptions): Promise<DnsAnswer<MxRecord>>
  /** The IPv4 addresses of a host. */
  a(name: string, options?: DnsQueryOptions): Promise<DnsAnswer<string>>
  /** The IPv6 addresses of a host. */
  aaaa(name: string, options?: DnsQueryOptions): Promise<DnsAnswer<string>>
  /**
   * `name` is the TLSA owner, e.g. `_25._tcp.mx.example.com` (RFC 7672 §2.2). A TLSA name that
   * does not exist rejects with `ERR_DNS_NXDOMAIN` like any other: for DANE that means "no TLSA
   * records", while a temporary error (SERVFAIL: DNSSEC-bogus) means "defer".
   */
  tlsa(name: string, options?: DnsQueryOptions): Promise<DnsAnswer<TlsaRecord>>
  /** The TXT records of a name, e.g. `_mta-sts.example.com` (MTA-STS) or `_smtp._tls.example.com` (TLS-RPT). */
  txt(name: string, options?: DnsQueryOptions): Promise<DnsAnswer<TxtRecord>>
}
