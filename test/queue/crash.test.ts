/**
 * SIGKILL at a few hundred random points while clients send and the queue delivers: nothing that
 * got a 250 is lost, nothing arrives half, and every duplicate is a delivery that was in flight
 * at a kill. See crash-loop.ts; `npm run soak` runs the same with many more kills.
 */
import { describe, expect, it } from 'vitest'
import { crashLoop } from '../helpers/crash-loop.js'

const KILLS = Number(process.env.RELAYCHAIN_QUEUE_KILLS ?? 300)

describe('the queue under SIGKILL', () => {
  it(`loses nothing acknowledged and repeats only what was in flight, over ${KILLS} kills`, { timeout: 30 * 60_000 }, async () => {
    const counts = await crashLoop(KILLS)
    console.log(`queue crash test: ${JSON.stringify(counts)}`)
    expect(counts.kills).toBe(KILLS)
    expect(counts.acknowledged).toBeGreaterThan(KILLS / 2) // the kills fell under load
    expect(counts.lost).toBe(0)
    expect(counts.half).toBe(0)
    expect(counts.duplicates).toBeLessThanOrEqual(counts.inFlightAtKills)
  })
})
