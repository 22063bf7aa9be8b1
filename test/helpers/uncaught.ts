/**
 * Records uncaught exceptions and unhandled rejections while a test file runs: a fault test
 * fails if the relay let one escape (in production it would end the process).
 */
import { afterAll, beforeAll } from 'vitest'

/** Starts recording for the current test file; the returned function hands over what was seen since its last call. */
export function watchUncaught(): () => unknown[] {
  let seen: unknown[] = []
  const record = (err: unknown) => void seen.push(err)
  beforeAll(() => {
    process.on('uncaughtException', record)
    process.on('unhandledRejection', record)
  })
  afterAll(() => {
    process.off('uncaughtException', record)
    process.off('unhandledRejection', record)
  })
  return () => {
    const out = seen
    seen = []
    return out
  }
}
