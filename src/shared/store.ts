/**
 * Where relay policy keeps state that several relay processes may need to share — rate-limit
 * counters, failed-AUTH counters, POP-before-SMTP authorizations: in this process (the default)
 * or in Redis. ioredis and rate-limiter-flexible are loaded on first use only.
 */
import type { Redis } from 'ioredis'
import type { RateLimiterAbstract } from 'rate-limiter-flexible'

/**
 * `'memory'` (default): this process only. `{ redis }`: a Redis server shared by every relay
 * process, given as a URL (`redis://127.0.0.1:6379`; the connection is opened on first use and
 * closed with the relay) or as an ioredis client you own.
 */
export type SharedStore = 'memory' | { readonly redis: string | Redis }

/** A Redis connection: ours (opened from a URL, closed on release) or the caller's. */
export interface RedisHandle {
  readonly client: Redis
  release(): Promise<void>
}

/** Connects (lazily importing ioredis) or wraps the caller's client. */
export async function openRedis(option: string | Redis): Promise<RedisHandle> {
  if (typeof option !== 'string') return { client: option, release: async () => {} }
  const { Redis } = await import('ioredis')
  const client = new Redis(option, { lazyConnect: true, maxRetriesPerRequest: 2 })
  await client.connect()
  return { client, release: async () => void (await client.quit().catch(() => client.disconnect())) }
}

/** Options of one counter: `points` per `seconds`, under `prefix`. */
export interface CounterOptions {
  prefix: string
  points: number
  seconds: number
}

/** A set of rate-limiter-flexible counters on one store, created on first use. */
export interface Counters {
  get(options: CounterOptions): Promise<RateLimiterAbstract>
  close(): Promise<void>
}

/** Counters on `store`; nothing is imported or connected until the first `get()`. */
export function counters(store: SharedStore = 'memory'): Counters {
  let redis: Promise<RedisHandle> | undefined
  const made = new Map<string, Promise<RateLimiterAbstract>>()
  const make = async ({ prefix, points, seconds }: CounterOptions): Promise<RateLimiterAbstract> => {
    const { RateLimiterMemory, RateLimiterRedis } = await import('rate-limiter-flexible')
    const options = { keyPrefix: `relaychain:${prefix}`, points, duration: seconds }
    if (store === 'memory') return new RateLimiterMemory(options)
    redis ??= openRedis(store.redis)
    return new RateLimiterRedis({ ...options, storeClient: (await redis).client, rejectIfRedisNotReady: true })
  }
  return {
    get(options) {
      const key = `${options.prefix}/${options.points}/${options.seconds}`
      let limiter = made.get(key)
      if (!limiter) made.set(key, (limiter = make(options)))
      return limiter
    },
    async close() {
      if (redis) await (await redis.catch(() => undefined))?.release()
    },
  }
}
