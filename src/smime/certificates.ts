/**
 * Certificates and private keys of the S/MIME stages, checked with Node's own crypto when the
 * chain is built, so that a bad one is a `RelayError` then rather than a failure at the first
 * message (pkijs is only loaded to sign or encrypt). Keys are never logged or put in errors.
 */
import { createPrivateKey, type KeyObject, X509Certificate } from 'node:crypto'
import { RelayError } from '../core/errors.js'

/** A certificate as PEM text (several for a chain, signer first) or DER bytes. */
export type CertificateInput = string | Buffer

/** A private key as PEM text (PKCS#8, PKCS#1 or SEC1), DER bytes or a Node `KeyObject`. */
export type PrivateKeyInput = string | Buffer | KeyObject

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g

/** A configuration mistake, without the cause's text in the message (it may quote key material). */
export function invalid(message: string, cause?: unknown): RelayError {
  return new RelayError('ERR_RELAY_INVALID_OPTION', message, cause === undefined ? undefined : { cause })
}

/** Every certificate in `input`, in order. */
export function parseCertificates(input: CertificateInput, what: string): X509Certificate[] {
  const pem = (typeof input === 'string' ? input : input.toString('latin1')).match(PEM_CERTIFICATE)
  try {
    return pem ? pem.map((block) => new X509Certificate(block)) : [new X509Certificate(input)]
  } catch (err) {
    throw invalid(`${what}: not a certificate (PEM or DER)`, err)
  }
}

/** True if `now` is inside the certificate's validity period. */
export function isCurrent(cert: X509Certificate, now = Date.now()): boolean {
  return Date.parse(cert.validFrom) <= now && now <= Date.parse(cert.validTo)
}

/** Throws unless the certificate is valid now. */
export function checkCurrent(cert: X509Certificate, what: string): void {
  if (!isCurrent(cert)) throw invalid(`${what}: certificate is not valid now (${cert.validFrom} to ${cert.validTo})`)
}

/** Parses a private key. */
export function parsePrivateKey(input: PrivateKeyInput, passphrase: string | undefined, what: string): KeyObject {
  if (typeof input === 'object' && !Buffer.isBuffer(input)) {
    if (input.type !== 'private') throw invalid(`${what}: the key is not a private key`)
    return input
  }
  try {
    return createPrivateKey(passphrase === undefined ? input : { key: input, passphrase })
  } catch (err) {
    throw invalid(`${what}: not a private key, or a wrong passphrase`, err)
  }
}

/** The domain of an address, lower case. */
function domainOf(address: string): string {
  return address.slice(address.lastIndexOf('@') + 1).toLowerCase()
}

/**
 * Parses a map keyed by address (`alice@example.com`) or by domain (`example.com`, for every
 * address there); `byAddress` then finds the entry for an address, the address's own first.
 */
export function addressMap<I, T>(entries: Readonly<Record<string, I>>, parse: (input: I, key: string) => T): Map<string, T> {
  const map = new Map<string, T>()
  for (const [key, input] of Object.entries(entries)) {
    if (!/^[^\s@]*@?[^\s@]+$/.test(key)) throw invalid(`"${key}" is neither an address nor a domain`)
    map.set(key.toLowerCase(), parse(input, key))
  }
  return map
}

/** The entry of `map` for `address`: its own, else its domain's. */
export function byAddress<T>(map: ReadonlyMap<string, T>, address: string): T | undefined {
  return map.get(address.toLowerCase()) ?? map.get(domainOf(address))
}

/** The address in a From field value (`Ann <ann@example.com>`, or a bare address). */
export function addressIn(value: string | undefined): string | undefined {
  if (!value) return undefined
  return (/<([^<>\s]+@[^<>\s]+)>/.exec(value) ?? /([^\s<>,;:"()]+@[^\s<>,;:"()]+)/.exec(value))?.[1]
}
