/**
 * Which addresses direct MX delivery may connect to. The addresses come from DNS, which the
 * recipient domain controls: a hostile domain can point its MX (or its MTA-STS or TLS-RPT web
 * host) at `127.0.0.1:25`, at `10.0.0.5` or at a cloud metadata address and make the relay probe
 * or talk to internal services. So by default every address that is not globally routable is
 * refused: loopback, private (RFC 1918, unique local), link-local, shared (CGNAT), documentation,
 * benchmarking, multicast, the reserved and unspecified ranges, IPv4-mapped and -compatible forms
 * of those, 6to4 and NAT64 forms of private IPv4 addresses. `allowNetworks` lets chosen networks
 * through (tests on 127.0.0.0/8, an internal mail hub on 10.1.2.0/24); everything else stays
 * refused. A refused address is skipped, never tried, and never counts against the address limit.
 */
import { BlockList, isIPv4, isIPv6 } from 'node:net'
import { networkMatcher, normalizeIp } from '../../shared/ip.js'

const SPECIAL_V4: ReadonlyArray<readonly [string, number]> = [
  ['0.0.0.0', 8], // "this network"
  ['10.0.0.0', 8], // private
  ['100.64.0.0', 10], // shared address space (CGNAT)
  ['127.0.0.0', 8], // loopback
  ['169.254.0.0', 16], // link-local (cloud metadata services live here)
  ['172.16.0.0', 12], // private
  ['192.0.0.0', 24], // IETF protocol assignments
  ['192.0.2.0', 24], // documentation
  ['192.88.99.0', 24], // 6to4 relay anycast (deprecated)
  ['192.168.0.0', 16], // private
  ['198.18.0.0', 15], // benchmarking
  ['198.51.100.0', 24], // documentation
  ['203.0.113.0', 24], // documentation
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, broadcast
]

const SPECIAL_V6: ReadonlyArray<readonly [string, number]> = [
  ['::', 96], // unspecified, loopback, IPv4-compatible (deprecated)
  ['64:ff9b:1::', 48], // local-use NAT64
  ['100::', 64], // discard-only
  ['2001::', 23], // IETF protocol assignments (Teredo, ORCHID …)
  ['2001:db8::', 32], // documentation
  ['3fff::', 20], // documentation
  ['5f00::', 16], // segment routing SIDs
  ['fc00::', 7], // unique local
  ['fe80::', 10], // link-local
  ['fec0::', 10], // site-local (deprecated)
  ['ff00::', 8], // multicast
]

const special = new BlockList()
for (const [address, prefix] of SPECIAL_V4) special.addSubnet(address, prefix, 'ipv4')
for (const [address, prefix] of SPECIAL_V6) special.addSubnet(address, prefix, 'ipv6')

/** The IPv4 address a 6to4 (2002::/16) or well-known NAT64 (64:ff9b::/96) address embeds. */
function embeddedIpv4(ip: string): string | undefined {
  const groups = expand(ip)
  if (!groups) return undefined
  const quad = (hi: number, lo: number) => [hi >> 8, hi & 255, lo >> 8, lo & 255].join('.')
  if (groups[0] === 0x2002) return quad(groups[1]!, groups[2]!)
  if (groups[0] === 0x64 && groups[1] === 0xff9b && groups.slice(2, 6).every((g) => g === 0)) return quad(groups[6]!, groups[7]!)
  return undefined
}

/** The eight 16-bit groups of an IPv6 address. */
function expand(ip: string): number[] | undefined {
  const [head = '', tail] = ip.split('::')
  const parse = (part: string) => (part ? part.split(':').map((g) => Number.parseInt(g, 16)) : [])
  const left = parse(head)
  const right = tail === undefined ? [] : parse(tail)
  const groups = tail === undefined ? left : [...left, ...new Array(8 - left.length - right.length).fill(0), ...right]
  return groups.length === 8 && groups.every((g) => Number.isInteger(g)) ? groups : undefined
}

/**
 * True for an address that is not globally routable (see the file header). Anything that is not
 * an IP address counts as not routable.
 *
 * @example
 * ```ts
 * isSpecialAddress('127.0.0.1') // true
 * isSpecialAddress('::ffff:10.0.0.1') // true: the IPv4 address it maps
 * isSpecialAddress('2606:4700::1111') // false
 * ```
 */
export function isSpecialAddress(address: string): boolean {
  const ip = normalizeIp(address)
  if (isIPv4(ip)) return special.check(ip, 'ipv4')
  if (!isIPv6(ip)) return true
  if (special.check(ip, 'ipv6')) return true
  const embedded = embeddedIpv4(ip)
  return embedded !== undefined && special.check(embedded, 'ipv4')
}

/**
 * Decides, per address, whether it may be connected to.
 *
 * @category Transports
 */
export type AddressGate = (address: string) => boolean

/**
 * The gate for `allowNetworks`: globally routable addresses, and those in the allowed networks.
 * Throws `RelayError` `ERR_RELAY_INVALID_OPTION` for an invalid network (or one wider than /8 or
 * /16 for IPv6).
 *
 * @example
 * ```ts
 * const mayConnect = addressGate(['127.0.0.0/8'])
 * mayConnect('127.0.0.2') // true
 * mayConnect('10.0.0.5')  // false
 * ```
 *
 * @category Transports
 */
export function addressGate(allowNetworks: readonly string[] = []): AddressGate {
  const allowed = allowNetworks.length ? networkMatcher(allowNetworks, 'mxTransport allowNetworks') : () => false
  return (address) => allowed(address) || !isSpecialAddress(address)
}
