/**
 * Every reply direct MX delivery makes of its own (as opposed to passing a server's reply on),
 * in one place so that the same situation always gets the same code. Temporary ones (4xx) are
 * retried by a queue in front of the transport; permanent ones (5xx) bounce.
 *
 * | situation | reply |
 * |---|---|
 * | the domain does not exist (NXDOMAIN) | `550 5.1.2` |
 * | the domain accepts no mail (null MX, RFC 7505) | `550 5.1.10` |
 * | no MX host has an address (they do not exist) | `550 5.4.4` |
 * | DNS timeout, SERVFAIL (DNSSEC-bogus included) | `451 4.4.3` |
 * | every address is loopback, private or reserved and not allowed | `451 4.4.4` |
 * | no host answered (refused, timed out, closed) | `451 4.4.1` |
 * | TLS was required and failed, or a certificate did not verify (DANE, MTA-STS, `requireTls`) | `451 4.7.5` |
 * | REQUIRETLS asked for, no host supports it | `550 5.7.30` |
 *
 * The text is generic: which policy failed and how is in `reason`, for the log.
 */
import { SmtpError } from '../../core/errors.js'

/**
 * The named replies of direct MX delivery; see the file header.
 *
 * @example
 * ```ts
 * mxReply.nullMx('example.org publishes a null MX').toReply() // '550 5.1.10 Recipient domain does not accept mail'
 * ```
 *
 * @category Transports
 */
export const mxReply = {
  /** `550 5.1.2`: the recipient domain does not exist (NXDOMAIN). */
  noSuchDomain: (reason: string) => new SmtpError(550, '5.1.2', 'Recipient domain not found', { reason }),
  /** `550 5.1.10`: the domain publishes a null MX (RFC 7505) and accepts no mail. */
  nullMx: (reason: string) => new SmtpError(550, '5.1.10', 'Recipient domain does not accept mail', { reason }),
  /** `550 5.4.4`: no MX host has an address (the hosts do not exist). */
  noHost: (reason: string) => new SmtpError(550, '5.4.4', 'Unable to route to the recipient domain', { reason }),
  /** `451 4.4.3`: a DNS timeout or SERVFAIL (DNSSEC-bogus included); retried later. */
  dnsFailure: (reason: string, cause?: unknown) => new SmtpError(451, '4.4.3', 'Temporary DNS failure, try again later', { reason, cause }),
  /** `451 4.4.4`: every address found is loopback, private or reserved and not in `allowNetworks`. */
  forbiddenAddress: (reason: string) => new SmtpError(451, '4.4.4', 'Unable to route to the recipient domain, try again later', { reason }),
  /** `451 4.4.1`: no MX host answered (refused, timed out, closed the connection). */
  unreachable: (reason: string, cause?: unknown) => new SmtpError(451, '4.4.1', 'Recipient server unavailable, try again later', { reason, cause }),
  /** `451 4.7.5`: required TLS failed or a certificate did not verify (DANE, MTA-STS, `requireTls`). */
  tlsFailure: (reason: string, cause?: unknown) =>
    new SmtpError(451, '4.7.5', 'Secure connection to the recipient server failed, try again later', { reason, cause }),
  /** `550 5.7.30`: the message asked for REQUIRETLS and no MX host supports it. */
  requireTlsUnsupported: (reason: string) => new SmtpError(550, '5.7.30', 'REQUIRETLS support required', { reason }),
} as const
