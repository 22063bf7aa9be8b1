/**
 * Address maps in the style of Postfix's canonical, generic and virtual tables: a table of exact
 * addresses and `@domain` entries, a list of regular expressions, or a function. Lookups ignore
 * case and compare internationalised domains in their ASCII (punycode) form, so `bücher.example`
 * and `xn--bcher-kva.example` are the same key.
 */

import { domainKey } from '../core/address.js'
import { RelayError } from '../core/errors.js'
import type { Awaitable, Transaction } from '../core/types.js'

/**
 * A map's answer: one address rewrites, several expand (recipients only); `undefined` leaves it.
 *
 * @category Stages
 */
export type AddressMapResult = string | readonly string[] | undefined | null

/**
 * A function map, e.g. a directory lookup.
 * @param address The address as it is now, e.g. `alice@old.example`.
 *
 * @category Stages
 */
export type AddressMapFunction = (address: string, tx: Transaction) => Awaitable<AddressMapResult>

/**
 * `[pattern, replacement]`: the first rule whose pattern matches wins; `$1`… refer to its groups.
 *
 * @category Stages
 */
export type AddressMapRule = readonly [RegExp, string | readonly string[]]

/**
 * An address map:
 * - a table: keys are exact addresses (`alice@old.example`) or whole domains (`@old.example`, tried
 *   after exact keys); a value `@new.example` keeps the local part and replaces the domain;
 * - a list of {@link AddressMapRule}s;
 * - an {@link AddressMapFunction}.
 *
 * @category Stages
 */
export type AddressMap = Readonly<Record<string, string | readonly string[]>> | readonly AddressMapRule[] | AddressMapFunction

/** A compiled map: the replacement addresses, or `undefined` when the map has no entry. */
export type Lookup = (address: string, tx: Transaction) => Promise<string[] | undefined>

function keyOf(address: string): string {
  const at = address.lastIndexOf('@')
  return `${address.slice(0, at).toLowerCase()}@${domainKey(address)}`
}

const VALID = /^[^\s<>@]+@[^\s<>@]+$|^@[^\s<>@]+$/

function replace(value: string, address: string): string {
  return value.startsWith('@') ? address.slice(0, address.lastIndexOf('@')) + value : value
}

function checked(what: string, values: readonly string[]): string[] {
  for (const value of values) {
    if (typeof value !== 'string' || !VALID.test(value)) {
      throw new RelayError('ERR_RELAY_INVALID_OPTION', `${what}: ${JSON.stringify(value)} is not an address or @domain`)
    }
  }
  if (!values.length) throw new RelayError('ERR_RELAY_INVALID_OPTION', `${what}: an entry maps to no address`)
  return [...values]
}

const list = (value: string | readonly string[]): readonly string[] => (typeof value === 'string' ? [value] : value)

/**
 * Compiles a map. Table values are checked now (`RelayError` `ERR_RELAY_INVALID_OPTION`); what a
 * function or rule returns is checked at each lookup. `single`: an entry must map to one address.
 */
export function compileMap(map: AddressMap, what: string, single: boolean): Lookup {
  const result = (values: readonly string[], address: string) => {
    if (single && values.length !== 1) throw new RelayError('ERR_RELAY_INVALID_OPTION', `${what}: ${address} maps to ${values.length} addresses`)
    return checked(what, values).map((v) => replace(v, address))
  }
  if (typeof map === 'function') {
    return async (address, tx) => {
      const value = await map(address, tx)
      return value === undefined || value === null ? undefined : result(list(value), address)
    }
  }
  if (Array.isArray(map)) {
    const rules = (map as readonly AddressMapRule[]).map(([pattern, to]) => {
      if (!(pattern instanceof RegExp)) throw new RelayError('ERR_RELAY_INVALID_OPTION', `${what}: rule patterns must be RegExps`)
      return [new RegExp(pattern.source, pattern.flags.replace(/[gy]/g, '')), list(to)] as const
    })
    return async (address) => {
      const rule = rules.find(([pattern]) => pattern.test(address))
      return (
        rule &&
        result(
          rule[1].map((to) => address.replace(rule[0], to)),
          address,
        )
      )
    }
  }
  const table = new Map<string, string[]>()
  for (const [key, value] of Object.entries(map as Readonly<Record<string, string | readonly string[]>>)) {
    if (!VALID.test(key)) throw new RelayError('ERR_RELAY_INVALID_OPTION', `${what}: key ${JSON.stringify(key)} is not an address or @domain`)
    const values = checked(what, list(value))
    if (single && values.length !== 1) throw new RelayError('ERR_RELAY_INVALID_OPTION', `${what}: ${key} maps to ${values.length} addresses`)
    table.set(key.startsWith('@') ? `@${domainKey(key)}` : keyOf(key), values)
  }
  return async (address) => {
    const values = table.get(keyOf(address)) ?? table.get(`@${domainKey(address)}`)
    return values?.map((v) => replace(v, address))
  }
}
