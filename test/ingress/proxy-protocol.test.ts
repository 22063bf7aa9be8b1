/**
 * PROXY protocol listeners: only trusted balancers may connect, each connection starts with a
 * v1 or v2 header, and the client it names is the one every part of the relay sees (policy,
 * per-client limits, rate limits, logs, Received).
 */
import { once } from 'node:events'
import { connect, type Socket } from 'node:net'
import { describe, expect, it } from 'vitest'
import { createRelay, type Logger, type RelayOptions, rateLimit, relayPolicy, type Session, type Stage } from '../../src/index.js'
import { readProxyHeader } from '../../src/ingress/smtp-server/proxy-protocol.js'
import { memoryTransport } from '../../src/testing/index.js'
import { afterTest } from '../helpers/after-test.js'
import { RawSmtp } from '../helpers/raw-smtp.js'

const V2 = Buffer.from('0d0a0d0a000d0a515549540a', 'hex')

function v2(command: number, family: number, body: Buffer): Buffer {
  const head = Buffer.alloc(4)
  head[0] = 0x20 | command
  head[1] = family
  head.writeUInt16BE(body.length, 2)
  return Buffer.concat([V2, head, body])
}
const ipv4 = (ip: string) => Buffer.from(ip.split('.').map(Number))
const port = (n: number) => Buffer.from([n >> 8, n & 0xff])
const v2tcp4 = (src: string, dst: string, sport: number, dport: number, tlv = Buffer.alloc(0)) =>
  v2(1, 0x11, Buffer.concat([ipv4(src), ipv4(dst), port(sport), port(dport), tlv]))
const v2tcp6 = (src: string, dst: string) => {
  const bytes = (ip: string) => Buffer.from(ip.split(':').flatMap((g) => [Number.parseInt(g, 16) >> 8, Number.parseInt(g, 16) & 0xff]))
  return v2(1, 0x21, Buffer.concat([bytes(src), bytes(dst), port(50000), port(25)]))
}

async function start(options: Partial<RelayOptions> & { trusted?: string[]; timeout?: number } = {}) {
  const sessions: Session[] = []
  const received: string[] = []
  const lines: Array<{ message: string; fields: Record<string, unknown> }> = []
  const record = (_level: string) => (fields: Record<string, unknown>, message: string) => void lines.push({ message, fields })
  const logger: Logger = { debug: record('debug'), info: record('info'), warn: record('warn'), error: record('error') }
  const observe: Stage = {
    name: 'observe',
    async data(msg, next) {
      sessions.push(msg.session)
      received.push(msg.headers.get('received') ?? '')
      return next()
    },
  }
  const { trusted = ['127.0.0.0/8'], timeout, ...rest } = options
  const relay = createRelay({
    hostname: 'relay.test',
    // Only the documentation network may relay: a balancer's own address never would.
    stages: [relayPolicy({ networks: ['203.0.113.0/24', '2001:db8::/32'] }), observe],
    transport: memoryTransport(),
    listeners: [{ port: 0, mode: 'submission', proxyProtocol: { trusted, ...(timeout ? { timeout } : {}) } }],
    logger,
    ...rest,
  })
  const [bound] = await relay.listen()
  afterTest(() => relay.close({ timeout: 2000 }))
  return { relay, port: bound!.port, sessions, received, lines }
}

async function send(client: RawSmtp, from = 'ann@example.com'): Promise<string> {
  await client.command('EHLO balancer-client.test')
  expect(await client.command(`MAIL FROM:<${from}>`)).toMatch(/^250/)
  const rcpt = await client.command('RCPT TO:<bob@example.org>')
  if (!rcpt.startsWith('250')) return rcpt
  expect(await client.command('DATA')).toMatch(/^354/)
  return client.command('Subject: proxied\r\n\r\nHello.\r\n.')
}

/** Bytes the relay wrote before closing, for a peer that writes `data` (or nothing). */
async function answerTo(portNo: number, data?: Buffer | string): Promise<string> {
  const socket = connect(portNo, '127.0.0.1')
  socket.on('error', () => {})
  await once(socket, 'connect')
  if (data) socket.write(data)
  let out = ''
  socket.setEncoding('latin1').on('data', (chunk: string) => (out += chunk))
  await once(socket, 'close')
  return out
}

describe('PROXY protocol listeners', () => {
  it('takes the client from a v1 header: relay policy, the session, the Received field and the log lines see it', async () => {
    const { port: p, sessions, received, lines } = await start()
    const { client, greeting } = await RawSmtp.connectWith(p, 'PROXY TCP4 203.0.113.7 192.0.2.25 40001 587\r\n')
    expect(greeting).toMatch(/^220 relay\.test/)
    expect(await send(client)).toMatch(/^250 2\.0\.0 /)
    client.close()
    expect(sessions[0]).toMatchObject({ remoteAddress: '203.0.113.7', remotePort: 40001, localAddress: '192.0.2.25', localPort: 587 })
    expect(received[0]).toContain('[203.0.113.7]')
    expect(received[0]).not.toContain('127.0.0.1')
    expect(lines.find((l) => l.message === 'message relayed')?.fields.client).toBe('203.0.113.7')
  })

  it('reads v2 headers (IPv4 with TLVs, IPv6), also split over several writes; bytes after the header are SMTP', async () => {
    const { port: p, sessions } = await start()
    const tlv = Buffer.from([0x04, 0x00, 0x03, 0x61, 0x62, 0x63]) // PP2_TYPE_NOOP
    const header = v2tcp4('203.0.113.8', '192.0.2.25', 40002, 25, tlv)
    const socket = connect(p, '127.0.0.1')
    await once(socket, 'connect')
    socket.write(header.subarray(0, 7))
    await new Promise((r) => setTimeout(r, 30))
    const { client, greeting } = await RawSmtp.attach(socket, header.subarray(7))
    expect(greeting).toMatch(/^220 /)
    expect(await send(client)).toMatch(/^250 2\.0\.0 /)
    client.close()

    // A command in the header's packet reaches SMTP before the greeting: an early talker.
    const early = await RawSmtp.connectWith(p, Buffer.concat([header, Buffer.from('EHLO early.test\r\n')]))
    expect(early.greeting).toBe('421 relay.test You talk too soon')

    const six = await RawSmtp.connectWith(p, v2tcp6('2001:db8:0:0:0:0:0:7', '2001:db8:0:0:0:0:0:25'))
    expect(await send(six.client)).toMatch(/^250 2\.0\.0 /)
    six.client.close()
    expect(sessions.map((s) => s.remoteAddress)).toEqual(['203.0.113.8', '2001:db8::7'])
  })

  it("keeps the balancer's own address for its health checks (v2 LOCAL, v1 UNKNOWN), which may not relay", async () => {
    const { port: p } = await start()
    for (const header of [v2(0, 0x00, Buffer.alloc(0)), Buffer.from('PROXY UNKNOWN\r\n')]) {
      const { client, greeting } = await RawSmtp.connectWith(p, header)
      expect(greeting).toMatch(/^220 /)
      expect(await send(client)).toBe('554 5.7.1 Relay access denied')
      client.close()
    }
  })

  it('disconnects, before any greeting, peers that are not trusted balancers and trusted ones that send no valid header', async () => {
    const untrusted = await start({ trusted: ['192.0.2.0/24'] })
    expect(await answerTo(untrusted.port, 'PROXY TCP4 203.0.113.7 192.0.2.25 40001 587\r\nEHLO x\r\n')).toBe('')
    expect(untrusted.lines.some((l) => l.message === 'connection refused: not a trusted PROXY protocol peer')).toBe(true)

    const { port: p, lines } = await start({ timeout: 300 })
    for (const bad of [
      'EHLO direct.test\r\n',
      'PROXY TCP4 203.0.113.7 192.0.2.25 40001\r\n',
      'PROXY TCP4 2001:db8::1 192.0.2.25 40001 25\r\n',
      'PROXY TCP4 203.0.113.7 192.0.2.25 70000 25\r\n',
      `PROXY TCP4 ${'1'.repeat(120)}\r\n`,
      v2(1, 0x31, Buffer.alloc(216)), // AF_UNIX
      Buffer.concat([V2, Buffer.from([0x31, 0x11, 0, 12]), Buffer.alloc(12)]), // version 3
    ]) {
      expect(await answerTo(p, bad)).toBe('')
    }
    expect(await answerTo(p)).toBe('') // says nothing: let go after the timeout
    expect(lines.filter((l) => l.message === 'connection refused: PROXY header')).toHaveLength(8)
  })

  it('applies the per-client connection limits and rate limits to the client the header names, not to the balancer', async () => {
    const { port: p } = await start({
      limits: { connectionsPerClient: 1 },
      stages: [relayPolicy({ networks: ['203.0.113.0/24'] }), rateLimit({ limits: [{ key: 'ip', messages: 1, window: '1h' }] })],
    })
    const header = (ip: string) => `PROXY TCP4 ${ip} 192.0.2.25 40000 587\r\n`
    const first = await RawSmtp.connectWith(p, header('203.0.113.10'))
    const second = await RawSmtp.connectWith(p, header('203.0.113.11'))
    expect([first.greeting, second.greeting].every((g) => g.startsWith('220 '))).toBe(true)
    const third = await RawSmtp.connectWith(p, header('203.0.113.10'))
    expect(third.greeting).toBe('421 4.7.0 relay.test Too many connections from your address, try again later')

    expect(await send(first.client)).toMatch(/^250 2\.0\.0 /)
    expect(await send(second.client)).toMatch(/^250 2\.0\.0 /)
    await first.client.command('RSET')
    expect(await first.client.command('MAIL FROM:<ann@example.com>')).toMatch(/^451 4\.7\.1 Rate limit exceeded/)
    first.client.close()
    second.client.close()
  })
})

describe('readProxyHeader', () => {
  it('writes IPv6 sources as Node does', async () => {
    const cases: Array<[string, string]> = [
      ['2001:db8:0:0:0:0:0:1', '2001:db8::1'],
      ['0:0:0:0:0:0:0:1', '::1'],
      ['2001:db8:0:1:0:0:0:1', '2001:db8:0:1::1'],
      ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
      ['0:0:0:0:0:ffff:c000:207', '::ffff:192.0.2.7'],
    ]
    for (const [written, expected] of cases) {
      const { server, client } = await pairOfSockets()
      client.write(v2tcp6(written, '2001:db8:0:0:0:0:0:25'))
      const header = await readProxyHeader(server, 1000)
      expect(header.source?.address).toBe(expected)
      server.destroy()
      client.destroy()
    }
  })
})

async function pairOfSockets(): Promise<{ server: Socket; client: Socket }> {
  const { createServer } = await import('node:net')
  const listener = createServer()
  listener.listen(0, '127.0.0.1')
  await once(listener, 'listening')
  const client = connect((listener.address() as { port: number }).port, '127.0.0.1')
  const [server] = (await once(listener, 'connection')) as [Socket]
  listener.close()
  return { server, client }
}
