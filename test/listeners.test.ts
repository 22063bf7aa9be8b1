import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { connect } from 'node:net'
import { createTransport } from 'nodemailer'
import { SMTPServer } from 'smtp-server'
import { afterEach, describe, expect, it } from 'vitest'
import { createRelay, type Relay, RelayError, type Session, type Stage } from '../src/index.js'
import { greetingDelayPatched } from '../src/ingress/smtp-server/greeting-delay.js'
import { memoryTransport } from '../src/testing/index.js'
import { RawSmtp } from './helpers/raw-smtp.js'
import { allowAll } from './helpers/relay.js'

const tls = {
  key: readFileSync(new URL('./fixtures/tls/key.pem', import.meta.url)),
  cert: readFileSync(new URL('./fixtures/tls/cert.pem', import.meta.url)),
}
const ca = tls.cert

let relays: Relay[] = []
afterEach(async () => {
  for (const r of relays) await r.close({ timeout: 2000 })
  relays = []
})

function recordSessions(sessions: Session[]): Stage {
  return { name: 'record', data: async (msg, next) => (sessions.push(msg.session), next()) }
}

/** Connects and writes EHLO at once, before any greeting could be read. Returns the first reply. */
async function earlyTalker(port: number): Promise<string> {
  const socket = connect(port, '127.0.0.1')
  await once(socket, 'connect')
  socket.write('EHLO early.test\r\n')
  const [data] = (await once(socket, 'data')) as [Buffer]
  socket.destroy()
  return data.toString().split('\r\n')[0]!
}

describe('listeners', () => {
  it('binds several listeners on port 0 and reports the real ports', async () => {
    const relay = createRelay({
      stages: [allowAll],
      transport: memoryTransport(),
      listeners: [
        { port: 0, name: 'a' },
        { port: 0, mode: 'submission', name: 'b' },
      ],
    })
    relays.push(relay)
    const bound = await relay.listen()
    expect(bound.map((b) => b.name)).toEqual(['a', 'b'])
    expect(bound.every((b) => b.port > 0)).toBe(true)
    expect(bound[0]!.port).not.toBe(bound[1]!.port)
    expect(relay.addresses).toEqual(bound)
  })

  it('relays over STARTTLS on a submission listener and records the session as secure', async () => {
    const sessions: Session[] = []
    const transport = memoryTransport()
    const relay = createRelay({
      stages: [allowAll, recordSessions(sessions)],
      transport,
      tls,
      hostname: 'relay.test',
      listeners: [{ port: 0, mode: 'submission' }],
    })
    relays.push(relay)
    const [bound] = await relay.listen()
    const client = createTransport({ host: '127.0.0.1', port: bound!.port, requireTLS: true, tls: { ca, servername: 'relay.test' } })
    await client.sendMail({ envelope: { from: 'a@example.com', to: ['b@example.org'] }, raw: 'Subject: tls\r\n\r\nx\r\n' })
    client.close()
    expect(sessions[0]!.secure).toBe(true)
    expect(transport.messages[0]!.raw.toString()).toMatch(/by relay\.test \(relaychain\) \(using TLSv1\.[23] with cipher [A-Z0-9_-]+\)/)
  })

  it('relays over implicit TLS on a submissions listener', async () => {
    const transport = memoryTransport()
    const relay = createRelay({ stages: [allowAll], transport, tls, listeners: [{ port: 0, mode: 'submissions' }] })
    relays.push(relay)
    const [bound] = await relay.listen()
    const client = createTransport({ host: '127.0.0.1', port: bound!.port, secure: true, tls: { ca, servername: 'relay.test' } })
    await client.sendMail({ envelope: { from: 'a@example.com', to: ['b@example.org'] }, raw: 'Subject: tls\r\n\r\nx\r\n' })
    client.close()
    expect(transport.messages).toHaveLength(1)
  })

  it('does not offer STARTTLS without a certificate, and refuses implicit TLS without one', async () => {
    const relay = createRelay({ stages: [allowAll], transport: memoryTransport(), listeners: [{ port: 0 }] })
    relays.push(relay)
    const [bound] = await relay.listen()
    const { client } = await RawSmtp.connect(bound!.port)
    expect(await client.command('EHLO x')).not.toContain('STARTTLS')
    client.close()
    expect(() => createRelay({ transport: memoryTransport(), listeners: [{ port: 0, mode: 'submissions' }] })).toThrow(RelayError)
  })

  it('refuses a relay with neither transport nor pipeline', () => {
    expect(() => createRelay({} as never)).toThrow(/needs a transport/)
  })
})

describe('greeting delay', () => {
  it('patches this smtp-server version (fails if a new version changed the code we replace)', () => {
    expect(greetingDelayPatched()).toBe(true)
  })

  it('plain smtp-server still refuses a client that talks before its 100 ms greeting', async () => {
    const server = new SMTPServer({ disableReverseLookup: true, logger: false, authOptional: true })
    server.listen(0, '127.0.0.1')
    await once(server.server, 'listening')
    try {
      expect(await earlyTalker((server.server.address() as { port: number }).port)).toMatch(/^421 .*talk too soon/i)
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  })

  it('keeps the early-talker check on smtp listeners and greets at once on submission listeners', async () => {
    const relay = createRelay({
      stages: [allowAll],
      transport: memoryTransport(),
      listeners: [
        { port: 0, mode: 'smtp' },
        { port: 0, mode: 'submission' },
      ],
    })
    relays.push(relay)
    const [smtp, submission] = await relay.listen()
    expect(await earlyTalker(smtp!.port)).toMatch(/^421 /)
    expect(await earlyTalker(submission!.port)).toMatch(/^220 /)
  })
})
