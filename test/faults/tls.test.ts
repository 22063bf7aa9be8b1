/**
 * Broken TLS from clients: garbage where a ClientHello belongs, a handshake that stalls or is cut
 * off, garbage after STARTTLS, an over-long line inside a TLS session. Each ends that connection
 * only; the next client gets its exact reply.
 */

import { once } from 'node:events'
import { connect as connectTcp, type Socket } from 'node:net'
import { Duplex } from 'node:stream'
import { connect as connectTls } from 'node:tls'
import { afterEach, describe, expect, it } from 'vitest'
import { type FaultRelay, startFaultRelay } from '../helpers/fault-relay.js'
import { watchUncaught } from '../helpers/uncaught.js'

const uncaught = watchUncaught()
let r: FaultRelay | undefined
afterEach(async () => {
  await r?.close()
  r = undefined
  expect(uncaught()).toEqual([])
})

async function tcp(port: number): Promise<Socket> {
  const socket = connectTcp(port, '127.0.0.1')
  socket.on('error', () => {})
  await once(socket, 'connect')
  return socket
}

/** Reads a socket line by line (CRLF stripped). */
function lines(socket: Socket): () => Promise<string> {
  let buffer = ''
  const waiting: Array<(line: string) => void> = []
  const ready: string[] = []
  socket.on('data', (data: Buffer) => {
    buffer += data.toString('latin1')
    for (let nl = buffer.indexOf('\r\n'); nl >= 0; nl = buffer.indexOf('\r\n')) {
      const line = buffer.slice(0, nl)
      buffer = buffer.slice(nl + 2)
      const waiter = waiting.shift()
      if (waiter) waiter(line)
      else ready.push(line)
    }
  })
  return () => (ready.length ? Promise.resolve(ready.shift()!) : new Promise((resolve) => waiting.push(resolve)))
}

/** The first bytes of a TLS 1.2 ClientHello record, cut short. */
const PARTIAL_HELLO = Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03])

describe('implicit TLS (submissions)', () => {
  it('closes a client that sends plain text instead of a ClientHello, logs it once, and serves the next', async () => {
    r = await startFaultRelay('submissions')
    const socket = await tcp(r.port)
    const logged = r.logs.next('TLS handshake failed')
    socket.write('this is not a TLS ClientHello\r\n\r\n')
    await Promise.all([once(socket, 'close'), logged])
    expect(r.logs.lines.filter((l) => l.message === 'TLS handshake failed')).toHaveLength(1)
    await r.healthy()
  })

  it('lets a handshake that stalls go after the first-command timeout, serving others meanwhile', async () => {
    r = await startFaultRelay('submissions', { limits: { firstCommandTimeout: 400 } })
    const silent = await tcp(r.port)
    const stalled = await tcp(r.port)
    stalled.write(PARTIAL_HELLO)
    await r.healthy()
    await Promise.all([once(silent, 'close'), once(stalled, 'close')])
    await r.healthy()
  })

  it.each(['RST', 'FIN'] as const)('survives a client that sends %s in the middle of the handshake', async (fault) => {
    r = await startFaultRelay('submissions')
    const socket = await tcp(r.port)
    const port = socket.localPort
    const closed = r.logs.next('connection closed', (f) => f.port === port)
    socket.write(PARTIAL_HELLO)
    if (fault === 'RST') socket.resetAndDestroy()
    else socket.end()
    await closed
    await r.healthy()
  })

  it('closes a TLS client that sends binary garbage as commands after ten unrecognized commands', async () => {
    r = await startFaultRelay('submissions')
    const client = await r.connect()
    for (let i = 0; i < 12; i++) client.write(Buffer.concat([Buffer.from([0x00, 0xff, 0x1b, 0x80]), Buffer.from(`${i}\r\n`)]))
    await client.closed
    await r.healthy()
  })
})

describe.each(['smtp', 'submission'] as const)('STARTTLS on a %s listener', (mode) => {
  it('ends the session of a client that sends garbage after 220 Ready to start TLS', async () => {
    r = await startFaultRelay(mode)
    const client = await r.connect()
    expect(await client.command('EHLO client.test')).toMatch(/^250/)
    expect(await client.command('STARTTLS')).toBe('220 Ready to start TLS')
    client.write('EHLO this is plain text, not a ClientHello\r\n')
    await client.closed
    await r.healthy()
  })

  it('ends the session of a client that resets once the server answered its ClientHello', async () => {
    r = await startFaultRelay(mode)
    const socket = await tcp(r.port)
    const read = lines(socket)
    expect(await read()).toMatch(/^220 /)
    socket.write('EHLO client.test\r\n')
    while (!/^250 /.test(await read()));
    socket.write('STARTTLS\r\n')
    expect(await read()).toBe('220 Ready to start TLS')
    const port = socket.localPort
    const closed = r.logs.next('connection closed', (f) => f.port === port)
    // A real TLS client, over a pipe that resets the TCP connection when the server's first flight arrives.
    socket.removeAllListeners('data')
    const pipe = new Duplex({ read() {}, write: (chunk, _e, done) => void socket.write(chunk, () => done()) })
    socket.once('data', () => socket.resetAndDestroy())
    const secure = connectTls({ socket: pipe, rejectUnauthorized: false })
    secure.on('error', () => {})
    await closed
    await r.healthy()
  })

  it('answers 421 and closes the connection after an over-long command line inside the TLS session', async () => {
    r = await startFaultRelay(mode)
    const client = await r.connect()
    expect(await client.command('EHLO client.test')).toMatch(/^250/)
    expect(await client.starttls({ rejectUnauthorized: false })).toMatch(/^220/)
    expect(await client.command('EHLO client.test')).toMatch(/^250/)
    client.write(`NOOP ${'a'.repeat(70_000)}\r\n`)
    expect(await client.reply()).toBe('421 Error: Command line too long')
    await client.closed
    await r.healthy()
  })
})
