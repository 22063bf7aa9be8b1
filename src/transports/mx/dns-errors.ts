/**
 * `DnsError`: why a DNS query gave no answer, and whether that is worth retrying.
 *
 * Delivery decides with `temporary` alone. Only a name that does not exist (NXDOMAIN) and a name
 * that cannot be a domain name are permanent; everything else, a timeout, SERVFAIL, REFUSED, a
 * broken reply, an aborted query, is temporary. For DANE this is the rule "defer, never
 * downgrade": a validating resolver answers SERVFAIL when signatures do not verify, and a
 * delivery that treated that like "no TLSA records" would hand the message to an attacker.
 */

/**
 * Stable codes of {@link DnsError}, with whether each is temporary.
 *
 * @category Transports
 */
export const DnsErrorCode = {
  /** No reply within the per-query timeout or the total deadline. Temporary. */
  ERR_DNS_TIMEOUT: 'ERR_DNS_TIMEOUT',
  /** The resolver answered SERVFAIL (for a validating resolver: also DNSSEC bogus). Temporary. */
  ERR_DNS_SERVFAIL: 'ERR_DNS_SERVFAIL',
  /** The resolver refused the query (not configured to answer us). Temporary. */
  ERR_DNS_REFUSED: 'ERR_DNS_REFUSED',
  /** The name does not exist (NXDOMAIN). Permanent. */
  ERR_DNS_NXDOMAIN: 'ERR_DNS_NXDOMAIN',
  /** A reply that cannot be used: FORMERR, NOTIMP, another code, bad framing, a CNAME loop. Temporary. */
  ERR_DNS_BAD_RESPONSE: 'ERR_DNS_BAD_RESPONSE',
  /** The socket failed (connection refused, reset). Temporary. */
  ERR_DNS_NETWORK: 'ERR_DNS_NETWORK',
  /** The caller's AbortSignal fired. Temporary (the caller chose to stop, nothing was learnt). */
  ERR_DNS_ABORTED: 'ERR_DNS_ABORTED',
  /** The name is not a valid domain name (empty label, label over 63 or name over 253 octets). Permanent. */
  ERR_DNS_INVALID_NAME: 'ERR_DNS_INVALID_NAME',
} as const

/**
 * One of the {@link DnsErrorCode} values.
 *
 * @category Transports
 */
export type DnsErrorCode = (typeof DnsErrorCode)[keyof typeof DnsErrorCode]

const PERMANENT: ReadonlySet<DnsErrorCode> = new Set(['ERR_DNS_NXDOMAIN', 'ERR_DNS_INVALID_NAME'])
const DNS_ERROR = Symbol.for('relaychain.DnsError')

/**
 * Options of {@link DnsError}.
 *
 * @category Transports
 */
export interface DnsErrorOptions {
  /** The response code the resolver gave, if it gave one (`'SERVFAIL'`, `'NXDOMAIN'`, …). */
  rcode?: string
  /** For NXDOMAIN: whether the denial was DNSSEC-validated (see {@link DnsError.authenticated}). */
  authenticated?: boolean
  /** The underlying error (a socket error, the abort reason), kept as the `Error` cause. */
  cause?: unknown
}

/**
 * A DNS query that produced no answer.
 *
 * @example
 * ```ts
 * try { await dns.tlsa('_25._tcp.mx.example.com') }
 * catch (err) {
 *   if (err instanceof DnsError && err.temporary) defer('DNS: ' + err.code) // never downgrade to no-DANE
 *   else throw err
 * }
 * ```
 *
 * @category Transports
 */
export class DnsError extends Error {
  /** Why there was no answer; decides {@link DnsError.temporary}. */
  readonly code: DnsErrorCode
  /** The name that was asked for. */
  readonly hostname: string
  /** The record type that was asked for. */
  readonly type: string
  /** The response code the resolver gave (`'SERVFAIL'`, `'NXDOMAIN'`, …); undefined when it gave none (e.g. a timeout, a socket error). */
  readonly rcode: string | undefined
  /**
   * True when a trusted validating resolver proved the answer (AD bit from loopback): for
   * NXDOMAIN, an authenticated denial of existence. For DANE a TLSA name that does not exist,
   * proven or not, means "no TLSA records" (RFC 7672 §2.2), never a failure.
   */
  readonly authenticated: boolean

  constructor(code: DnsErrorCode, hostname: string, type: string, message: string, options: DnsErrorOptions = {}) {
    super(`${type} ${hostname}: ${message}`, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'DnsError'
    this.code = code
    this.hostname = hostname
    this.type = type
    this.rcode = options.rcode
    this.authenticated = options.authenticated ?? false
  }

  /** False only for a name that does not or cannot exist; retry later for everything else. */
  get temporary(): boolean {
    return !PERMANENT.has(this.code)
  }

  /** Recognises a `DnsError` by a registered symbol, so errors from another copy of the library match too. */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[DNS_ERROR] === true
  }
}
Object.defineProperty(DnsError.prototype, DNS_ERROR, { value: true })

/** The error for a response code other than NOERROR. */
export function rcodeError(rcode: string, hostname: string, type: string, authenticated = false): DnsError {
  const code =
    rcode === 'NXDOMAIN'
      ? 'ERR_DNS_NXDOMAIN'
      : rcode === 'SERVFAIL'
        ? 'ERR_DNS_SERVFAIL'
        : rcode === 'REFUSED'
          ? 'ERR_DNS_REFUSED'
          : 'ERR_DNS_BAD_RESPONSE'
  const text = code === 'ERR_DNS_NXDOMAIN' ? 'no such domain' : `the resolver answered ${rcode}`
  return new DnsError(code, hostname, type, text, { rcode, authenticated })
}
