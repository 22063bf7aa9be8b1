/**
 * Where the DNS client sends its queries, and whether it may believe that server's AD bit.
 *
 * The AD (authenticated data) bit is one unsigned bit in the reply header. Between us and a
 * remote resolver anyone on the path can set it, so it proves something only when the
 * validating resolver runs on this machine and the path is loopback (RFC 6698 §A.3.1, RFC 7672
 * §1.3, RFC 4033 §4; maddy and Postfix apply the same rule). The rule is kept in one function,
 * {@link trustsAuthenticatedData}, so it can be tested on its own.
 */
import { isIP } from 'node:net'
import { RelayError } from '../../core/errors.js'

/**
 * A resolver's address: an IP literal (never a name: resolving it would need DNS) and a port.
 *
 * @category Transports
 */
export interface ResolverAddress {
  /** The IP address, without brackets. */
  host: string
  /** The UDP/TCP port, 1–65535. */
  port: number
  /** The IP version of `host`. */
  family: 4 | 6
}

/**
 * `'127.0.0.1'`, `'127.0.0.1:5353'`, `'::1'`, `'[::1]:5353'`, or `{ host, port }`; port 53 if none.
 *
 * @category Transports
 */
export type ResolverAddressInput =
  | string
  | {
      /** An IPv4 or IPv6 literal. */
      host: string
      /** Default 53. */
      port?: number
    }

/**
 * Parses a resolver address. Throws `RelayError` `ERR_RELAY_INVALID_OPTION` for anything but an
 * IP literal with an optional port in 1–65535.
 *
 * @example
 * ```ts
 * parseResolverAddress('[::1]:5353') // { host: '::1', port: 5353, family: 6 }
 * ```
 */
export function parseResolverAddress(input: ResolverAddressInput): ResolverAddress {
  let host: string
  let port: number | string | undefined
  if (typeof input === 'object' && input !== null) {
    ;({ host, port } = input)
  } else {
    const text = String(input).trim()
    const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(text)
    const v4 = /^([\d.]+)(?::(\d+))?$/.exec(text)
    if (bracketed) [, host = '', port] = bracketed
    else if (v4) [, host = '', port] = v4
    else host = text
  }
  const family = isIP(host)
  const portNumber = port === undefined ? 53 : Number(port)
  if ((family !== 4 && family !== 6) || !Number.isInteger(portNumber) || portNumber < 1 || portNumber > 65535) {
    throw new RelayError('ERR_RELAY_INVALID_OPTION', `dns server: expected an IP address with an optional port, got ${JSON.stringify(input)}`)
  }
  return { host, port: portNumber, family }
}

/**
 * True for addresses that never leave this machine: 127.0.0.0/8, `::1`, and IPv4 loopback
 * written as IPv4-mapped IPv6 (`::ffff:127.0.0.1`).
 *
 * @example
 * ```ts
 * isLoopbackAddress('127.0.0.53') // true
 * isLoopbackAddress('192.0.2.1')  // false
 * ```
 */
export function isLoopbackAddress(host: string): boolean {
  const ip = host.replace(/%.*$/, '')
  if (isIP(ip) === 4) return ip.split('.')[0] === '127'
  if (isIP(ip) !== 6) return false
  const canonical = new URL(`http://[${ip}]`).hostname.slice(1, -1)
  return canonical === '::1' || /^::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}$/.test(canonical)
}

/**
 * Whether the AD bit from the resolver at `host` counts: only when that resolver is on loopback
 * (see the file header). A reply from anywhere else is treated as not validated, whatever its AD
 * bit says.
 *
 * @example
 * ```ts
 * trustsAuthenticatedData('::1')     // true
 * trustsAuthenticatedData('8.8.8.8') // false: an AD bit from there proves nothing
 * ```
 */
export function trustsAuthenticatedData(host: string): boolean {
  return isLoopbackAddress(host)
}
