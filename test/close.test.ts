import { once } from 'node:events'
import { connect } from 'node:net'
import { describe, expect, it } from 'vitest'
import type { Stage } from '../src/index.js'
import { memoryTransport } from '../src/testing/index.js'
import { RawSmtp } from './helpers/raw-smtp.js'
import { allowAll, startRelay } from './helpers/relay.js'

/** A stage that holds each message until released, and says when one arrived. */
function gate() {
  let release!: () => void
  const released = new Promise<void>((resolve) => (release = resolve))
  let arrived!: () => void
  const entered = new Promise<void>((resolve) => (arrived = resolve))
  const stage: Stage = {
    name: 'gate',
    async data(msg, next) {
      arrived()
      await Promise.race([released, new Promise((_, reject) => msg.signal.addEventListener('abort', () => reject(new Error('aborted'))))])
      return next()
    },
  }
  return { stage, entered, release }
}

describe('relay.close()', () => {
  it('answers idle clients 421 4.3.2, lets a message in DATA finish with 250, then stops listening', async () => {
    const { stage, entered, release } = gate()
    const transport = memoryTransport()
    const t = await startRelay({ stages: [allowAll, stage], transport })
    const { client: idle } = await RawSmtp.connect(t.port)
    await idle.command('EHLO idle.test')
    const { client: busy } = await RawSmtp.connect(t.port)
    expect(await busy.startMessage('a@example.com', ['b@example.org'])).toMatch(/^354/)
    busy.write('Subject: in flight\r\n\r\nbody\r\n.\r\n')
    await entered

    const closing = t.relay.close({ timeout: 10_000 })
    expect(await idle.reply()).toBe('421 4.3.2 Service shutting down, try again later')
    const refused = connect(t.port, '127.0.0.1')
    const [err] = (await once(refused, 'error')) as [NodeJS.ErrnoException]
    expect(err.code).toBe('ECONNREFUSED')

    release()
    expect(await busy.reply()).toMatch(/^250 2\.0\.0 /)
    expect(await busy.reply()).toBe('421 4.3.2 Service shutting down, try again later')
    await closing
    expect(transport.messages).toHaveLength(1)
    idle.close()
    busy.close()
  })

  it('cuts off a message still in the chain at the deadline without acknowledging or delivering it', async () => {
    const { stage, entered } = gate()
    const transport = memoryTransport()
    const t = await startRelay({ stages: [allowAll, stage], transport })
    const { client } = await RawSmtp.connect(t.port)
    expect(await client.startMessage('a@example.com', ['b@example.org'])).toMatch(/^354/)
    client.write('Subject: stuck\r\n\r\nbody\r\n.\r\n')
    await entered
    await t.relay.close({ timeout: 200 })
    await client.closed
    await expect(client.reply()).rejects.toThrow('connection closed')
    expect(transport.messages).toHaveLength(0)
  })
})
