/**
 * The order rules of a chain. Stages declare what they `modify` and what signers `seal`; a
 * chain is refused when it is built if something changes what an earlier signer sealed: after
 * DKIM (`seals: 'message'`) only new trace fields may be added; after S/MIME (`seals: 'body'`)
 * the body must not change, except by another S/MIME layer wrapping it whole (sign, then encrypt).
 */
import { RelayError } from './errors.js'
import type { Modifies, Seals } from './types.js'

/** Weakest first. */
export const MODIFIES_ORDER: readonly Modifies[] = ['trace', 'headers', 'body']
/** Weakest first. */
export const SEALS_ORDER: readonly Seals[] = ['body', 'message']
/** The most a seal still allows to change after it. */
const ALLOWED_AFTER: Record<Seals, Modifies> = { body: 'headers', message: 'trace' }

/**
 * What a part of a chain declares.
 *
 * @category Core
 */
export interface Declarations {
  /** What the stage or transport may change (see `Stage.modifies`). */
  readonly modifies?: Modifies | undefined
  /** What its signature fixes, for signers (see `Stage.seals`). */
  readonly seals?: Seals | undefined
}

function strongest<T extends string>(order: readonly T[], values: ReadonlyArray<T | undefined>): T | undefined {
  let rank = -1
  for (const value of values) if (value !== undefined) rank = Math.max(rank, order.indexOf(value))
  return rank < 0 ? undefined : order[rank]
}

/**
 * The declarations of several parts taken together: the most any of them modifies and seals.
 * A transport made of others (a route, a nested pipeline) declares this, so the order lint of
 * the chain in front of it sees what they do.
 *
 * @example
 * ```ts
 * const { modifies, seals } = combinedDeclarations([signingPipeline, plainTransport])
 * ```
 *
 * @category Core
 */
export function combinedDeclarations(parts: readonly Declarations[]): Declarations {
  const modifies = strongest(
    MODIFIES_ORDER,
    parts.map((p) => p.modifies),
  )
  const seals = strongest(
    SEALS_ORDER,
    parts.map((p) => p.seals),
  )
  return { ...(modifies ? { modifies } : {}), ...(seals ? { seals } : {}) }
}

/** Throws `ERR_RELAY_UNSAFE_ORDER` if an item modifies what an earlier one sealed (see the file header). */
export function checkOrder(items: ReadonlyArray<Declarations & { readonly name: string }>): void {
  let seal: { by: string; what: Seals } | undefined
  for (const item of items) {
    // An S/MIME layer after another wraps the sealed entity whole (sign, then encrypt): it changes
    // the body, but not what the earlier layer signed.
    const wraps = seal?.what === 'body' && item.seals === 'body'
    if (item.modifies && seal && !wraps && MODIFIES_ORDER.indexOf(item.modifies) > MODIFIES_ORDER.indexOf(ALLOWED_AFTER[seal.what])) {
      throw new RelayError(
        'ERR_RELAY_UNSAFE_ORDER',
        `"${item.name}" modifies the message (${item.modifies}) after "${seal.by}" sealed its ${seal.what}; move it before "${seal.by}"`,
      )
    }
    if (item.seals && (!seal || SEALS_ORDER.indexOf(item.seals) > SEALS_ORDER.indexOf(seal.what))) seal = { by: item.name, what: item.seals }
  }
}
