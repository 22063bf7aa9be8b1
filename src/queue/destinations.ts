/**
 * Per-destination limits of the queue's worker, like Postfix's qmgr: at most `concurrency`
 * deliveries to one next hop at a time (the others wait their turn, first come first served), and
 * a next hop that does not answer is throttled: its mail waits without new connection attempts
 * until a backoff period has passed, then one delivery probes it; the backoff doubles while the
 * probes fail. When a probe gets through, the destination's backlog is woken and drains at the
 * configured concurrency.
 */
import type { Clock } from '../shared/clock.js'

/**
 * Options of the per-destination limits.
 *
 * @category Queue
 */
export interface DestinationLimits {
  /** Deliveries at once to one next hop. Default 5 (Postfix `initial_destination_concurrency`). */
  concurrency?: number
  /** The first backoff of a dead destination, in ms. Default 60 000. */
  backoff?: number
  /** The longest, in ms. Default 3 600 000. */
  maxBackoff?: number
}

/**
 * What the worker asks of per-destination limits: the in-process ones (`Destinations`), or the
 * ones a shared store keeps for every node (`PgQueueStore.destinations`).
 *
 * @category Queue
 */
export interface DestinationGate {
  /** True if `name` is throttled now and its probe is not due (its mail should wait). */
  blocked(name: string): boolean
  /** Marks a destination found waiting at start: probe it. */
  assumeDown(name: string): void
  /** Waits for a delivery slot; undefined if the destination is (or became) throttled. */
  acquire(name: string): Promise<((answered: boolean) => void) | undefined>
  /** Destinations throttled now whose probe is due. */
  probesDue(): string[]
  /** Forgets every throttle (an operator's flush). */
  reset(): void
  /** Refreshes what other nodes changed (the worker's poll). */
  sync?(): Promise<void>
  /** Lets deliveries waiting for a slot go (the queue closes). */
  close?(): Promise<void>
}

interface Destination {
  readonly name: string
  active: number
  waiters: Array<(slot: boolean) => void>
  /** Until when it is throttled (0: not). */
  downUntil: number
  backoff: number
  /** A probe is under way: no other delivery may start. */
  probing: boolean
}

/** The state of every destination the worker has seen. */
export class Destinations implements DestinationGate {
  readonly #limits: Required<DestinationLimits>
  readonly #clock: Clock
  readonly #all = new Map<string, Destination>()
  readonly #onUp: (name: string) => void

  /** `onUp` hears of a throttled destination that answered again (its backlog may drain). */
  constructor(limits: DestinationLimits, clock: Clock, onUp: (name: string) => void = () => {}) {
    this.#limits = { concurrency: limits.concurrency ?? 5, backoff: limits.backoff ?? 60_000, maxBackoff: limits.maxBackoff ?? 3_600_000 }
    this.#clock = clock
    this.#onUp = onUp
  }

  #get(name: string): Destination {
    let d = this.#all.get(name)
    if (!d) this.#all.set(name, (d = { name, active: 0, waiters: [], downUntil: 0, backoff: this.#limits.backoff, probing: false }))
    return d
  }

  /** True if `name` is throttled now and its probe is not due (its mail should wait). */
  blocked(name: string): boolean {
    const d = this.#all.get(name)
    return !!d && d.downUntil > 0 && (d.probing || d.downUntil > this.#clock())
  }

  /** Marks a destination found waiting at start (its state was lost with the last process): probe it. */
  assumeDown(name: string): void {
    const d = this.#get(name)
    if (!d.downUntil) d.downUntil = this.#clock()
  }

  /**
   * Waits for a delivery slot. Resolves with a release function, or undefined if the destination
   * is (or became) throttled: then the delivery must not start.
   */
  async acquire(name: string): Promise<((answered: boolean) => void) | undefined> {
    const d = this.#get(name)
    const probe = d.downUntil > 0
    if (probe) {
      // Throttled: only one probe, once the backoff is over.
      if (d.probing || d.downUntil > this.#clock()) return undefined
      d.probing = true
      d.active++
    } else if (d.active >= this.#limits.concurrency) {
      // The slot is counted for us by whoever frees it (see #next), so nobody can take it between.
      const got = await new Promise<boolean>((resolve) => d.waiters.push(resolve))
      if (!got) return undefined
    } else d.active++
    let done = false
    return (answered) => {
      if (done) return
      done = true
      d.active--
      if (answered) this.#up(d)
      else this.#down(d, probe)
      this.#next(d)
    }
  }

  #up(d: Destination): void {
    const wasDown = d.downUntil > 0
    d.downUntil = 0
    d.probing = false
    d.backoff = this.#limits.backoff
    if (wasDown) this.#onUp(d.name)
  }

  /** A delivery got no answer: the first one throttles the destination, a failed probe doubles the backoff. */
  #down(d: Destination, probe: boolean): void {
    if (probe) {
      d.probing = false
      d.backoff = Math.min(d.backoff * 2, this.#limits.maxBackoff)
    } else if (d.downUntil > 0) return // the others that were under way when it went down
    d.downUntil = this.#clock() + d.backoff
    // Whoever waits for a slot of a dead destination waits in vain: let them go (their mail waits).
    for (const waiter of d.waiters.splice(0)) waiter(false)
  }

  #next(d: Destination): void {
    while (d.waiters.length && d.active < this.#limits.concurrency && d.downUntil === 0) {
      d.active++
      d.waiters.shift()!(true)
    }
  }

  /** Destinations throttled now whose probe is due (the worker probes each with one entry). */
  probesDue(): string[] {
    const now = this.#clock()
    return [...this.#all].filter(([, d]) => d.downUntil > 0 && !d.probing && d.downUntil <= now).map(([name]) => name)
  }

  /** Forgets every throttle (an operator's flush). */
  reset(): void {
    for (const d of this.#all.values()) this.#up(d)
  }
}
