/**
 * Leases whose holder never learned it holds them. A claim (of entries, a destination slot or a
 * probe) is one statement; when PostgreSQL goes away while it runs, the statement may have
 * committed though its answer never arrived, or the claim's next query failed after it: the rows
 * are leased under a token nobody in this process knows, and stay out of reach of every node until
 * the lease runs out (a minute by default). Every token a store hands out starts with a prefix of
 * its own, so the heartbeat can give back whatever carries the prefix and is not held now.
 *
 * The sweep must not see a claim whose answer is still on its way (it would free rows a worker
 * is about to use), so claims run through a gate: many at once, or the sweep alone.
 */
import { randomBytes } from 'node:crypto'

/** A prefix of lease tokens unique to one holder: hex only, safe to inline in SQL. */
export function tokenPrefix(): string {
  return `${randomBytes(6).toString('hex')}.`
}

/** How long a sweep waits for the claims under way before it gives up until the next heartbeat, in ms. */
const PATIENCE = 1000

/**
 * Claims run shared; a sweep runs once none is under way, and claims that come meanwhile wait for
 * it. A claim that hangs (a connection gone silent) makes the sweep give up after `patience`
 * instead of holding every other claim behind it.
 */
export class SweepGate {
  readonly #patience: number
  #active = 0
  #sweep: Promise<void> | undefined
  #drained: (() => void) | undefined

  constructor(patience = PATIENCE) {
    this.#patience = patience
  }

  /** Runs a claim: after the sweep under way, if any. */
  async claim<T>(work: () => Promise<T>): Promise<T> {
    while (this.#sweep) await this.#sweep
    this.#active++
    try {
      return await work()
    } finally {
      if (--this.#active === 0) this.#drained?.()
    }
  }

  /**
   * Runs `sweep` once no claim is under way (one sweep at a time); skips it if claims are still
   * under way after the patience. Rejects as `sweep` does.
   */
  sweep(sweep: () => Promise<void>): Promise<void> {
    if (this.#sweep) return this.#sweep
    const run = (async () => {
      if (this.#active && !(await this.#drain())) return
      await sweep()
    })()
    // Claims waiting on it go on whether the sweep worked or not.
    this.#sweep = run.catch(() => {}).finally(() => (this.#sweep = undefined))
    return run
  }

  /** Resolves true once no claim is under way, false if some still are after the patience. */
  #drain(): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        this.#drained = undefined
        resolve(false)
      }, this.#patience).unref()
      this.#drained = () => {
        this.#drained = undefined
        clearTimeout(timer)
        resolve(true)
      }
    })
  }
}
