/**
 * POP-before-SMTP ("SMTP after POP", DRAC): a client that just logged in to the POP or IMAP
 * server may relay from its IP address for a while. The mail server, or a watcher of its log,
 * calls `authorizeClient(ip)`; `relayPolicy({ popBeforeSmtp })` asks `isAuthorized(ip)`. The
 * authorizations live in this process by default, or in Redis so that every relay process and
 * the watcher share them.
 */

import { isIP } from 'node:net'
import { RelayError } from '../core/errors.js'
import type { Awaitable } from '../core/types.js'
import type { Clock } from '../shared/clock.js'
import { type Duration, toMs } from '../shared/duration.js'
import { normalizeIp } from '../shared/ip.js'
import { checkRedisStore, openRedis, type RedisHandle, type SharedStore } from '../shared/store.js'

/**
 * Where authorizations are kept; implement it to share them through something other than Redis.
 *
 * @category Auth
 */
export interface ClientAuthorizationStore {
  /** Authorizes `ip` (canonical form) for `ttl` milliseconds from now, replacing an earlier expiry. */
  set(ip: string, ttl: number): Awaitable<void>
  /** Whether `ip` is authorized now. */
  has(ip: string): Awaitable<boolean>
  /** Withdraws the authorization of `ip`, if any. */
  delete(ip: string): Awaitable<void>
  /** Releases the store's connections; called by `PopBeforeSmtp.close()`. */
  close?(): Promise<void>
}

/**
 * Options of {@link popBeforeSmtp}.
 *
 * @category Auth
 */
export interface PopBeforeSmtpOptions {
  /** How long an authorization lasts when `authorizeClient` is given none. Default `'10m'`. */
  ttl?: Duration
  /** `'memory'` (default), `{ redis }` to share with other processes, or your own store. */
  store?: SharedStore | ClientAuthorizationStore
  /** Milliseconds since the epoch, for the in-memory store's expiry; injectable for tests. Default `Date.now`. */
  clock?: Clock
}

/**
 * The authorizations; pass it to `relayPolicy({ popBeforeSmtp })` and to whatever sees POP/IMAP logins.
 *
 * @category Auth
 */
export interface PopBeforeSmtp {
  /** Lets `ip` relay for `ttl` (default: the option). IPv4-mapped IPv6 forms count as the IPv4 address. */
  authorizeClient(ip: string, ttl?: Duration): Promise<void>
  /** Withdraws the authorization of `ip` at once (IPv4-mapped forms as for `authorizeClient`). */
  revokeClient(ip: string): Promise<void>
  /** Whether `ip` may relay now: authorized and not yet expired. False for anything not an IP address. */
  isAuthorized(ip: string): Promise<boolean>
  /** Closes the store (a Redis connection it opened). */
  close(): Promise<void>
}

/**
 * Creates a POP-before-SMTP authorization list.
 *
 * @example
 * ```ts
 * const pop = popBeforeSmtp({ ttl: '10m' })
 * imapServer.on('login', (session) => pop.authorizeClient(session.remoteAddress))
 * createRelay({ stages: [relayPolicy({ popBeforeSmtp: pop })], transport })
 * ```
 *
 * @category Auth
 */
export function popBeforeSmtp(options: PopBeforeSmtpOptions = {}): PopBeforeSmtp {
  const ttl = toMs(options.ttl ?? '10m', 'popBeforeSmtp ttl')
  const store =
    typeof options.store === 'object' && 'set' in options.store ? options.store : sharedStore(options.store ?? 'memory', options.clock ?? Date.now)
  const canonical = (ip: string) => {
    const address = normalizeIp(String(ip))
    if (!isIP(address)) throw new RelayError('ERR_RELAY_INVALID_OPTION', `not an IP address: ${JSON.stringify(ip)}`)
    return address
  }
  return {
    authorizeClient: async (ip, time) => store.set(canonical(ip), time === undefined ? ttl : toMs(time, 'ttl')),
    revokeClient: async (ip) => store.delete(canonical(ip)),
    isAuthorized: async (ip) => isIP(normalizeIp(ip)) !== 0 && (await store.has(normalizeIp(ip))),
    close: async () => store.close?.(),
  }
}

function sharedStore(option: SharedStore, clock: Clock): ClientAuthorizationStore {
  if (option === 'memory') {
    const until = new Map<string, number>()
    return {
      set(ip, time) {
        // Expired entries are dropped as new ones come, so the map stays as large as the live set.
        const now = clock()
        if (until.size > 1024) for (const [key, expiry] of until) if (expiry <= now) until.delete(key)
        until.set(ip, now + time)
      },
      has: (ip) => (until.get(ip) ?? 0) > clock(),
      delete: (ip) => void until.delete(ip),
    }
  }
  checkRedisStore(option.redis)
  let redis: Promise<RedisHandle> | undefined
  const client = async () => (await (redis ??= openRedis(option.redis))).client
  const key = (ip: string) => `relaychain:pop:${ip}`
  return {
    set: async (ip, time) => void (await (await client()).set(key(ip), '1', 'PX', Math.ceil(time))),
    has: async (ip) => (await (await client()).exists(key(ip))) === 1,
    delete: async (ip) => void (await (await client()).del(key(ip))),
    close: async () => void (redis && (await (await redis).release())),
  }
}
