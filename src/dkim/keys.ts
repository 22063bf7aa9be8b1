/**
 * DKIM and ARC signing keys: read and checked once with node:crypto (a bad key is a `RelayError`
 * when the chain is built), and the DNS TXT record that publishes each key's public half.
 * Key material never appears in an error message.
 */
import { createPrivateKey, createPublicKey, KeyObject } from 'node:crypto'
import { domainToASCII } from 'node:url'
import { RelayError } from '../core/errors.js'
import type { PrivateKeyInput } from '../smime/certificates.js'

export type { PrivateKeyInput }

/**
 * The DKIM signing algorithms: RSA-SHA256 (RFC 6376) and Ed25519-SHA256 (RFC 8463).
 *
 * @category Stages
 */
export type DkimAlgorithm = 'rsa-sha256' | 'ed25519-sha256'

/**
 * One DKIM key: what a key map holds and a key resolver returns.
 *
 * @category Stages
 */
export interface DkimKey {
  /** The selector (`s=`): the public key is published at `<selector>._domainkey.<domain>`. */
  readonly selector: string
  /** The private key, RSA (at least 1024 bits; 2048 recommended) or Ed25519. */
  readonly privateKey: PrivateKeyInput
  /** Must match the key's type if given; by default taken from the key. */
  readonly algorithm?: DkimAlgorithm
  /**
   * The signing domain (`d=`) when it is not the From domain the key was found for, e.g. the
   * parent domain (`example.com` for mail from `news.example.com`) or a provider's own domain.
   */
  readonly domain?: string
}

/** A key ready to sign with. */
export interface SigningKey {
  readonly domain: string
  readonly selector: string
  readonly algorithm: DkimAlgorithm
  readonly key: KeyObject
}

/**
 * The DNS TXT record that publishes a DKIM public key.
 *
 * @category Stages
 */
export interface DkimDnsRecord {
  /** Owner name, e.g. `mail2026._domainkey.example.com`. */
  readonly name: string
  /** Record text, e.g. `v=DKIM1; k=rsa; p=MIIBIjANBg…`. */
  readonly value: string
  /** The record as a zone file line, its text split into strings of at most 255 characters. */
  readonly zone: string
}

/** DNS labels as SMTP allows them (RFC 5321 sub-domain): letters, digits, inner hyphens. */
const LABELS = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/

/** A domain as DKIM signs with it and DNS looks it up: lower case, A-labels; throws if invalid. */
export function toDomain(name: string, what = 'domain'): string {
  const domain = domainToASCII(String(name).trim().replace(/\.$/, '').toLowerCase())
  if (!domain || domain.length > 253 || !LABELS.test(domain)) {
    throw new RelayError('ERR_RELAY_INVALID_OPTION', `invalid ${what} ${JSON.stringify(name)}`)
  }
  return domain
}

/**
 * Reads and checks a key for signing as `domain`. Throws `RelayError` `ERR_RELAY_INVALID_OPTION`
 * for an unreadable key, a public key, a type other than RSA or Ed25519, an RSA key shorter than
 * 1024 bits (RFC 8301) or an `algorithm` that does not match the key.
 */
export function signingKey(options: DkimKey, domain: string): SigningKey {
  const selector = toDomain(options.selector, 'DKIM selector')
  const where = `DKIM key ${selector}._domainkey.${domain}`
  const key = readPrivateKey(options.privateKey, where)
  const algorithm: DkimAlgorithm = key.asymmetricKeyType === 'rsa' ? 'rsa-sha256' : 'ed25519-sha256'
  if (options.algorithm !== undefined && options.algorithm !== algorithm) {
    throw new RelayError('ERR_RELAY_INVALID_OPTION', `${where}: algorithm ${options.algorithm} does not match the key (${algorithm})`)
  }
  return { domain, selector, algorithm, key }
}

/** Parses a private key; only RSA (≥ 1024 bits) and Ed25519 keys pass. */
export function readPrivateKey(input: PrivateKeyInput, where: string): KeyObject {
  let key: KeyObject
  try {
    key = input instanceof KeyObject ? input : createPrivateKey(input)
  } catch (err) {
    // The cause stays out of the message, in case it quotes the key.
    throw new RelayError('ERR_RELAY_INVALID_OPTION', `${where}: not a readable private key (PEM)`, { cause: err })
  }
  if (key.type !== 'private') throw new RelayError('ERR_RELAY_INVALID_OPTION', `${where}: a private key is needed, got a ${key.type} key`)
  const type = key.asymmetricKeyType
  if (type !== 'rsa' && type !== 'ed25519') {
    throw new RelayError('ERR_RELAY_INVALID_OPTION', `${where}: the key must be RSA or Ed25519, got ${type}`)
  }
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0
  if (type === 'rsa' && bits < 1024) {
    throw new RelayError('ERR_RELAY_INVALID_OPTION', `${where}: RSA keys need at least 1024 bits (RFC 8301), got ${bits}`)
  }
  return key
}

/**
 * The DNS TXT record to publish for a DKIM key, derived from its private key.
 *
 * @example
 * ```ts
 * const { name, value } = dkimDnsRecord({ domain: 'example.com', selector: 'mail2026', privateKey: pem })
 * // name:  mail2026._domainkey.example.com
 * // value: v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA…
 * ```
 *
 * @category Stages
 */
export function dkimDnsRecord(options: { domain: string; selector: string; privateKey: PrivateKeyInput }): DkimDnsRecord {
  const { domain, selector, algorithm, key } = signingKey(options, toDomain(options.domain))
  const publicKey = createPublicKey(key)
  // RSA publishes the SubjectPublicKeyInfo; Ed25519 the bare 32-byte key (RFC 8463 §4.2).
  const p =
    algorithm === 'rsa-sha256'
      ? publicKey.export({ type: 'spki', format: 'der' }).toString('base64')
      : Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url').toString('base64')
  const name = `${selector}._domainkey.${domain}`
  const value = `v=DKIM1; k=${algorithm === 'rsa-sha256' ? 'rsa' : 'ed25519'}; p=${p}`
  const strings = value.match(/.{1,255}/g)!.map((s) => `"${s}"`)
  return { name, value, zone: `${name}. IN TXT ( ${strings.join(' ')} )` }
}
