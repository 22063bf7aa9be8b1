/**
 * `headers()`: header hygiene and labelling — strip fields that must not leave the organisation
 * (`X-Originating-IP`, the `Received` fields of internal hosts, a mail client's `User-Agent`), set
 * fields to fixed or computed values, add fields such as an `Organization`. Edits go through the
 * header block, so the body is never read again; untouched fields keep their exact bytes.
 * Removals run first, then `set`, then `add`.
 *
 * Place it before any signer: removing or setting fields after DKIM would break the signature,
 * and the pipeline refuses that order. A stage that only adds fields declares `modifies:
 * 'trace'` and may follow DKIM.
 */
import { HeaderBlock, type HeaderField } from '../core/body/header-block.js'
import { RelayError } from '../core/errors.js'
import type { Message, Stage } from '../core/types.js'

/**
 * A field value: fixed, or computed per message (`undefined` leaves the field out).
 *
 * @category Stages
 */
export type HeaderValue = string | ((msg: Message) => string | undefined)

/**
 * Which fields to remove: a name (any case), a pattern on the name, or a name or pattern with a
 * condition on the (unfolded) value.
 *
 * @category Stages
 */
export type HeaderMatcher =
  | string
  | RegExp
  | {
      /** The field name: exact (case-insensitive) or a pattern. */
      readonly name: string | RegExp
      /** The condition on the unfolded value: a pattern, or a function. */
      readonly value: RegExp | ((value: string, msg: Message) => boolean)
    }

/**
 * Options of {@link headers}.
 *
 * @category Stages
 */
export interface HeadersOptions {
  /** Fields to remove. */
  remove?: readonly HeaderMatcher[]
  /** Fields to set: the first field of that name is replaced in place and any others removed; appended if absent. */
  set?: Readonly<Record<string, HeaderValue>>
  /** Fields to add at the top of the header section, in the order given. */
  add?: Readonly<Record<string, HeaderValue>>
  /** Edit only messages this accepts, e.g. `(msg) => msg.session.user !== undefined` for submissions. Default: all. */
  when?: (msg: Message) => boolean
}

/**
 * Creates a header-editing stage.
 *
 * @example
 * ```ts
 * const hygiene = headers({
 *   remove: ['X-Originating-IP', { name: 'Received', value: /\bby [\w.-]+\.corp\.example\b/ }],
 *   add: { Organization: 'Example Corp' },
 *   when: (msg) => msg.session.user !== undefined,
 * })
 * ```
 *
 * @category Stages
 */
export function headers(options: HeadersOptions): Stage {
  const remove = options.remove ?? []
  const set = Object.entries(options.set ?? {})
  const add = Object.entries(options.add ?? {})
  if (!remove.length && !set.length && !add.length) throw invalid('give at least one of remove, set or add')
  for (const matcher of remove) checkMatcher(matcher)
  // Names, and fixed values, are checked now, so that a typo fails when the chain is built.
  for (const [name, value] of [...set, ...add]) {
    if (typeof value !== 'string' && typeof value !== 'function') throw invalid(`the value of ${name} must be a string or a function`)
    try {
      HeaderBlock.from([[name, typeof value === 'string' ? value : '']])
    } catch (err) {
      throw invalid((err as Error).message)
    }
  }

  return {
    name: 'headers',
    modifies: remove.length || set.length ? 'headers' : 'trace',
    async data(msg, next) {
      if (options.when && !options.when(msg)) return next()
      for (const matcher of remove) removeMatching(msg, matcher)
      for (const [name, value] of set) {
        const text = resolveValue(value, msg)
        if (text !== undefined) msg.headers.set(name, text)
      }
      // add() prepends, so going backwards keeps the order given.
      for (const [name, value] of [...add].reverse()) {
        const text = resolveValue(value, msg)
        if (text !== undefined) msg.headers.add(name, text)
      }
      return next()
    },
  }
}

function resolveValue(value: HeaderValue, msg: Message): string | undefined {
  return typeof value === 'function' ? value(msg) : value
}

function removeMatching(msg: Message, matcher: HeaderMatcher): void {
  const name = typeof matcher === 'string' || matcher instanceof RegExp ? matcher : matcher.name
  const test = typeof matcher === 'object' && !(matcher instanceof RegExp) ? matcher.value : undefined
  const where = test && ((field: HeaderField) => (typeof test === 'function' ? test(field.value, msg) : field.value.search(test) >= 0))
  const names = typeof name === 'string' ? [name] : [...new Set(msg.headers.fields().map((f) => f.name))].filter((n) => n && n.search(name) >= 0)
  for (const n of names) msg.headers.remove(n, where || undefined)
}

function checkMatcher(matcher: HeaderMatcher): void {
  if (typeof matcher === 'string' || matcher instanceof RegExp) return
  const { name, value } = matcher ?? {}
  const nameOk = typeof name === 'string' || name instanceof RegExp
  if (!nameOk || !(value instanceof RegExp || typeof value === 'function'))
    throw invalid(`remove: ${JSON.stringify(matcher)} is not a name, a RegExp or { name, value }`)
}

function invalid(message: string): RelayError {
  return new RelayError('ERR_RELAY_INVALID_OPTION', `headers: ${message}`)
}
