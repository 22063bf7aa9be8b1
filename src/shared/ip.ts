/**
 * Client addresses and allowlists. Addresses are compared in one canonical form: an IPv4 client
 * seen through a dual-stack socket (`::ffff:192.0.2.7`) is the IPv4 address `192.0.2.7`, IPv6 is
 * lower case and compressed, and a zone (`%eth0`) is dropped. Networks are CIDR blocks, IPv4 or
 * IPv6; an IPv4-mapped IPv6 block (`::ffff:10.0.0.0/104`) is the IPv4 block it maps.
 */
import { BlockList, isIPv4, isIPv6 } from 'node:net'
import { RelayError } from '../core/errors.js'

const MAPPED = /^(?:0{0,4}:){0,5}:?ffff:(?:(\d+\.\d+\.\d+\.\d+)|([0-9a-f]{1,4}):([0-9a-f]{1,4}))$/i

/** The canonical form of an IP address (see the file header); anything else is returned as is. */
export function normalizeIp(address: string): string {
  const ip = address.replace(/%.*$/, '')
  if (!isIPv6(ip)) return ip
  const canonical = new URL(`http://[${ip}]`).hostname.slice(1, -1)
  const mapped = MAPPED.exec(canonical)
  if (!mapped) return canonical
  if (mapped[1]) return mapped[1]
  const hi = parseInt(mapped[2]!, 16)
  const lo = parseInt(mapped[3]!, 16)
  return [hi >> 8, hi & 255, lo >> 8, lo & 255].join('.')
}

/** Prefixes shorter than these would allow a large part of the Internet: refused as open-relay bait. */
const MIN_PREFIX = { ipv4: 8, ipv6: 16 } as const

/**
 * A matcher for CIDR blocks (`192.0.2.0/24`, `2001:db8::/32`) and single addresses. Throws a
 * `RelayError` naming `option` for an invalid entry, or one so wide it would open the relay to a
 * large part of the Internet (IPv4 shorter than /8, IPv6 shorter than /16).
 */
export function networkMatcher(networks: readonly string[], option: string): (ip: string) => boolean {
  const list = new BlockList()
  for (const entry of networks) {
    const [rawAddress = '', rawPrefix, extra] = String(entry).trim().split('/')
    const address = normalizeIp(rawAddress)
    const type = isIPv4(address) ? 'ipv4' : isIPv6(address) ? 'ipv6' : undefined
    let prefix = rawPrefix === undefined ? (type === 'ipv4' ? 32 : 128) : /^\d{1,3}$/.test(rawPrefix) ? Number(rawPrefix) : NaN
    // A mapped block (::ffff:a.b.c.d/n) normalised to IPv4 keeps its last 32 bits.
    if (type === 'ipv4' && isIPv6(rawAddress.replace(/%.*$/, ''))) prefix -= 96
    const max = type === 'ipv4' ? 32 : 128
    if (!type || extra !== undefined || !(prefix >= 0 && prefix <= max)) {
      throw new RelayError('ERR_RELAY_INVALID_OPTION', `${option}: invalid network ${JSON.stringify(entry)}`)
    }
    if (prefix < MIN_PREFIX[type]) {
      throw new RelayError(
        'ERR_RELAY_INVALID_OPTION',
        `${option}: ${JSON.stringify(entry)} is wider than /${MIN_PREFIX[type]}; it would make an open relay`,
      )
    }
    list.addSubnet(address, prefix, type)
  }
  return (ip) => {
    const address = normalizeIp(ip)
    const type = isIPv4(address) ? 'ipv4' : isIPv6(address) ? 'ipv6' : undefined
    return type !== undefined && list.check(address, type)
  }
}
