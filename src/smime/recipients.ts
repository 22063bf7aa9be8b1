/**
 * Recipients' encryption certificates: from a static map (checked when the chain is built) or a
 * lookup function (an LDAP directory, a key server, a database; checked when it answers).
 */
import type { X509Certificate } from 'node:crypto'
import type { Awaitable, Transaction } from '../core/types.js'
import { addressMap, byAddress, type CertificateInput, checkCurrent, invalid, isCurrent, parseCertificates } from './certificates.js'

/**
 * Finds the certificate of a recipient: `null` or `undefined` if it has none. Throwing means the
 * lookup cannot answer now (the stage asks again at DATA, and answers `451 4.3.0` if it still
 * cannot). Whether the certificate is trustworthy (issued by a CA you trust, not revoked) is the
 * lookup's to decide; the stage only checks that it is an RSA certificate valid today.
 *
 * @category Stages
 */
export type CertificateLookup = (address: string, tx: Transaction) => Awaitable<CertificateInput | null | undefined>

/**
 * A map by address or domain, or a lookup function.
 *
 * @category Stages
 */
export type RecipientCertificates = Readonly<Record<string, CertificateInput>> | CertificateLookup

/** The first certificate of `input`, if it has an RSA key (the only key transport supported). */
function recipientCertificate(input: CertificateInput, what: string): X509Certificate {
  const cert = parseCertificates(input, what)[0]!
  if (cert.publicKey.asymmetricKeyType !== 'rsa') throw invalid(`${what}: only RSA certificates can be encrypted for`)
  return cert
}

const usable = (cert: X509Certificate | undefined): X509Certificate | null => (cert && isCurrent(cert) ? cert : null)

/** A function answering the usable certificate of an address, or `null`. */
export function certificateFinder(certificates: RecipientCertificates): (address: string, tx: Transaction) => Promise<X509Certificate | null> {
  if (typeof certificates === 'function') {
    return async (address, tx) => {
      const input = await certificates(address, tx)
      return input == null ? null : usable(recipientCertificate(input, `smime-encrypt certificate of ${address}`))
    }
  }
  const map = addressMap(certificates ?? {}, (input, key) => {
    const what = `smime-encrypt certificate for ${key}`
    const cert = recipientCertificate(input, what)
    checkCurrent(cert, what)
    return cert
  })
  return async (address) => usable(byAddress(map, address))
}
