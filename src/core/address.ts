/**
 * Addresses and domains, compared one way everywhere. A domain is matched in its ASCII form
 * (A-labels, lower case, no trailing dot), so `Bücher.example`, `xn--bcher-kva.example` and
 * `bücher.example.` are one domain in every option of every stage and transport. In domain lists,
 * `example.com` matches that domain only and `.example.com` its subdomains only (Postfix's
 * meaning without `parent_domain_matches_subdomains`); list both for both.
 */
import { isIPv4, isIPv6 } from 'node:net'
import { domainToASCII } from 'node:url'
import { RelayError } from './errors.js'
import type { Address } from './types.js'

const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/
const NON_ASCII = /[^\x00-\x7f]/

/**
 * The domain as it is matched and delivered: lower case (Unicode NFC for internationalised
 * names, which SMTPUTF8 delivers as they are), without a trailing dot, address literals in
 * canonical form. `undefined` if it is not a valid domain or literal.
 */
export function normalizeDomain(domain: string): string | undefined {
  if (domain.startsWith('[') && domain.endsWith(']')) {
    const inner = domain.slice(1, -1)
    if (isIPv4(inner)) return domain
    const v6 = /^ipv6:(.*)$/i.exec(inner)?.[1]
    return v6 && isIPv6(v6) ? `[IPv6:${v6.toLowerCase()}]` : undefined
  }
  const name = (domain.endsWith('.') ? domain.slice(0, -1) : domain).normalize('NFC').toLowerCase()
  if (!name || name.length > 253) return undefined
  const ascii = NON_ASCII.test(name) ? domainToASCII(name) : name
  return ascii?.split('.').every((label) => LABEL.test(label)) ? name : undefined
}

/** A domain in its ASCII comparison form: A-labels, lower case, no trailing dot. */
export function asciiDomain(domain: string): string {
  const name = (domain.endsWith('.') ? domain.slice(0, -1) : domain).toLowerCase()
  return NON_ASCII.test(name) ? domainToASCII(name.normalize('NFC')) || name : name
}

/**
 * The domain of an address (after its last `@`), in its ASCII comparison form.
 *
 * @category Core
 */
export function domainKey(address: string): string {
  return asciiDomain(address.slice(address.lastIndexOf('@') + 1))
}

/**
 * An address in its comparison form: local part lower case, domain as {@link domainKey}.
 *
 * @category Core
 */
export function addressKey(address: string): string {
  const at = address.lastIndexOf('@')
  return at < 0 ? address.toLowerCase() : `${address.slice(0, at).toLowerCase()}@${domainKey(address)}`
}

/**
 * Address equality as mail systems dedupe recipients: case-insensitive, one form per domain.
 *
 * @category Core
 */
export function sameAddress(a: Address, b: Address): boolean {
  return a.address === b.address || addressKey(a.address) === addressKey(b.address)
}

/**
 * A matcher for a list of domains (see the file header for what an entry means). Throws a
 * `RelayError` naming `option` for an entry that is not a domain, or a `.tld` entry that would
 * match a whole top-level domain.
 *
 * @example
 * ```ts
 * const ours = domainMatcher(['example.com', '.example.com'], 'relayPolicy domains')
 * ours('mail.EXAMPLE.com.') // true
 * ```
 *
 * @category Core
 */
export function domainMatcher(entries: readonly string[], option: string): (domain: string) => boolean {
  const exact = new Set<string>()
  const parents: string[] = []
  for (const entry of entries) {
    const sub = typeof entry === 'string' && entry.startsWith('.')
    const name = typeof entry === 'string' ? normalizeDomain(sub ? entry.slice(1) : entry) : undefined
    if (!name || name.startsWith('[') || (sub && !name.includes('.'))) {
      throw new RelayError('ERR_RELAY_INVALID_OPTION', `${option}: invalid or too wide domain ${JSON.stringify(entry)}`)
    }
    if (sub) parents.push(`.${asciiDomain(name)}`)
    else exact.add(asciiDomain(name))
  }
  return (domain) => {
    const key = asciiDomain(domain)
    return exact.has(key) || parents.some((parent) => key.endsWith(parent))
  }
}

/**
 * Values by domain, looked up as {@link domainMatcher} matches: the exact domain first, then the nearest `.parent`.
 *
 * @category Core
 */
export interface DomainTable<T> {
  /** The value for `domain` (any case, Unicode or A-label form): an exact entry, else the closest `.parent` entry. */
  get(domain: string): T | undefined
  /** Number of entries. */
  readonly size: number
}

/**
 * A table keyed by domain list entries (`example.com`, `.example.com`). Throws a `RelayError`
 * naming `option` for an invalid or duplicate key.
 *
 * @example
 * ```ts
 * const footers = domainTable(Object.entries({ 'example.com': 'A', '.example.com': 'B' }), 'disclaimer domains')
 * footers.get('eu.example.com') // 'B'
 * ```
 *
 * @category Core
 */
export function domainTable<T>(entries: Iterable<readonly [string, T]>, option: string): DomainTable<T> {
  const table = new Map<string, T>()
  for (const [entry, value] of entries) {
    domainMatcher([entry], option) // validates
    const key = entry.startsWith('.') ? `.${asciiDomain(normalizeDomain(entry.slice(1))!)}` : asciiDomain(normalizeDomain(entry)!)
    if (table.has(key)) throw new RelayError('ERR_RELAY_INVALID_OPTION', `${option}: ${JSON.stringify(entry)} is listed twice`)
    table.set(key, value)
  }
  return {
    size: table.size,
    get(domain) {
      let key = asciiDomain(domain)
      const exact = table.get(key)
      if (exact !== undefined) return exact
      for (let dot = key.indexOf('.'); dot >= 0; dot = key.indexOf('.')) {
        const found = table.get(key.slice(dot))
        if (found !== undefined) return found
        key = key.slice(dot + 1)
      }
      return undefined
    },
  }
}
