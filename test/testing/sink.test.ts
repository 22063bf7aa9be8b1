/**
 * The test sink's own bookkeeping, which fault tests count on: a sender that leaves mid-DATA is a
 * transaction the sink closes, once it has read what that sender had sent.
 */
import { describe, expect, it } from 'vitest'
import { startSink } from '../../src/testing/index.js'
import { afterTest } from '../helpers/after-test.js'
import { RawSmtp } from '../helpers/raw-smtp.js'

describe('startSink', () => {
  it('waitForIdle resolves once a sender that left mid-DATA behind a held read is closed, and rejects while it is still held', async () => {
    let release!: () => void
    const released = new Promise<void>((resolve) => (release = resolve))
    let entered!: () => void
    const inGate = new Promise<void>((resolve) => (entered = resolve))
    const sink = await startSink({
      gate: () => {
        entered()
        return released
      },
    })
    afterTest(() => sink.close())
    await sink.waitForIdle(100) // nothing in DATA yet: at once

    const { client } = await RawSmtp.connect(sink.port)
    expect(await client.command('EHLO client.test')).toMatch(/^250/)
    expect(await client.command('MAIL FROM:<a@example.com>')).toMatch(/^250 /)
    expect(await client.command('RCPT TO:<b@example.org>')).toMatch(/^250 /)
    expect(await client.command('DATA')).toMatch(/^354 /)
    await inGate
    // Far more than the sink's stream buffers take while its read is held, then a FIN without the final dot.
    client.socket.end(`Subject: cut\r\n\r\n${`${'x'.repeat(998)}\r\n`.repeat(10_000)}`)
    await expect(sink.waitForIdle(200)).rejects.toThrow(/1 transactions in DATA after 200 ms/)
    expect(sink.inData).toBe(1)

    release()
    await sink.waitForIdle(5000)
    expect(sink.inData).toBe(0)
    expect(sink.messages).toHaveLength(0)
  })
})
