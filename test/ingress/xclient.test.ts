/**
 * XCLIENT from trusted hosts: a front end names the client, and from then on the relay sees that
 * client everywhere (admission limits, connect hooks, relay policy, AUTH state, Received).
 * Anyone else is refused with `550 5.7.0`, and EHLO does not list XCLIENT to them.
 */
import { describe, expect, it } from 'vitest'
import { createRelay, type RelayOptions, reject, relayPolicy, type Session, type Stage } from '../../src/index.js'
import { memoryTransport } from '../../src/testing/index.js'
import { afterTest } from '../helpers/after-test.js'
import { RawSmtp } from '../helpers/raw-smtp.js'

async function start(trusted: string[], options: Partial<RelayOptions> = {}, policy: Stage[] = [relayPolicy({ networks: ['203.0.113.0/24'] })]) {
  const sessions: Session[] = []
  const received: string[] = []
  const observe: Stage = {
    name: 'observe',
    async data(msg, next) {
      sessions.push(msg.session)
      received.push(msg.headers.get('received') ?? '')
      return next()
    },
  }
  const relay = createRelay({
    hostname: 'relay.test',
    stages: [...policy, observe],
    transport: memoryTransport(),
    listeners: [{ port: 0, mode: 'submission', xclient: { trusted } }],
    ...options,
  })
  const [bound] = await relay.listen()
  afterTest(() => relay.close({ timeout: 2000 }))
  return { port: bound!.port, sessions, received }
}

async function send(client: RawSmtp): Promise<string> {
  await client.command('EHLO client.example')
  expect(await client.command('MAIL FROM:<ann@example.com>')).toMatch(/^250/)
  const rcpt = await client.command('RCPT TO:<bob@example.org>')
  if (!rcpt.startsWith('250')) return rcpt
  expect(await client.command('DATA')).toMatch(/^354/)
  return client.command('Subject: via xclient\r\n\r\nHello.\r\n.')
}

describe('XCLIENT', () => {
  it('from a trusted host, names the client the relay then sees: policy, session, Received', async () => {
    const { port, sessions, received } = await start(['127.0.0.0/8'])
    const { client } = await RawSmtp.connect(port)
    expect(await client.command('EHLO frontend.test')).toContain('XCLIENT')
    expect(await client.command('XCLIENT ADDR=203.0.113.9 NAME=client.example PORT=40009')).toMatch(/^220 relay\.test ESMTP/)
    expect(await send(client)).toMatch(/^250 2\.0\.0 /)
    client.close()
    expect(sessions[0]).toMatchObject({ remoteAddress: '203.0.113.9', remotePort: 40009, clientHostname: 'client.example' })
    expect(received[0]).toMatch(/^from client\.example \(client\.example \[203\.0\.113\.9\]\)/)
  })

  it('from any other host: not listed in EHLO, refused with 550 5.7.0, the session unchanged', async () => {
    const { port } = await start(['192.0.2.1'])
    const { client } = await RawSmtp.connect(port)
    expect(await client.command('EHLO frontend.test')).not.toContain('XCLIENT')
    expect(await client.command('XCLIENT ADDR=203.0.113.9')).toBe('550 5.7.0 Error: insufficient authorization')
    expect(await send(client)).toBe('554 5.7.1 Relay access denied')
    client.close()
  })

  it('runs the connect hooks again for the named client, and closes the connection if they refuse it', async () => {
    const blocklist: Stage = {
      name: 'blocklist',
      connect(session) {
        if (session.remoteAddress === '203.0.113.66') throw reject.connection('listed')
      },
    }
    const { port } = await start(['127.0.0.0/8'], {}, [blocklist, relayPolicy({ networks: ['203.0.113.0/24'] })])
    const { client } = await RawSmtp.connect(port)
    expect(await client.command('XCLIENT ADDR=203.0.113.66')).toBe('554 5.7.1 Connection refused')
    await client.closed
  })

  it('counts the named clients against the per-client limits; the trusted host itself is not limited', async () => {
    const { port } = await start(['127.0.0.0/8'], { limits: { connectionsPerClient: 1 } })
    const clients = await Promise.all([1, 2, 3].map(() => RawSmtp.connect(port)))
    expect(clients.every((c) => c.greeting.startsWith('220 '))).toBe(true)
    expect(await clients[0]!.client.command('XCLIENT ADDR=203.0.113.20')).toMatch(/^220 /)
    expect(await clients[1]!.client.command('XCLIENT ADDR=203.0.113.21')).toMatch(/^220 /)
    expect(await clients[2]!.client.command('XCLIENT ADDR=203.0.113.20')).toBe(
      '421 4.7.0 relay.test Too many connections from your address, try again later',
    )
    for (const { client } of clients) client.close()
  })

  it('takes LOGIN as the authenticated user the front end vouches for', async () => {
    const { port, sessions } = await start(['127.0.0.0/8'], {}, [relayPolicy({ authenticated: true })])
    const { client } = await RawSmtp.connect(port)
    expect(await client.command('XCLIENT ADDR=198.51.100.4 LOGIN=alice')).toMatch(/^220 /)
    expect(await send(client)).toMatch(/^250 2\.0\.0 /)
    client.close()
    expect(sessions[0]).toMatchObject({ remoteAddress: '198.51.100.4', user: 'alice' })
  })
})
