/**
 * smtpTransport's connection options: the source address it binds to, and the opt-in protocol
 * transcript in the debug log, which never carries a password or message content.
 */
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { SMTPServer } from 'smtp-server'
import { describe, expect, it } from 'vitest'
import { type Logger, RelayError, smtpTransport } from '../../src/index.js'
import { testMessage } from '../../src/testing/index.js'
import { afterTest } from '../helpers/after-test.js'

/** An upstream that records the address each client came from, with AUTH (mechanisms as given) in clear. */
async function upstream(authMethods: string[] = ['PLAIN']) {
  const clients: string[] = []
  const logins: string[] = []
  const server = new SMTPServer({
    authMethods,
    allowInsecureAuth: true,
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    disableReverseLookup: true,
    logger: false,
    onConnect: (session, done) => (clients.push(session.remoteAddress), done()),
    onAuth: (auth, _session, done) =>
      auth.password === 'hunter2-secret' ? (logins.push(String(auth.username)), done(null, { user: auth.username })) : done(new Error('bad')),
    onData: (stream, _session, done) => (stream.resume(), stream.once('end', () => done())),
  })
  server.listen(0, '127.0.0.1')
  await once(server.server, 'listening')
  afterTest(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return { port: (server.server.address() as AddressInfo).port, clients, logins }
}

const message = () =>
  testMessage({ from: 'ann@example.com', to: ['bob@example.org'], eml: 'Subject: transcript\r\n\r\nBODY-MARKER-7f3a confidential text\r\n' })

describe('smtpTransport', () => {
  it('connects from localAddress', async () => {
    const up = await upstream()
    const transport = smtpTransport({ host: '127.0.0.1', port: up.port, localAddress: '127.0.0.2', pool: false })
    afterTest(() => transport.close?.())
    const report = await transport.send(await message())
    expect(report.accepted).toHaveLength(1)
    expect(up.clients).toEqual(['127.0.0.2'])
    expect(() => smtpTransport({ host: '127.0.0.1', localAddress: 'eth0' })).toThrow(RelayError)
  })

  it('logs the SMTP dialogue when asked, without the password, the AUTH exchange or the message', async () => {
    for (const mechanism of ['PLAIN', 'LOGIN']) {
      const up = await upstream([mechanism])
      const lines: Array<Record<string, unknown>> = []
      const logger: Logger = { debug: (fields, msg) => void lines.push({ ...fields, msg }), info() {}, warn() {}, error() {} }
      const transport = smtpTransport({
        host: '127.0.0.1',
        port: up.port,
        pool: false,
        auth: { user: 'relay-user', pass: 'hunter2-secret' },
        transcript: true,
        logger,
      })
      afterTest(() => transport.close?.())
      expect((await transport.send(await message())).accepted).toHaveLength(1)
      expect(up.logins).toEqual(['relay-user'])
      const transcript = lines.map((l) => `${l.direction}: ${l.line}`)
      expect(lines.every((l) => l.msg === 'smtp transcript' && l.upstream === `127.0.0.1:${up.port}`)).toBe(true)
      expect(transcript).toEqual(
        expect.arrayContaining(['C: MAIL FROM:<ann@example.com>', 'C: RCPT TO:<bob@example.org>', 'C: DATA', expect.stringMatching(/^S: 354 /)]),
      )
      expect(transcript).toContain(mechanism === 'PLAIN' ? 'C: AUTH PLAIN ***' : 'C: AUTH LOGIN')
      const all = JSON.stringify(lines)
      for (const secret of [
        'hunter2-secret',
        'relay-user',
        'BODY-MARKER',
        Buffer.from('hunter2-secret').toString('base64'),
        Buffer.from('relay-user').toString('base64'),
      ])
        expect(all, `${mechanism}: ${secret}`).not.toContain(secret)
    }
  })

  it('logs nothing of the dialogue by default', async () => {
    const up = await upstream()
    const lines: unknown[] = []
    const logger: Logger = { debug: (f) => void lines.push(f), info: (f) => void lines.push(f), warn() {}, error() {} }
    const transport = smtpTransport({ host: '127.0.0.1', port: up.port, pool: false, logger })
    afterTest(() => transport.close?.())
    await transport.send(await message())
    expect(lines).toEqual([])
    expect(() => smtpTransport({ host: '127.0.0.1', transcript: true })).toThrow(/transcript needs a logger/)
  })
})
