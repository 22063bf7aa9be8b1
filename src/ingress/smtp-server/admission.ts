/**
 * Who may open a connection, decided the moment a socket is accepted, before smtp-server or any
 * TLS handshake spends work on it (Postfix `smtpd_client_connection_count_limit` and
 * `smtpd_client_connection_rate_limit`, enforced by anvil). Three limits: connections in all,
 * connections from one client address, and new connections per minute from one client address,
 * so that one client cannot use up the relay for everyone else. Addresses in `exempt` skip the
 * per-client limits (Postfix `smtpd_client_event_limit_exceptions`), never the total.
 *
 * Behind a proxy the client is not the TCP peer. A PROXY protocol listener admits a connection
 * once its header named the client; a trusted XCLIENT peer is admitted without per-client limits
 * (it speaks for many clients), and each client it names is admitted with {@link admitClient}.
 */
import { normalizeIp } from '../../shared/ip.js'

/** Why a connection was refused. */
export type Refusal = 'total' | 'per-client' | 'rate'

/** The limits an {@link Admission} enforces. */
export interface AdmissionLimits {
  total: number
  perClient: number
  /** New connections per minute from one address; `Infinity` for none. */
  ratePerClient: number
  /** True for addresses the per-client limits do not apply to. */
  exempt(ip: string): boolean
  /** Milliseconds since the epoch; injectable for tests. */
  now(): number
}

const MINUTE = 60_000

interface Rate {
  /** Start of the current one-minute window. */
  window: number
  current: number
  previous: number
  /** Refusals in the current window, so a flood is logged once per window, not per socket. */
  refused: number
}

/** Counts open connections and connection rates per client address. */
export class Admission {
  readonly #limits: AdmissionLimits
  readonly #open = new Map<string, number>()
  readonly #rates = new Map<string, Rate>()
  #total = 0
  #swept = 0

  constructor(limits: AdmissionLimits) {
    this.#limits = limits
  }

  /** Connections open now. */
  get total(): number {
    return this.#total
  }

  /**
   * Admits a connection from `address` (counted until {@link release}) or says why not, and
   * whether this is the first refusal of that address in the current minute (worth a log line).
   */
  admit(address: string, options: { clientLimits?: boolean } = {}): { refused?: Refusal; first?: boolean } {
    const ip = normalizeIp(address)
    const now = this.#limits.now()
    const exempt = options.clientLimits === false || this.#limits.exempt(ip)
    const rate = exempt ? undefined : this.#rate(ip, now)
    const refused: Refusal | undefined =
      this.#total >= this.#limits.total
        ? 'total'
        : exempt
          ? undefined
          : (this.#open.get(ip) ?? 0) >= this.#limits.perClient
            ? 'per-client'
            : rate && this.#estimate(rate, now) >= this.#limits.ratePerClient
              ? 'rate'
              : undefined
    if (rate) rate.current++
    if (refused) return { refused, first: !rate || rate.refused++ === 0 }
    this.#total++
    this.#open.set(ip, (this.#open.get(ip) ?? 0) + 1)
    return {}
  }

  /** Ends the count of an admitted connection. */
  release(address: string): void {
    this.releaseClient(address)
    this.#total = Math.max(0, this.#total - 1)
  }

  /**
   * Applies the per-client limits to `address` on a connection that is already counted (the
   * client an XCLIENT command named); counted until {@link releaseClient}.
   */
  admitClient(address: string): { refused?: Refusal; first?: boolean } {
    const ip = normalizeIp(address)
    if (this.#limits.exempt(ip)) return (this.#open.set(ip, (this.#open.get(ip) ?? 0) + 1), {})
    const now = this.#limits.now()
    const rate = this.#rate(ip, now)
    const refused: Refusal | undefined =
      (this.#open.get(ip) ?? 0) >= this.#limits.perClient
        ? 'per-client'
        : this.#estimate(rate, now) >= this.#limits.ratePerClient
          ? 'rate'
          : undefined
    rate.current++
    if (refused) return { refused, first: rate.refused++ === 0 }
    this.#open.set(ip, (this.#open.get(ip) ?? 0) + 1)
    return {}
  }

  /** Ends the count of a client admitted with {@link admitClient}. */
  releaseClient(address: string): void {
    const ip = normalizeIp(address)
    const open = this.#open.get(ip) ?? 0
    if (open <= 1) this.#open.delete(ip)
    else this.#open.set(ip, open - 1)
  }

  #rate(ip: string, now: number): Rate {
    const window = now - (now % MINUTE)
    if (window !== this.#swept) this.#sweep(window)
    let rate = this.#rates.get(ip)
    if (!rate) this.#rates.set(ip, (rate = { window, current: 0, previous: 0, refused: 0 }))
    if (rate.window !== window) {
      rate.previous = rate.window === window - MINUTE ? rate.current : 0
      rate.current = 0
      rate.refused = 0
      rate.window = window
    }
    return rate
  }

  /** Sliding-window estimate: this minute's count plus the part of the last minute still in view. */
  #estimate(rate: Rate, now: number): number {
    return rate.current + rate.previous * (1 - (now - rate.window) / MINUTE)
  }

  /** Once a minute, forgets addresses not seen for two minutes: memory stays bounded by recent clients. */
  #sweep(window: number): void {
    this.#swept = window
    for (const [ip, rate] of this.#rates) if (rate.window < window - MINUTE) this.#rates.delete(ip)
  }
}
