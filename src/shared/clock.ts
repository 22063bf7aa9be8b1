/** Time, injectable: windows and schedules read it through a clock so tests can move it by hand. */

/**
 * Milliseconds since the epoch, like `Date.now`.
 *
 * @category Utilities
 */
export type Clock = () => number
