/**
 * Certificates and private keys of the S/MIME stages, checked with Node's own crypto when the
 * chain is built, so that a bad one is a `RelayError` then rather than a failure at the first
 * message (pkijs is only loaded to sign or encrypt). Keys are never logged or put in errors.
 */

import { createPrivateKey, type KeyObject, X509Certificate } from 'node:crypto'
import { addressKey, type DomainTable, domainKey, domainTable } from '../core/address.js'
import { RelayError } from '../core/errors.js'

/**
 * A certificate as PEM text (several for a chain, signer first) or DER bytes.
 *
 * @category Stages
 */
export type CertificateInput = string | Buffer

/**
 * A private key as PEM text (PKCS#8, PKCS#1 or SEC1), DER bytes or a Node `KeyObject`.
 *
 * @category Stages
 */
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

/** Entries by address, and by domain (`example.com`, or `.example.com` for its subdomains). */
export interface AddressMap<T> {
  readonly addresses: ReadonlyMap<string, T>
  readonly domains: DomainTable<T>
}

/**
 * Parses a map keyed by address (`alice@example.com`) or by domain (`example.com`, for every
 * address there; `.example.com` for its subdomains); `byAddress` then finds the entry for an
 * address, the address's own first.
 */
export function addressMap<I, T>(entries: Readonly<Record<string, I>>, parse: (input: I, key: string) => T): AddressMap<T> {
  const addresses = new Map<string, T>()
  const domains: Array<[string, T]> = []
  for (const [key, input] of Object.entries(entries)) {
    if (!/^[^\s@]*@?[^\s@]+$/.test(key)) throw invalid(`"${key}" is neither an address nor a domain`)
    if (key.includes('@')) addresses.set(addressKey(key), parse(input, key))
    else domains.push([key, parse(input, key)])
  }
  return { addresses, domains: domainTable(domains, 'S/MIME certificates') }
}

/** The entry of `map` for `address`: its own, else its domain's. */
export function byAddress<T>(map: AddressMap<T>, address: string): T | undefined {
  return map.addresses.get(addressKey(address)) ?? map.domains.get(domainKey(address))
}

/** The address in a From field value (`Ann <ann@example.com>`, or a bare address). */
export function addressIn(value: string | undefined): string | undefined {
  if (!value) return undefined
  return (/<([^<>\s]+@[^<>\s]+)>/.exec(value) ?? /([^\s<>,;:"()]+@[^\s<>,;:"()]+)/.exec(value))?.[1]
}
