import { describe, expect, it } from 'vitest'
import { createTransport } from 'nodemailer'
import { startSink } from '../src/testing/index.js'
import { bigMessage, startMeasuredRelay } from './helpers/memory.js'

const MiB = 1024 * 1024

describe('memory', () => {
  it('relays a 100 MB message through a transforming and a spooling stage with peak RSS growth under 64 MB', async () => {
    const sink = await startSink({ keepContent: false })
    const relay = await startMeasuredRelay(sink.port, 'spool')
    try {
      const client = createTransport({ host: '127.0.0.1', port: relay.port, ignoreTLS: true })
      const envelope = { from: 'a@example.com', to: ['b@example.org'] }
      await client.sendMail({ envelope, raw: 'Subject: warm-up\r\n\r\nsmall\r\n' })
      await relay.mark()
      await client.sendMail({ envelope, raw: bigMessage(100 * MiB) })
      const growth = await relay.growth()
      client.close()
      const [, big] = await sink.waitForMessages(2)
      expect(big!.size).toBeGreaterThan(100 * MiB)
      console.log(`relay peak RSS growth ${growth.toFixed(1)} MiB for a 100 MiB message`)
      expect(growth).toBeLessThan(64)
    } finally {
      await relay.stop()
      await sink.close()
    }
  })
})
