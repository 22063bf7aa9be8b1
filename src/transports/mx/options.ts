/**
 * The options of `mxTransport()` and their defaults, checked once when the transport is made
 * (a mistake is a `RelayError` `ERR_RELAY_INVALID_OPTION` then, never a bounce later). Defaults
 * follow Postfix where it has one: port 25, 5 addresses and 2 sessions per delivery
 * (`smtp_mx_address_limit`, `smtp_mx_session_limit`), 50 recipients per transaction
 * (`smtp_destination_recipient_limit`), 20 deliveries at once per domain
 * (`default_destination_concurrency_limit`), 30 s to connect.
 */
import { getServers } from 'node:dns'
import { hostname } from 'node:os'
import { domainTable } from '../../core/address.js'
import { RelayError } from '../../core/errors.js'
import type { Message } from '../../core/types.js'
import { type AddressGate, addressGate } from './address-policy.js'
import { createDnsClient, type DnsClientOptions } from './dns.js'
import type { DnsResolver } from './dns-types.js'
import { type ExtraCa, trustedCas } from './https-client.js'
import type { MtaStsOptions } from './mta-sts.js'
import type { ResolverAddressInput } from './resolver-address.js'
import type { TlsReporter } from './tls-report.js'

/**
 * How a destination's TLS is required: `'encrypt'` (TLS, any certificate) or `'verify'` (TLS, a certificate valid for the MX name).
 *
 * @category Transports
 */
export type RequireTlsLevel = 'encrypt' | 'verify'

/**
 * Options of `mxTransport()`.
 *
 * @category Transports
 */
export interface MxTransportOptions {
  /**
   * Where DNS questions go: a resolver's address (`'127.0.0.1:53'`; DANE needs a validating one on
   * this machine), options for the DNS client, or a {@link DnsResolver} of your own. Default: the
   * first of the system's resolvers (`dns.getServers()`).
   */
  dns?: ResolverAddressInput | DnsClientOptions | DnsResolver
  /** The port MX hosts are connected to. Default 25. */
  port?: number
  /** The EHLO name. Default `os.hostname()`. */
  name?: string
  /** Source address of connections, or a function choosing it per recipient domain and message part. Default: the system's choice. */
  localAddress?: string | ((domain: string, msg: Message) => string | undefined)
  /** Networks that may be connected to although loopback, private or reserved (`['127.0.0.0/8']` in tests). Default none. */
  allowNetworks?: readonly string[]
  /** Look up and connect to IPv6 addresses too. Default true. */
  ipv6?: boolean
  /** Addresses tried per delivery, at most. Default 5. */
  maxAddresses?: number
  /** SMTP sessions (connections that completed EHLO) per delivery, at most. Default 2. */
  maxSessions?: number
  /** Recipients per SMTP transaction, at most; more are sent in further transactions. Default 50. */
  maxRecipients?: number
  /** Deliveries at once per recipient domain (default 20) and connections in use per MX address (default 5). */
  concurrency?: {
    /** Deliveries at once to one recipient domain. Default 20. */
    perDomain?: number
    /** Connections in use at once to one MX address. Default 5. */
    perHost?: number
  }
  /** Connection reuse: messages per connection (default 100), milliseconds an idle connection is kept (default 30 000); `false` for none. */
  pool?:
    | {
        /** Messages sent over one connection before it is closed. Default 100. */
        maxMessages?: number
        /** Milliseconds an idle connection is kept open for the next message. Default 30 000. */
        idleTimeout?: number
      }
    | false
  /** Milliseconds. Defaults: connect 30 000, greeting 60 000, idle socket 300 000. */
  timeouts?: {
    /** Milliseconds to establish the TCP connection. Default 30 000. */
    connection?: number
    /** Milliseconds to wait for the server's 220 greeting after connecting. Default 60 000. */
    greeting?: number
    /** Milliseconds of socket inactivity before the session is abandoned. Default 300 000. */
    socket?: number
  }
  /** Extra CA certificates trusted for MX hosts and MTA-STS policy hosts, besides Node's roots. */
  tls?: {
    /** PEM CA certificates trusted in addition to Node's root store. */
    ca?: ExtraCa
  }
  /**
   * Destinations that must get TLS: a list of domains (`'.example.org'` for subdomains) that need
   * `'encrypt'`, a table of domains to levels, or a function. Default none.
   */
  requireTls?: readonly string[] | Readonly<Record<string, RequireTlsLevel>> | ((domain: string) => RequireTlsLevel | undefined)
  /** MTA-STS (RFC 8461): options, or `false` to ignore policies. Default on. */
  mtaSts?: MtaStsOptions | false
  /** DANE (RFC 7672): false to ignore TLSA records. Default on (it needs a validating resolver on loopback to matter). */
  dane?: boolean
  /** Where TLS-RPT counts go (see `tlsReporter()`). Default: not counted. */
  tlsReports?: TlsReporter
  /** Random numbers in [0, 1) for the order of equal-preference MX hosts. Default `Math.random`. */
  random?: () => number
}

/** The options, checked and with their defaults. */
export interface MxConfig {
  readonly dns: DnsResolver
  readonly port: number
  readonly name: string
  readonly localAddress: (domain: string, msg: Message) => string | undefined
  readonly gate: AddressGate
  readonly ipv6: boolean
  readonly maxAddresses: number
  readonly maxSessions: number
  readonly maxRecipients: number
  readonly perDomain: number
  readonly perHost: number
  readonly reuse: boolean
  readonly maxMessages: number
  readonly idleTimeout: number
  readonly timeouts: { readonly connection: number; readonly greeting: number; readonly socket: number }
  readonly ca: (string | Buffer)[] | undefined
  readonly extraCa: ExtraCa | undefined
  readonly requireTls: (domain: string) => RequireTlsLevel | undefined
  readonly mtaSts: MtaStsOptions | false
  readonly dane: boolean
  readonly tlsReports: TlsReporter | undefined
  readonly random: () => number
}

function count(value: number | undefined, fallback: number, option: string, min = 1): number {
  if (value === undefined) return fallback
  if (!Number.isInteger(value) || value < min)
    throw new RelayError('ERR_RELAY_INVALID_OPTION', `mxTransport ${option}: expected an integer >= ${min}, got ${value}`)
  return value
}

/**
 * A resolver from the `dns` option (an address, client options, or a resolver).
 *
 * @example
 * ```ts
 * resolverOf('127.0.0.1:53') // a DNS client for the local validating resolver
 * ```
 */
export function resolverOf(dns: MxTransportOptions['dns']): DnsResolver {
  if (dns && typeof dns === 'object' && 'mx' in dns && typeof dns.mx === 'function') return dns as DnsResolver
  if (dns && typeof dns === 'object' && 'server' in dns) return createDnsClient(dns as DnsClientOptions)
  const server = (dns as ResolverAddressInput | undefined) ?? getServers()[0]
  if (!server) throw new RelayError('ERR_RELAY_INVALID_OPTION', 'mxTransport dns: no resolver given and the system has none')
  return createDnsClient({ server })
}

function requireTlsOf(option: MxTransportOptions['requireTls']): MxConfig['requireTls'] {
  if (!option) return () => undefined
  if (typeof option === 'function') return option
  const entries: [string, RequireTlsLevel][] = Array.isArray(option)
    ? (option as readonly string[]).map((d) => [d, 'encrypt'])
    : Object.entries(option as Record<string, RequireTlsLevel>)
  for (const [domain, level] of entries) {
    if (level !== 'encrypt' && level !== 'verify')
      throw new RelayError('ERR_RELAY_INVALID_OPTION', `mxTransport requireTls ${domain}: ${String(level)}`)
  }
  const table = domainTable(entries, 'mxTransport requireTls')
  return (domain) => table.get(domain)
}

/**
 * Checks the options and fills in the defaults (see the file header).
 *
 * @example
 * ```ts
 * resolveOptions({ dns: '127.0.0.1:53' }).maxAddresses // 5
 * ```
 */
export function resolveOptions(options: MxTransportOptions): MxConfig {
  const port = count(options.port, 25, 'port')
  if (port > 65535) throw new RelayError('ERR_RELAY_INVALID_OPTION', `mxTransport port: ${port}`)
  const local = options.localAddress
  const pool = options.pool === false ? undefined : (options.pool ?? {})
  return {
    dns: resolverOf(options.dns),
    port,
    name: options.name ?? hostname(),
    localAddress: typeof local === 'function' ? local : () => local,
    gate: addressGate(options.allowNetworks),
    ipv6: options.ipv6 ?? true,
    maxAddresses: count(options.maxAddresses, 5, 'maxAddresses'),
    maxSessions: count(options.maxSessions, 2, 'maxSessions'),
    maxRecipients: count(options.maxRecipients, 50, 'maxRecipients'),
    perDomain: count(options.concurrency?.perDomain, 20, 'concurrency.perDomain'),
    perHost: count(options.concurrency?.perHost, 5, 'concurrency.perHost'),
    reuse: pool !== undefined,
    maxMessages: count(pool?.maxMessages, 100, 'pool.maxMessages'),
    idleTimeout: count(pool?.idleTimeout, 30_000, 'pool.idleTimeout'),
    timeouts: {
      connection: count(options.timeouts?.connection, 30_000, 'timeouts.connection'),
      greeting: count(options.timeouts?.greeting, 60_000, 'timeouts.greeting'),
      socket: count(options.timeouts?.socket, 300_000, 'timeouts.socket'),
    },
    ca: trustedCas(options.tls?.ca),
    extraCa: options.tls?.ca,
    requireTls: requireTlsOf(options.requireTls),
    mtaSts: options.mtaSts === false ? false : (options.mtaSts ?? {}),
    dane: options.dane ?? true,
    tlsReports: options.tlsReports,
    random: options.random ?? Math.random,
  }
}
