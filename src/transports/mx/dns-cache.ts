/**
 * The DNS client's cache: answers (NODATA included) and "no such domain" results, each kept for
 * its TTL (capped by `maxTtl`) and never longer, in a map bounded to `maxEntries` that forgets
 * the least recently used entry first. Failures (timeouts, SERVFAIL) are never cached: the next
 * attempt asks again. Time comes from an injectable clock, so tests move it by hand.
 *
 * A hit returns a copy whose `ttl` is what remains, as a caching resolver would report it.
 */
import type { DnsAnswer } from './dns-types.js'

/**
 * Options of {@link DnsCache}.
 *
 * @category Transports
 */
export interface DnsCacheOptions {
  /** Entries kept at most. Default 1000. */
  maxEntries?: number
  /** Seconds an entry is kept at most, whatever its TTL. Default 86400 (a day). */
  maxTtl?: number
  /** Milliseconds since the epoch; default `Date.now`. */
  clock?: () => number
}

/**
 * What the cache holds for one question: an answer, or the fact that the name does not exist.
 *
 * @category Transports
 */
export type CachedResult =
  | {
      /** The answer as the resolver gave it (NODATA: no `answers`); on a hit its `ttl` is what remains. */
      answer: DnsAnswer<unknown>
    }
  | {
      /** The name does not exist (NXDOMAIN). */
      nxdomain: true
      /** Whether the denial of existence was DNSSEC-validated by a trusted resolver. */
      authenticated: boolean
      /** Seconds the denial may be kept (the SOA's negative TTL); on a hit, what remains. */
      ttl: number
    }

interface Entry {
  result: CachedResult
  expires: number
}

/**
 * A TTL-respecting, size-bounded cache (see the file header).
 *
 * @example
 * ```ts
 * const cache = new DnsCache({ maxEntries: 100, clock: () => now })
 * cache.set('MX example.com', { answer }, answer.ttl)
 * cache.get('MX example.com') // the answer with the TTL that remains, until it expires
 * ```
 *
 * @category Transports
 */
export class DnsCache {
  readonly #entries = new Map<string, Entry>()
  readonly #maxEntries: number
  readonly #maxTtl: number
  readonly #clock: () => number

  constructor(options: DnsCacheOptions = {}) {
    this.#maxEntries = Math.max(0, options.maxEntries ?? 1000)
    this.#maxTtl = Math.max(0, options.maxTtl ?? 86_400)
    this.#clock = options.clock ?? Date.now
  }

  /** Number of entries held (expired ones included until they are looked up or evicted). */
  get size(): number {
    return this.#entries.size
  }

  /** The live result for `key`, its TTL reduced to what remains; undefined if absent or expired. */
  get(key: string): CachedResult | undefined {
    const entry = this.#entries.get(key)
    if (!entry) return undefined
    const remaining = Math.floor((entry.expires - this.#clock()) / 1000)
    this.#entries.delete(key)
    if (remaining <= 0) return undefined
    this.#entries.set(key, entry) // most recently used last
    const { result } = entry
    if ('nxdomain' in result) return { ...result, ttl: remaining }
    return { answer: { ...result.answer, answers: [...result.answer.answers], ttl: remaining } }
  }

  /** Keeps `result` for `ttl` seconds (capped); a TTL of 0 keeps nothing. */
  set(key: string, result: CachedResult, ttl: number): void {
    const seconds = Math.min(Math.floor(ttl), this.#maxTtl)
    if (!(seconds > 0) || this.#maxEntries === 0) return
    this.#entries.delete(key)
    this.#entries.set(key, { result, expires: this.#clock() + seconds * 1000 })
    while (this.#entries.size > this.#maxEntries) {
      const oldest = this.#entries.keys().next().value
      if (oldest === undefined) break
      this.#entries.delete(oldest)
    }
  }

  /** Forgets everything. */
  clear(): void {
    this.#entries.clear()
  }
}
