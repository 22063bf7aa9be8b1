/**
 * Checking a session's TLS against the host's policy, after the SMTP handshake and before MAIL
 * FROM: nothing of the message is sent over a session that fails a check its policy enforces.
 *
 * The handshake itself never rejects a certificate (`rejectUnauthorized: false`), so that
 * opportunistic TLS works with any server; Node still works out whether the chain leads to a
 * trusted root and names the host (`authorized`, `authorizationError`), which is the PKIX check
 * (MTA-STS, `requireTls: 'verify'`, REQUIRETLS). DANE checks the chain against the TLSA records
 * with `verifyDane`. The state is read once per connection, so a reused connection is checked
 * again, for its next message's policy, at no cost.
 */
import type { DetailedPeerCertificate, TLSSocket } from 'node:tls'
import type { SmtpError } from '../../core/errors.js'
import { verifyDane } from './dane.js'
import { mxReply } from './replies.js'
import type { HostTls } from './tls-policy.js'
import type { TlsFailure, TlsRptResultType } from './tls-report.js'

/** The TLS of an established session. */
export interface TlsState {
  readonly secure: boolean
  /** `TLSv1.3` … */
  readonly version?: string
  readonly cipher?: string
  /** PKIX: the chain leads to a trusted root and names the host. */
  readonly authorized: boolean
  /** Node's reason when not authorized (`CERT_HAS_EXPIRED`, `ERR_TLS_CERT_ALTNAME_INVALID` …). */
  readonly authorizationError?: string
  readonly peer?: DetailedPeerCertificate
}

/**
 * Reads the TLS state of a connected socket (cleartext if it is not a TLS socket).
 *
 * @example
 * ```ts
 * tlsStateOf(connection._socket) // { secure: true, version: 'TLSv1.3', authorized: false, authorizationError: 'DEPTH_ZERO_SELF_SIGNED_CERT', … }
 * ```
 */
export function tlsStateOf(socket: unknown): TlsState {
  const tls = socket as Partial<TLSSocket> | undefined
  if (!tls || typeof tls.getPeerCertificate !== 'function' || !tls.encrypted) return { secure: false, authorized: false }
  const error = tls.authorizationError as unknown
  return {
    secure: true,
    version: tls.getProtocol?.() ?? undefined,
    cipher: tls.getCipher?.()?.name,
    authorized: tls.authorized === true,
    ...(error ? { authorizationError: String(error instanceof Error ? ((error as { code?: string }).code ?? error.message) : error) } : {}),
    peer: tls.getPeerCertificate(true),
  }
}

/** The outcome of {@link checkTls}. */
export type TlsVerdict =
  | { readonly ok: true; readonly verified: boolean; readonly failure?: TlsFailure }
  | { readonly ok: false; readonly verified: false; readonly failure: TlsFailure; readonly error: SmtpError }

/** The RFC 8460 result type of a PKIX failure. */
function pkixResult(code: string | undefined): TlsRptResultType {
  if (code === 'CERT_HAS_EXPIRED') return 'certificate-expired'
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return 'certificate-host-mismatch'
  return 'certificate-not-trusted'
}

/**
 * Checks a session's TLS for `host` under `tls` (see the file header).
 *
 * @example
 * ```ts
 * const verdict = checkTls(tlsStateOf(connection._socket), hostTls, 'mx1.example.org')
 * if (!verdict.ok) { connection.quit(); tryNextHost(verdict.error) }
 * ```
 */
export function checkTls(state: TlsState, tls: HostTls, host: string): TlsVerdict {
  const fail = (resultType: TlsRptResultType, reason: string): TlsVerdict => {
    const failure: TlsFailure = { resultType, receivingMxHostname: host, reasonCode: reason }
    return tls.enforce || (resultType === 'starttls-not-supported' && tls.require)
      ? { ok: false, verified: false, failure, error: mxReply.tlsFailure(`${host}: ${reason}`) }
      : { ok: true, verified: false, failure }
  }
  if (!state.secure) {
    if (tls.require || tls.verify !== 'none') return fail('starttls-not-supported', 'STARTTLS not offered')
    return { ok: true, verified: false }
  }
  if (tls.verify === 'dane' && tls.dane) {
    const result = verifyDane(tls.dane.records, state.peer ?? [], { hostnames: tls.dane.hostnames })
    if (result.verdict === 'match') return { ok: true, verified: true }
    return fail('tlsa-invalid', `DANE: ${result.reason}`)
  }
  if (tls.verify === 'pkix') {
    if (state.authorized) return { ok: true, verified: true }
    return fail(pkixResult(state.authorizationError), `certificate: ${state.authorizationError ?? 'not trusted'}`)
  }
  return { ok: true, verified: false }
}
