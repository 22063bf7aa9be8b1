/**
 * Certificate chains for DANE: the forms a caller may hand over (Node's `PeerCertificate` from
 * `tlsSocket.getPeerCertificate(true)`, DER buffers, `X509Certificate`s), turned into parsed
 * certificates, and the issuer path from the server's certificate upwards.
 *
 * The path is built from what the server sent, never from a trust store: under DANE-TA(2) the
 * trust anchor is whatever the TLSA record names. Each step is a real signature check
 * (`checkIssued` and `verify` with the issuer's key), so a certificate the server merely appends
 * cannot be passed off as an issuer.
 */
import { X509Certificate } from 'node:crypto'
import type { DetailedPeerCertificate, PeerCertificate } from 'node:tls'

/** A peer certificate chain in any of the forms {@link verifyDane} accepts; the server's certificate first. */
export type CertificateChain = PeerCertificate | DetailedPeerCertificate | readonly (Uint8Array | X509Certificate)[]

/**
 * The chain as parsed certificates, the server's own first. A `PeerCertificate` is followed
 * through `issuerCertificate` (Node links a self-signed root to itself; that ends the walk).
 * Unparsable entries after the first are dropped; an unparsable first entry throws.
 */
export function parseChain(chain: CertificateChain): X509Certificate[] {
  const entries: (Uint8Array | X509Certificate)[] = []
  if (Array.isArray(chain)) {
    entries.push(...(chain as readonly (Uint8Array | X509Certificate)[]))
  } else {
    const seen = new Set<unknown>()
    let current: (PeerCertificate & { issuerCertificate?: DetailedPeerCertificate }) | undefined = chain as PeerCertificate
    while (current?.raw && !seen.has(current)) {
      seen.add(current)
      entries.push(current.raw)
      current = current.issuerCertificate
    }
  }
  const parsed: X509Certificate[] = []
  for (const [index, entry] of entries.entries()) {
    try {
      parsed.push(entry instanceof X509Certificate ? entry : new X509Certificate(entry))
    } catch (err) {
      if (index === 0) throw err
    }
  }
  return parsed
}

/** True if `issuer` issued `cert`: names chain and the signature verifies with the issuer's key. */
export function issued(issuer: X509Certificate, cert: X509Certificate): boolean {
  try {
    return cert.checkIssued(issuer) && cert.verify(issuer.publicKey)
  } catch {
    return false
  }
}

/**
 * The issuer path from `chain[0]` upwards through the other certificates the server sent, in any
 * order, each used once, stopping at a self-issued certificate or when no issuer is found. When
 * several certificates could issue the next step, `prefer` picks (e.g. the one a TLSA record
 * names).
 */
export function issuerPath(chain: readonly X509Certificate[], prefer: (cert: X509Certificate) => boolean = () => false): X509Certificate[] {
  const [leaf, ...pool] = chain
  if (!leaf) return []
  const path = [leaf]
  for (let current = leaf; !issued(current, current); ) {
    const candidates = pool.filter((cert) => !path.includes(cert) && issued(cert, current))
    const next = candidates.find(prefer) ?? candidates[0]
    if (!next) break
    path.push(next)
    current = next
  }
  return path
}

/** True if `now` lies within the certificate's validity period. */
export function validAt(cert: X509Certificate, now: number): boolean {
  return Date.parse(cert.validFrom) <= now && now <= Date.parse(cert.validTo)
}
