/** Durations in options: milliseconds as a number, or a string such as `'30s'`, `'15m'`, `'1h'`, `'1d'`. */
import { RelayError } from '../core/errors.js'

/**
 * A duration: milliseconds, or a number with a unit (`s`, `m`, `h`, `d`), e.g. `'1d'`.
 *
 * @category Utilities
 */
export type Duration = number | `${number}${'s' | 'm' | 'h' | 'd'}`

const UNIT = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const
const NAMES = [
  [86_400_000, 'day'],
  [3_600_000, 'hour'],
  [60_000, 'minute'],
  [1000, 'second'],
] as const

/** Milliseconds in `value`; a `RelayError` naming `option` if it is not a positive duration. */
export function toMs(value: Duration, option: string): number {
  const match = typeof value === 'string' ? /^(\d+(?:\.\d+)?)([smhd])$/.exec(value) : null
  const ms = typeof value === 'number' ? value : match ? Number(match[1]) * UNIT[match[2] as keyof typeof UNIT] : NaN
  if (!Number.isFinite(ms) || ms <= 0) {
    throw new RelayError(
      'ERR_RELAY_INVALID_OPTION',
      `${option} must be a positive duration (ms, or e.g. '30s', '15m', '1d'), got ${JSON.stringify(value)}`,
    )
  }
  return ms
}

/** Whole seconds in `value` (counters in Redis expire in whole seconds). */
export function toSeconds(value: Duration, option: string): number {
  const ms = toMs(value, option)
  if (ms % 1000) throw new RelayError('ERR_RELAY_INVALID_OPTION', `${option} must be whole seconds, got ${JSON.stringify(value)}`)
  return ms / 1000
}

/** `86400` → `'1 day'`, `7200` → `'2 hours'`, `90` → `'90 seconds'`. */
export function describeSeconds(seconds: number): string {
  const ms = seconds * 1000
  const [unit, name] = NAMES.find(([unit]) => ms % unit === 0) ?? NAMES[3]
  const n = ms / unit
  return `${n} ${name}${n === 1 ? '' : 's'}`
}
