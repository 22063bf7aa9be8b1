/**
 * `verifyDane()`: does an SMTP server's certificate chain satisfy its TLSA records (RFC 7672,
 * with RFC 6698 and RFC 7671)?
 *
 * Only two certificate usages count for SMTP (RFC 7672 §3.1): DANE-EE(3) and DANE-TA(2).
 * PKIX-TA(0) and PKIX-EE(1) are unusable, as are unknown selectors and matching types and
 * association data of the wrong length for its digest.
 *
 * - **DANE-EE(3)** pins the server's own certificate or key. Names and validity dates are
 *   ignored (§3.1.1): the DNSSEC-signed record is the whole authority.
 * - **DANE-TA(2)** names a trust anchor: a CA certificate or key the server's chain must lead
 *   to, by real signatures, through CA certificates (§3.1.2). The certificates below the anchor
 *   must be within their validity dates, and the server's certificate must carry one of the
 *   reference names (§3.2.2: the TLSA base domain, and the MX host name when the two differ),
 *   with `*` allowed only as the whole leftmost label. The anchor itself must be in the chain the
 *   server sent, unless the record holds it in full (matching type 0), as servers may rely on.
 *
 * What the verdict means to the caller, who has already got these records from a DNSSEC
 * answer (`authenticated: true`):
 * - `'match'`: authenticated TLS; deliver.
 * - `'mismatch'`: do not deliver to this host (try the next MX, else defer). Never fall back
 *   to unauthenticated or cleartext delivery.
 * - `'no-usable-records'`: TLSA records exist but none is usable. That still means TLS is
 *   required (RFC 7672 §2.2, §3.1): encrypt, do not authenticate, never send in cleartext.
 */
import { createHash, createPublicKey, type KeyObject, X509Certificate } from 'node:crypto'
import { type CertificateChain, issued, issuerPath, parseChain, validAt } from './dane-chain.js'
import type { TlsaRecord } from './dns-types.js'

/** The outcome of {@link verifyDane} (see the file header for what each verdict requires). */
export type DaneVerdict = 'match' | 'mismatch' | 'no-usable-records'

export interface DaneResult {
  verdict: DaneVerdict
  /** The record that matched, for a `'match'`. */
  matched?: TlsaRecord
  /** Why, in words, for logs and delivery reports (never for the SMTP client). */
  reason: string
}

/** Options of {@link verifyDane}. */
export interface DaneOptions {
  /**
   * Reference names for DANE-TA(2): the TLSA base domain (the MX host name, or its CNAME
   * expansion when that is where the TLSA records were found), and the MX host name itself.
   * Not used by DANE-EE(3).
   */
  hostnames?: readonly string[]
  /** The time for validity dates under DANE-TA(2); default now. */
  now?: Date | number
}

const DIGEST_LENGTH: Record<number, number> = { 1: 32, 2: 64 }

/**
 * True for records that count for SMTP (RFC 7672 §3.1): usage 2 or 3, selector 0 or 1, matching
 * type 0, 1 or 2 with data of the right length.
 *
 * @example
 * ```ts
 * isUsableTlsaRecord({ usage: 1, selector: 1, matchingType: 1, data }) // false: PKIX-EE does not count for SMTP
 * ```
 */
export function isUsableTlsaRecord(record: TlsaRecord): boolean {
  const length = record.data.length
  if (record.usage !== 2 && record.usage !== 3) return false
  if (record.selector !== 0 && record.selector !== 1) return false
  if (record.matchingType === 0) return length > 0
  return DIGEST_LENGTH[record.matchingType] === length
}

/** The bytes a record's selector picks from a certificate: all of it, or its SubjectPublicKeyInfo. */
function selected(cert: X509Certificate, selector: number): Buffer {
  return selector === 0 ? cert.raw : cert.publicKey.export({ type: 'spki', format: 'der' })
}

function matches(record: TlsaRecord, cert: X509Certificate): boolean {
  const bytes = selected(cert, record.selector)
  const value =
    record.matchingType === 0
      ? bytes
      : createHash(record.matchingType === 1 ? 'sha256' : 'sha512')
          .update(bytes)
          .digest()
  return value.equals(Buffer.from(record.data.buffer, record.data.byteOffset, record.data.byteLength))
}

/** The anchor a full (matching type 0) DANE-TA record holds, as a certificate or a bare key. */
function anchorIn(record: TlsaRecord): { cert?: X509Certificate; key: KeyObject } | undefined {
  if (record.matchingType !== 0) return undefined
  try {
    if (record.selector === 0) {
      const cert = new X509Certificate(record.data)
      return { cert, key: cert.publicKey }
    }
    return { key: createPublicKey({ key: Buffer.from(record.data), format: 'der', type: 'spki' }) }
  } catch {
    return undefined
  }
}

const signedBy = (anchor: { cert?: X509Certificate; key: KeyObject }, cert: X509Certificate): boolean => {
  if (anchor.cert) return issued(anchor.cert, cert)
  try {
    return cert.verify(anchor.key)
  } catch {
    return false
  }
}

/** Why the certificates below a DANE-TA anchor fail, or undefined if they pass. */
function belowAnchor(below: readonly X509Certificate[], hostnames: readonly string[], now: number): string | undefined {
  const [leaf, ...intermediates] = below
  if (!leaf) return 'empty chain'
  if (intermediates.some((cert) => !cert.ca)) return 'an intermediate certificate is not a CA'
  if (below.some((cert) => !validAt(cert, now))) return 'a certificate below the trust anchor is expired or not yet valid'
  const options = { subject: 'default', wildcards: true, partialWildcards: false, multiLabelWildcards: false } as const
  const names = hostnames.map((name) => name.toLowerCase().replace(/\.$/, ''))
  if (!names.some((name) => leaf.checkHost(name, options) !== undefined))
    return `the certificate is not for ${names.join(' or ') || '(no reference name given)'}`
  return undefined
}

/** The DANE-TA verdict for one record: undefined on success, else why it failed. */
function checkTrustAnchor(record: TlsaRecord, chain: readonly X509Certificate[], hostnames: readonly string[], now: number): string | undefined {
  const path = issuerPath(chain, (cert) => matches(record, cert))
  const at = path.findIndex((cert, index) => index > 0 && matches(record, cert))
  if (at > 0) return belowAnchor(path.slice(0, at), hostnames, now)
  const anchor = anchorIn(record)
  const top = anchor ? path.findIndex((cert) => signedBy(anchor, cert)) : -1
  if (top >= 0) return belowAnchor(path.slice(0, top + 1), hostnames, now)
  return 'no certificate in the chain leads to the trust anchor'
}

/**
 * Checks a server's certificate chain against its TLSA records (see the file header for the
 * rules and for what each verdict requires of the caller). Pass only records from an
 * authenticated DNS answer.
 *
 * @example
 * ```ts
 * const tlsa = await dns.tlsa(`_25._tcp.${mxHost}`)
 * const socket = tls.connect({ host: ip, port: 25, servername: mxHost, rejectUnauthorized: false })
 * // … after the handshake:
 * const result = verifyDane(tlsa.answers, socket.getPeerCertificate(true), { hostnames: [tlsa.canonicalName, mxHost] })
 * if (result.verdict === 'mismatch') socket.destroy() // next MX, or defer; never downgrade
 * ```
 */
export function verifyDane(records: readonly TlsaRecord[], chain: CertificateChain, options: DaneOptions = {}): DaneResult {
  const usable = records.filter(isUsableTlsaRecord)
  if (usable.length === 0)
    return { verdict: 'no-usable-records', reason: `none of ${records.length} TLSA records is usable for SMTP; TLS is still required` }
  let certs: X509Certificate[]
  try {
    certs = parseChain(chain)
  } catch {
    return { verdict: 'mismatch', reason: 'the server certificate cannot be parsed' }
  }
  const [leaf] = certs
  if (!leaf) return { verdict: 'mismatch', reason: 'the server sent no certificate' }

  const ee = usable.find((record) => record.usage === 3 && matches(record, leaf))
  if (ee) return { verdict: 'match', matched: ee, reason: 'DANE-EE: the server certificate matches' }

  const now = options.now === undefined ? Date.now() : Number(options.now)
  const failures: string[] = []
  for (const record of usable.filter((r) => r.usage === 2)) {
    const failure = checkTrustAnchor(record, certs, options.hostnames ?? [], now)
    if (failure === undefined) return { verdict: 'match', matched: record, reason: 'DANE-TA: the chain leads to the trust anchor and names the host' }
    failures.push(failure)
  }
  if (usable.some((r) => r.usage === 3)) failures.unshift('no DANE-EE record matches the server certificate')
  return { verdict: 'mismatch', reason: [...new Set(failures)].join('; ') }
}
