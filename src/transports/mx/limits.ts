/**
 * Per-destination concurrency: at most `limit` holders per key (a recipient domain, an MX
 * address), the others wait in arrival order. Postfix's `default_destination_concurrency_limit`
 * plays this role for domains; the per-address limit keeps a burst to one big provider from
 * opening more connections to one of its hosts than it tolerates. Keys without holders or waiters
 * are forgotten, so memory follows the destinations in use, not all destinations ever seen.
 */

interface Slot {
  active: number
  readonly waiting: Array<() => void>
}

/**
 * A keyed semaphore (see the file header).
 *
 * @example
 * ```ts
 * const perDomain = new KeyedLimiter(20)
 * const release = await perDomain.acquire('example.org')
 * try { await deliver() } finally { release() }
 * ```
 */
export class KeyedLimiter {
  readonly #limit: number
  readonly #slots = new Map<string, Slot>()

  constructor(limit: number) {
    this.#limit = Math.max(1, Math.floor(limit))
  }

  /** Holders of `key` right now. */
  active(key: string): number {
    return this.#slots.get(key)?.active ?? 0
  }

  /** Resolves, in arrival order, once `key` has a free slot; call the returned function exactly once to free it. */
  acquire(key: string): Promise<() => void> {
    let slot = this.#slots.get(key)
    if (!slot) this.#slots.set(key, (slot = { active: 0, waiting: [] }))
    const held = slot
    let released = false
    const release = () => {
      if (released) return
      released = true
      const next = held.waiting.shift()
      if (next) return next()
      held.active--
      if (held.active === 0) this.#slots.delete(key)
    }
    if (held.active < this.#limit) {
      held.active++
      return Promise.resolve(release)
    }
    // A waiter inherits the slot of the holder that releases it: `active` stays as it is.
    return new Promise((resolve) => held.waiting.push(() => resolve(release)))
  }

  /** Runs `work` holding a slot of `key`. */
  async run<T>(key: string, work: () => Promise<T>): Promise<T> {
    const release = await this.acquire(key)
    try {
      return await work()
    } finally {
      release()
    }
  }
}
