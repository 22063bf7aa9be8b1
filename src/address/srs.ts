/**
 * The Sender Rewriting Scheme (Shevek's SRS specification, as implemented by Mail::SRS and
 * libsrs2/postsrsd, "guarded" variant), so that forwarded mail keeps passing SPF:
 *
 * - `alice@origin.example` forwarded by us becomes `SRS0=HHHH=TT=origin.example=alice@srs.domain`
 *   (HHHH: HMAC-SHA1 of timestamp, domain and local part with our secret, base64, 4 characters;
 *   TT: the day, base32, modulo 1024);
 * - an SRS0 address of another forwarder becomes `SRS1=HHHH=their.domain==HHHH=TT=…@srs.domain`;
 * - a bounce to one of our SRS addresses is reversed after checking its hash (any of our secrets,
 *   case-insensitively, as MTAs may smash case) and, for SRS0, its age.
 */
import { createHmac, timingSafeEqual } from 'node:crypto'
import { domainKey } from '../core/address.js'
import { RelayError } from '../core/errors.js'

/**
 * SRS settings.
 *
 * @category Stages
 */
export interface SrsOptions {
  /** HMAC secret(s): the first signs new addresses, all are accepted on reversal (for rotation). */
  readonly secret: string | readonly string[]
  /** Our SRS domain: forwarded senders become `SRS0=…@domain`, and bounces to it are reversed. */
  readonly domain: string
  /** Sender domains that are ours and never rewritten (the SRS domain always is). */
  readonly localDomains?: readonly string[]
  /** Days an SRS address stays valid for bounces. Default 21 (as libsrs2 and postsrsd). */
  readonly maxAge?: number
}

/** Why an SRS address could not be reversed. */
export type SrsFailure = 'malformed' | 'hash' | 'expired'

/** An SRS codec for one configuration. */
export interface Srs {
  /** True if `address` is at the SRS domain and looks like SRS0/SRS1 (so it must be reversed). */
  owns(address: string): boolean
  /** True if a sender at this address is rewritten (its domain is not local). */
  rewrites(address: string): boolean
  /** The SRS address for a sender we forward. */
  forward(address: string, now?: number): string
  /** The address an SRS address stands for, or why it does not. */
  reverse(address: string, now?: number): { address: string } | { failure: SrsFailure }
}

const SRS0 = /^SRS0([-+=])/i
const SRS1 = /^SRS1[-+=]/i
const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'
const DAY = 86_400_000
const HASH_LENGTH = 4

/** Builds an SRS codec; throws `RelayError` `ERR_RELAY_INVALID_OPTION` on bad settings. */
export function createSrs(options: SrsOptions): Srs {
  const secrets = typeof options.secret === 'string' ? [options.secret] : [...(options.secret ?? [])]
  if (!secrets.length || secrets.some((s) => typeof s !== 'string' || s.length < 8)) {
    throw new RelayError('ERR_RELAY_INVALID_OPTION', 'srs.secret: one or more secrets of at least 8 characters')
  }
  if (typeof options.domain !== 'string' || !/^[^\s@<>]+\.[^\s@<>]+$/.test(options.domain)) {
    throw new RelayError('ERR_RELAY_INVALID_OPTION', 'srs.domain: a domain name is required')
  }
  const maxAge = options.maxAge ?? 21
  if (!Number.isInteger(maxAge) || maxAge < 1 || maxAge > 1000) throw new RelayError('ERR_RELAY_INVALID_OPTION', 'srs.maxAge: whole days, 1 to 1000')
  const domain = options.domain
  const ownDomain = domainKey(`@${domain}`)
  const local = new Set([domain, ...(options.localDomains ?? [])].map((d) => domainKey(`@${d}`)))

  // Mail::SRS lower-cases (ASCII) every part and feeds them to one HMAC.
  const digest = (secret: string, parts: readonly string[]) => createHmac('sha1', secret).update(parts.map(asciiLower).join('')).digest('base64')
  const hash = (...parts: string[]) => digest(secrets[0]!, parts).slice(0, HASH_LENGTH)
  const verify = (given: string, ...parts: string[]) => {
    if (given.length < HASH_LENGTH) return false
    const wanted = Buffer.from(asciiLower(given))
    return secrets.some((secret) => {
      const valid = Buffer.from(asciiLower(digest(secret, parts).slice(0, given.length)))
      return valid.length === wanted.length && timingSafeEqual(valid, wanted)
    })
  }

  return {
    owns: (address) => domainKey(address) === ownDomain && (SRS0.test(address) || SRS1.test(address)),
    rewrites: (address) => address.includes('@') && !local.has(domainKey(address)),
    forward(address, now = Date.now()) {
      const [user, host] = split(address)
      if (SRS1.test(user)) {
        const [, srsHost, srsUser] = splitN(user.slice(5), 3)
        if (srsHost && srsUser !== undefined) return `SRS1=${hash(srsHost, srsUser)}=${srsHost}=${srsUser}@${domain}`
      } else if (SRS0.test(user)) {
        const srsUser = user.slice(4)
        return `SRS1=${hash(host, srsUser)}=${host}=${srsUser}@${domain}`
      }
      const day = Math.floor(now / DAY)
      const stamp = BASE32[(day >> 5) & 31]! + BASE32[day & 31]!
      return `SRS0=${hash(stamp, host, user)}=${stamp}=${host}=${user}@${domain}`
    },
    reverse(address, now = Date.now()) {
      const [user] = split(address)
      if (SRS1.test(user)) {
        const [given, srsHost, srsUser] = splitN(user.slice(5), 3)
        if (!given || !srsHost || !srsUser) return { failure: 'malformed' }
        return verify(given, srsHost, srsUser) ? { address: `SRS0${srsUser}@${srsHost}` } : { failure: 'hash' }
      }
      if (!SRS0.test(user)) return { failure: 'malformed' }
      const [given, stamp, host, origUser] = splitN(user.slice(5), 4)
      if (!given || !stamp || !host || !origUser || !/^[A-Z2-7]{2}$/i.test(stamp)) return { failure: 'malformed' }
      if (!verify(given, stamp, host, origUser)) return { failure: 'hash' }
      const then = [...stamp.toUpperCase()].reduce((t, c) => t * 32 + BASE32.indexOf(c), 0)
      let today = Math.floor(now / DAY) % 1024
      while (today < then) today += 1024
      return today <= then + maxAge ? { address: `${origUser}@${host}` } : { failure: 'expired' }
    },
  }
}

function asciiLower(s: string): string {
  return s.replace(/[A-Z]/g, (c) => c.toLowerCase())
}

function split(address: string): [string, string] {
  const at = address.lastIndexOf('@')
  return [address.slice(0, at), address.slice(at + 1)]
}

/** Like Perl's `split(/=/, s, n)`: at most `n` fields, the last one keeps the rest. */
function splitN(s: string, n: number): string[] {
  const fields = s.split('=')
  return fields.length <= n ? fields : [...fields.slice(0, n - 1), fields.slice(n - 1).join('=')]
}
