/**
 * Event ids. An event the engine can announce twice (a queue that repeats a delivery attempt
 * after a crash, a bounce report received twice) gets an id derived from what makes it that
 * event, so its repeat has the same id and a receiver drops it; others get a random id.
 */
import { createHash, randomBytes } from 'node:crypto'

/** A stable id for the event named by `parts`. */
export function derivedEventId(...parts: ReadonlyArray<string | number | undefined>): string {
  const hash = createHash('sha256')
  for (const part of parts) hash.update(`${part ?? ''}\u0000`)
  return `ev_${hash.digest('base64url').slice(0, 22)}`
}

/** A fresh random id. */
export function randomEventId(): string {
  return `ev_${randomBytes(16).toString('base64url').slice(0, 22)}`
}
