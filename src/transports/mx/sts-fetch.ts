/**
 * Fetching one MTA-STS policy (RFC 8461 §3.3): `https://mta-sts.<domain>/.well-known/mta-sts.txt`
 * over {@link httpsRequest} (our resolver, the address gate, a certificate valid for
 * `mta-sts.<domain>`), no redirects, status 200, media type `text/plain`, at most 64 KiB, parsed
 * with mailauth's `parsePolicy` (version, mode, mx, max_age).
 *
 * Failures carry the TLS-RPT result type they are reported as (RFC 8460 §4.3.2.2):
 * `sts-webpki-invalid` for a certificate that does not verify, `sts-policy-invalid` for a file
 * that is not a valid policy, `sts-policy-fetch-error` for everything else (DNS, connection,
 * status, media type, size, timeout).
 */
import type { AddressGate } from './address-policy.js'
import type { DnsResolver } from './dns-types.js'
import { HttpsRequestError, httpsRequest } from './https-client.js'

/**
 * An MTA-STS policy as fetched.
 *
 * @category Transports
 */
export interface StsPolicy {
  /** The `id` of the `_mta-sts` TXT record it was fetched for. */
  readonly id: string
  /** `enforce`: deliver only to matching MX hosts with valid certificates; `testing`: report failures but deliver; `none`: no policy. */
  readonly mode: 'enforce' | 'testing' | 'none'
  /** MX host patterns, lower case (`mx1.example.org`, `*.example.org`). */
  readonly mx: readonly string[]
  /** Seconds the policy may be cached. */
  readonly maxAge: number
  /** The policy file's lines, as TLS-RPT reports them (`policy-string`). */
  readonly lines: readonly string[]
}

/**
 * The TLS-RPT result types of policy failures (RFC 8460 §4.3.2.2).
 *
 * @category Transports
 */
export type StsFailureType = 'sts-policy-fetch-error' | 'sts-policy-invalid' | 'sts-webpki-invalid'

/** Why a policy could not be had. */
export class StsFetchError extends Error {
  readonly type: StsFailureType
  constructor(type: StsFailureType, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'StsFetchError'
    this.type = type
  }
}

/** What {@link fetchStsPolicy} needs. */
export interface StsFetchOptions {
  readonly dns: DnsResolver
  readonly gate: AddressGate
  readonly ca?: (string | Buffer)[] | undefined
  /** The HTTPS port; default 443. */
  readonly port?: number | undefined
  /** Milliseconds for the whole fetch. */
  readonly timeout: number
}

/** The largest policy file read (RFC 8461 §3.3 lets senders limit it; 64 KiB is the common choice). */
export const MAX_POLICY_BYTES = 64 * 1024

/** What we use of mailauth's MTA-STS module. */
export type MtaStsLib = typeof import('mailauth/lib/mta-sts.js')
let lib: Promise<MtaStsLib> | undefined

/**
 * mailauth's MTA-STS functions (`resolvePolicy`, `parsePolicy`, `validateMx`), loaded on first use.
 *
 * @example
 * ```ts
 * const { parsePolicy } = await loadMtaStsLib()
 * parsePolicy('version: STSv1\nmode: enforce\nmx: mx.example.org\nmax_age: 86400\n').mode // 'enforce'
 * ```
 */
export function loadMtaStsLib(): Promise<MtaStsLib> {
  lib ??= import('mailauth/lib/mta-sts.js').then((m) => (m as MtaStsLib & { default?: MtaStsLib }).default ?? m)
  return lib
}

/**
 * Fetches and parses the policy of `domain` for the TXT record's `id`. Rejects with an
 * {@link StsFetchError} (see the file header).
 *
 * @example
 * ```ts
 * const policy = await fetchStsPolicy('example.org', '20260101', { dns, gate: addressGate(), timeout: 15_000 })
 * policy.mode // 'enforce'
 * ```
 */
export async function fetchStsPolicy(domain: string, id: string, options: StsFetchOptions): Promise<StsPolicy> {
  const url = new URL(`https://mta-sts.${domain}/.well-known/mta-sts.txt`)
  let res: Awaited<ReturnType<typeof httpsRequest>>
  try {
    res = await httpsRequest({
      url,
      method: 'GET',
      headers: { accept: 'text/plain' },
      dns: options.dns,
      gate: options.gate,
      ca: options.ca,
      port: options.port,
      timeout: options.timeout,
      maxBytes: MAX_POLICY_BYTES,
    })
  } catch (err) {
    const type = err instanceof HttpsRequestError && err.code === 'tls' ? 'sts-webpki-invalid' : 'sts-policy-fetch-error'
    throw new StsFetchError(type, `${url.host}: ${err instanceof Error ? err.message : String(err)}`, { cause: err })
  }
  if (res.status !== 200) {
    const redirect = res.status >= 300 && res.status < 400 ? ' (redirects are not followed)' : ''
    throw new StsFetchError('sts-policy-fetch-error', `${url.host}: HTTP ${res.status}${redirect}`)
  }
  const type = String(res.headers['content-type'] ?? '')
  if (!/^text\/plain\s*(;|$)/i.test(type))
    throw new StsFetchError('sts-policy-fetch-error', `${url.host}: media type ${type || '(none)'}, not text/plain`)
  const text = res.body.toString('utf8')
  const { parsePolicy } = await loadMtaStsLib()
  try {
    const parsed = parsePolicy(text)
    const lines = text.split(/\r?\n/).filter((line) => line.trim() !== '')
    return { id, mode: parsed.mode, mx: parsed.mx ?? [], maxAge: parsed.maxAge ?? 0, lines }
  } catch (err) {
    throw new StsFetchError('sts-policy-invalid', `${url.host}: ${err instanceof Error ? err.message : String(err)}`, { cause: err })
  }
}
