/**
 * Where relay policy keeps state that several relay processes may need to share — rate-limit
 * counters, failed-AUTH counters, POP-before-SMTP authorizations: in this process (the default)
 * or in Redis. ioredis and rate-limiter-flexible (for its atomic Redis scripts) are optional peer
 * dependencies, checked when a Redis store is configured and loaded on first use only; memory
 * counters are our own, so that they can read an injectable clock.
 */
import type { Clock } from './clock.js'
import { loadFeature, requireFeature } from './optional.js'

/**
 * An ioredis client (`new Redis(…)`) of your own, described by the members relaychain relies on,
 * so that this type does not need ioredis installed to type-check.
 *
 * @category Utilities
 */
export interface RedisClient {
  /** ioredis's connection state (`'ready'` …). */
  readonly status: string
  /** Sets `key` to `value`, expiring in `milliseconds`. */
  set(key: string, value: string, mode: 'PX', milliseconds: number): Promise<unknown>
  /** How many of `keys` exist. */
  exists(...keys: string[]): Promise<number>
  /** Deletes `keys`; resolves with how many there were. */
  del(...keys: string[]): Promise<number>
}

/**
 * `'memory'` (default): this process only. `{ redis }`: a Redis server shared by every relay
 * process, given as a URL (`redis://127.0.0.1:6379`; the connection is opened on first use and
 * closed with the relay) or as an ioredis client you own.
 *
 * @category Utilities
 */
export type SharedStore =
  | 'memory'
  | {
      /** A Redis URL (`redis://127.0.0.1:6379`; the connection is opened and closed here), or a connected client of yours. */
      readonly redis: string | RedisClient
    }

/** A Redis connection: ours (opened from a URL, closed on release) or the caller's. */
export interface RedisHandle {
  readonly client: RedisClient
  release(): Promise<void>
}

/** Throws `ERR_RELAY_MISSING_DEPENDENCY` now if a Redis store given as a URL cannot be opened later (ioredis is missing). */
export function checkRedisStore(option: string | RedisClient): void {
  if (typeof option === 'string') requireFeature('redis')
}

/** Connects (lazily importing ioredis) or wraps the caller's client. */
export async function openRedis(option: string | RedisClient): Promise<RedisHandle> {
  if (typeof option !== 'string') return { client: option, release: async () => {} }
  const { Redis } = await loadFeature('redis', () => import('ioredis'))
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

/** A key's count in the current window. */
export interface CounterState {
  readonly consumedPoints: number
}

/**
 * Fixed-window counters by key: a key's window starts with its first point and lasts `seconds`.
 * Adding never refuses: callers compare the count with their limit, so that concurrent
 * transactions cannot overshoot it (the increment is atomic, in memory and in Redis).
 */
export interface Counter {
  get(key: string): Promise<CounterState | null>
  /** Adds `points` to the key's window; resolves with the new count. */
  add(key: string, points: number): Promise<CounterState>
  /** Holds the key over its limit for `seconds`. */
  block(key: string, seconds: number): Promise<void>
  delete(key: string): Promise<void>
}

/** A set of counters on one store, created on first use. */
export interface Counters {
  get(options: CounterOptions): Promise<Counter>
  close(): Promise<void>
}

/**
 * Counters on `store`; nothing is imported or connected until the first `get()`. Memory counters
 * read time from `clock` (tests move it by hand); Redis counts in Redis's own time.
 */
export function counters(store: SharedStore = 'memory', clock: Clock = Date.now): Counters {
  if (store !== 'memory') requireFeature('redis-counters')
  let redis: Promise<RedisHandle> | undefined
  const made = new Map<string, Promise<Counter>>()
  const make = async ({ prefix, points, seconds }: CounterOptions): Promise<Counter> => {
    if (store === 'memory') return memoryCounter(points, seconds, clock)
    const { RateLimiterRedis } = await loadFeature('redis-counters', () => import('rate-limiter-flexible'))
    redis ??= openRedis(store.redis)
    const limiter = new RateLimiterRedis({
      keyPrefix: `relaychain:${prefix}`,
      points,
      duration: seconds,
      storeClient: (await redis).client,
      rejectIfRedisNotReady: true,
    })
    return {
      get: (key) => limiter.get(key),
      add: (key, n) => limiter.penalty(key, n),
      block: async (key, secs) => void (await limiter.block(key, secs)),
      delete: async (key) => void (await limiter.delete(key)),
    }
  }
  return {
    get(options) {
      const key = `${options.prefix}/${options.points}/${options.seconds}`
      let counter = made.get(key)
      if (!counter) made.set(key, (counter = make(options)))
      return counter
    },
    async close() {
      if (redis) await (await redis.catch(() => undefined))?.release()
    },
  }
}

/** Counters in this process; expired windows are dropped as new keys come, so memory follows the live set. */
function memoryCounter(points: number, seconds: number, clock: Clock): Counter {
  const windows = new Map<string, { points: number; ends: number }>()
  const live = (key: string) => {
    const window = windows.get(key)
    if (window && window.ends > clock()) return window
    windows.delete(key)
    return undefined
  }
  const open = (key: string, count: number, ms: number) => {
    const now = clock()
    if (windows.size > 10_000) for (const [k, w] of windows) if (w.ends <= now) windows.delete(k)
    const window = { points: count, ends: now + ms }
    windows.set(key, window)
    return window
  }
  return {
    get: async (key) => {
      const window = live(key)
      return window ? { consumedPoints: window.points } : null
    },
    add: async (key, n) => {
      const window = live(key)
      if (window) window.points += n
      return { consumedPoints: (window ?? open(key, n, seconds * 1000)).points }
    },
    block: async (key, secs) => void open(key, points + 1, secs * 1000),
    delete: async (key) => void windows.delete(key),
  }
}
