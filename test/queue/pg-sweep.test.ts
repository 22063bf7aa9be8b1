/**
 * The gate between claims and the heartbeat's sweep of leases nobody holds (src/queue/pg-sweep.ts):
 * a sweep never runs while a claim's answer may still be on its way, and claims never start
 * while a sweep runs.
 */
import { describe, expect, it } from 'vitest'
import { SweepGate, tokenPrefix } from '../../src/queue/pg-sweep.js'

function deferred() {
  let resolve!: () => void
  const promise = new Promise<void>((r) => (resolve = r))
  return { promise, resolve }
}

describe('SweepGate', () => {
  it('runs a sweep only after the claims under way, and holds claims that come meanwhile until it is done', async () => {
    const gate = new SweepGate()
    const order: string[] = []
    const first = deferred()
    const claim1 = gate.claim(async () => {
      order.push('claim 1 starts')
      await first.promise
      order.push('claim 1 ends')
    })
    const sweepDone = deferred()
    const sweep = gate.sweep(async () => {
      order.push('sweep starts')
      await sweepDone.promise
      order.push('sweep ends')
    })
    const claim2 = gate.claim(async () => void order.push('claim 2 runs'))
    await new Promise((r) => setImmediate(r))
    expect(order).toEqual(['claim 1 starts'])
    first.resolve()
    await claim1
    await new Promise((r) => setImmediate(r))
    expect(order).toEqual(['claim 1 starts', 'claim 1 ends', 'sweep starts'])
    sweepDone.resolve()
    await Promise.all([sweep, claim2])
    expect(order).toEqual(['claim 1 starts', 'claim 1 ends', 'sweep starts', 'sweep ends', 'claim 2 runs'])
  })

  it('lets waiting claims go on after a failed sweep, whose caller gets the error', async () => {
    const gate = new SweepGate()
    const sweep = gate.sweep(async () => {
      throw new Error('PostgreSQL is down')
    })
    const claim = gate.claim(async () => 'claimed')
    await expect(sweep).rejects.toThrow('PostgreSQL is down')
    await expect(claim).resolves.toBe('claimed')
  })

  it('skips a sweep that a hung claim would hold up past its patience, and lets the claims after it run', async () => {
    const gate = new SweepGate(20)
    void gate.claim(() => new Promise<void>(() => {})) // a query on a connection gone silent
    let swept = false
    await gate.sweep(async () => {
      swept = true
    })
    expect(swept).toBe(false)
    await expect(gate.claim(async () => 'claimed')).resolves.toBe('claimed')
  })

  it('gives every holder its own hex prefix', () => {
    const a = tokenPrefix()
    expect(a).toMatch(/^[0-9a-f]{12}\.$/)
    expect(tokenPrefix()).not.toBe(a)
  })
})
