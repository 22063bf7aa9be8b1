/**
 * Many connections, silent ones, half-open ones and one that never reads: no single client can
 * use up the relay, limits are answered with a clean 421, and a normal client is still served.
 */

import { once } from 'node:events'
import { connect as connectTcp, type Socket } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { type FaultRelay, startFaultRelay } from '../helpers/fault-relay.js'
import { RawSmtp } from '../helpers/raw-smtp.js'
import { watchUncaught } from '../helpers/uncaught.js'

const uncaught = watchUncaught()
let r: FaultRelay | undefined
let sockets: Socket[] = []
afterEach(async () => {
  for (const s of sockets) s.destroy()
  sockets = []
  await r?.close()
  r = undefined
  expect(uncaught()).toEqual([])
})

/** Opens `count` connections from 127.0.0.1 and returns each one's first line from the server. */
async function openMany(port: number, count: number): Promise<string[]> {
  return Promise.all(
    Array.from({ length: count }, async () => {
      const socket = connectTcp(port, '127.0.0.1')
      socket.on('error', () => {})
      sockets.push(socket)
      const [data] = (await once(socket, 'data')) as [Buffer]
      return data.toString('latin1').split('\r\n')[0]!
    }),
  )
}

describe('connection limits', () => {
  it('200 silent connections from one address do not lock out another client', async () => {
    r = await startFaultRelay('submission')
    const greetings = await openMany(r.port, 200)
    expect(greetings.filter((g) => g.startsWith('220 '))).toHaveLength(50)
    expect(new Set(greetings.filter((g) => !g.startsWith('220 ')))).toEqual(
      new Set(['421 4.7.0 relay.test Too many connections from your address, try again later']),
    )
    await r.healthy({ localAddress: '127.0.0.2' })
  })

  it('answers 421 4.3.2 past the total limit and serves again once connections close', async () => {
    r = await startFaultRelay('submission', { limits: { connections: 20, connectionsPerClient: 100 } })
    const greetings = await openMany(r.port, 25)
    expect(greetings.filter((g) => g.startsWith('220 '))).toHaveLength(20)
    expect(new Set(greetings.filter((g) => !g.startsWith('220 ')))).toEqual(new Set(['421 4.3.2 relay.test Too many connections, try again later']))
    for (const s of sockets) s.destroy()
    sockets = []
    // The relay counts a socket until its own side has closed; wait for all of them.
    while (r.logs.lines.filter((l) => l.message === 'connection closed').length < 20) await r.logs.next('connection closed')
    await r.healthy()
  })

  it('refuses past the total limit on an implicit-TLS port by closing, without a plain-text reply', async () => {
    r = await startFaultRelay('submissions', { limits: { connections: 3, connectionsPerClient: 100 } })
    const held = await Promise.all([r.connect(), r.connect(), r.connect()])
    const socket = connectTcp(r.port, '127.0.0.1')
    socket.on('error', () => {})
    sockets.push(socket)
    const data: Buffer[] = []
    socket.on('data', (d: Buffer) => data.push(d))
    await once(socket, 'close')
    expect(Buffer.concat(data).length).toBe(0)
    for (const c of held) c.close()
  })

  it('limits new connections per minute from one address, by an injected clock, except for exempt networks', async () => {
    let now = Date.parse('2026-12-01T10:00:00Z')
    r = await startFaultRelay('submission', {
      limits: { connectionRatePerClient: 5, clientLimitExceptions: ['127.0.0.3'] },
      relay: { clock: () => now },
    })
    const first = await openMany(r.port, 5)
    expect(first.every((g) => g.startsWith('220 '))).toBe(true)
    expect(await openMany(r.port, 1)).toEqual(['421 4.7.0 relay.test Too many connections per minute from your address, try again later'])
    const exempt = await RawSmtp.connect(r.port, '127.0.0.1', '127.0.0.3')
    expect(exempt.greeting).toMatch(/^220 /)
    exempt.client.close()
    now += 2 * 60_000
    expect(await openMany(r.port, 1)).toEqual([expect.stringMatching(/^220 /)])
  })
})

describe('silent, half-open and non-reading clients', () => {
  it('lets clients that send nothing go after the first-command timeout with 421 4.4.2', async () => {
    r = await startFaultRelay('submission', { limits: { firstCommandTimeout: 300 } })
    const clients = await Promise.all(Array.from({ length: 20 }, () => r!.connect()))
    const talker = await r.connect()
    expect(await talker.command('EHLO client.test')).toMatch(/^250/)
    for (const c of clients) expect(await c.reply()).toBe('421 4.4.2 relay.test Timeout waiting for a command, closing connection')
    await Promise.all(clients.map((c) => c.closed))
    // A client that sent its first command is not subject to it.
    expect(await talker.command('NOOP')).toMatch(/^250/)
    talker.close()
    await r.healthy()
  })

  it('closes hundreds of half-open connections and serves a normal client meanwhile', async () => {
    r = await startFaultRelay('submission', { limits: { connectionsPerClient: 400, connections: 500 } })
    const clients = await Promise.all(Array.from({ length: 300 }, () => r!.connect()))
    for (const c of clients) {
      c.write('EHLO half-open.test\r\n')
      c.fin()
    }
    await r.healthy()
    await Promise.all(clients.map((c) => c.closed))
    await r.healthy()
  })

  it('stops reading from a client that never reads its replies, and serves others meanwhile', async () => {
    r = await startFaultRelay('submission')
    const { client } = await RawSmtp.connect(r.port)
    client.tcp.pause() // read nothing: our receive buffer fills, then the relay's send buffer
    const noops = Buffer.from('NOOP\r\n'.repeat(100_000))
    for (let i = 0; i < 20; i++) client.tcp.write(noops)
    await r.healthy()
    // The relay has stopped reading: 12 MB of commands cannot have been consumed without replies read.
    expect(client.tcp.writableLength).toBeGreaterThan(0)
    const closed = r.logs.next('connection closed', () => true)
    client.close()
    await closed
    await r.healthy()
  })
})
