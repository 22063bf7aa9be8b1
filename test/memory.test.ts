import { describe, expect, it } from 'vitest'
import { startSink } from '../src/testing/index.js'
import { MiB, relayPeakGrowth } from './helpers/memory.js'

describe('memory', () => {
  it('relays a 100 MB message through a transforming and a spooling stage with peak RSS growth under 64 MB', async () => {
    const sink = await startSink({ keepContent: false })
    try {
      const { peak, growth } = await relayPeakGrowth({ chain: 'transform-and-spool', upstreamPort: sink.port, size: 100 * MiB })
      const [, big] = await sink.waitForMessages(2)
      expect(big!.size).toBeGreaterThan(100 * MiB)
      console.log(`relay peak RSS ${peak.toFixed(1)} MiB, growth ${growth.toFixed(1)} MiB for a 100 MiB message`)
      expect(growth).toBeLessThan(64)
    } finally {
      await sink.close()
    }
  })
})
