import { readFileSync } from 'node:fs'
import { createTransport } from 'nodemailer'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { type Authenticator, createRelay, type RelayAuthOptions, RelayError, type Session, type Stage, staticAuthenticator } from '../src/index.js'
import { memoryTransport } from '../src/testing/index.js'
import { havePeer } from './helpers/peers.js'
import { RawSmtp } from './helpers/raw-smtp.js'
import { startRedis, type TestRedis } from './helpers/redis.js'
import { refusal, startRelay, type TestRelay } from './helpers/relay.js'

const tls = {
  key: readFileSync(new URL('./fixtures/tls/key.pem', import.meta.url)),
  cert: readFileSync(new URL('./fixtures/tls/cert.pem', import.meta.url)),
}
const clientTls = { ca: tls.cert, servername: 'relay.test' }
const users = staticAuthenticator({ alice: { password: 'wonderland', senders: ['alice@example.com'] }, bob: 'builder' })
const RAW = 'From: <alice@example.com>\r\nSubject: hi\r\n\r\nHello.\r\n'
const plain = (user: string, pass: string) => Buffer.from(`\0${user}\0${pass}`).toString('base64')

let relays: TestRelay[] = []
afterEach(async () => {
  for (const r of relays) await r.close()
  relays = []
})

/** A relay whose only policy is "authenticated clients relay"; records the sessions it saw at DATA. */
async function authRelay(auth: Partial<RelayAuthOptions> = {}, sessions: Session[] = [], clock?: () => number) {
  const authenticatedOnly: Stage = { name: 'authenticated-only', grantsRelay: true, rcptTo: (tx) => (tx.session.user ? { relay: true } : undefined) }
  const record: Stage = { name: 'record', data: async (msg, next) => (sessions.push(msg.session), next()) }
  const transport = memoryTransport()
  const t = await startRelay({
    stages: [authenticatedOnly, record],
    transport,
    tls,
    auth: { authenticator: users, mechanisms: ['PLAIN', 'LOGIN', 'CRAM-MD5'], ...auth },
    ...(clock ? { clock } : {}),
  })
  relays.push(t)
  return { t, transport, sessions }
}

/** A raw connection after STARTTLS and EHLO. */
async function secureRaw(port: number): Promise<RawSmtp> {
  const { client } = await RawSmtp.connect(port)
  await client.command('EHLO raw.test')
  expect(await client.starttls(clientTls)).toMatch(/^220 /)
  await client.command('EHLO raw.test')
  return client
}

describe('SMTP AUTH', () => {
  it('does not offer AUTH before STARTTLS and answers AUTH there with 538 5.7.11', async () => {
    const { t } = await authRelay()
    const { client } = await RawSmtp.connect(t.port)
    const ehlo = await client.command('EHLO raw.test')
    expect(ehlo).toContain('STARTTLS')
    expect(ehlo).not.toContain('AUTH')
    expect(await client.command(`AUTH PLAIN ${plain('alice', 'wonderland')}`)).toBe(
      '538 5.7.11 Encryption required for requested authentication mechanism',
    )
    expect(await client.command('MAIL FROM:<alice@example.com>')).toBe('250 Accepted')
    expect(await client.command('RCPT TO:<bob@example.org>')).toBe('554 5.7.1 Relay access denied')
    client.close()
  })

  it('offers PLAIN, LOGIN and CRAM-MD5 after STARTTLS', async () => {
    const { t } = await authRelay()
    const client = await secureRaw(t.port)
    expect(await client.command('EHLO raw.test')).toContain('250-AUTH PLAIN LOGIN CRAM-MD5')
    client.close()
  })

  for (const method of ['PLAIN', 'LOGIN', 'CRAM-MD5']) {
    it(`relays for a client that authenticated with ${method} over STARTTLS, as ESMTPSA with its identity`, async () => {
      const { t, transport, sessions } = await authRelay()
      const client = createTransport({
        host: '127.0.0.1',
        port: t.port,
        requireTLS: true,
        tls: clientTls,
        auth: { user: 'alice', pass: 'wonderland', method },
      })
      const info = await client.sendMail({ envelope: { from: 'alice@example.com', to: ['bob@example.org'] }, raw: RAW })
      client.close()
      expect(info.response).toMatch(/^250 2\.0\.0 /)
      expect(transport.messages[0]!.raw.toString()).toMatch(/with ESMTPSA id /)
      expect(sessions[0]!.user).toBe('alice')
      expect(sessions[0]!.auth).toEqual({ user: 'alice', senders: ['alice@example.com'] })
    })
  }

  it('answers a wrong password and an unknown user alike with 535 5.7.8', async () => {
    const { t } = await authRelay()
    for (const [user, pass] of [
      ['alice', 'wrong'],
      ['nobody', 'wonderland'],
    ] as const) {
      const client = createTransport({ host: '127.0.0.1', port: t.port, requireTLS: true, tls: clientTls, auth: { user, pass } })
      const err = await refusal(client.verify())
      client.close()
      expect(err).toEqual({ response: '535 5.7.8 Authentication credentials invalid', responseCode: 535 })
    }
  })

  it('locks a client IP out with 454 4.7.0 after repeated failures, even with the right password, and lets it in after the lockout', async () => {
    let now = Date.now()
    const { t } = await authRelay({ throttle: { ipFailures: 3, userFailures: 100, window: '10s', lockout: '2s' } }, [], () => now)
    const client = await secureRaw(t.port)
    for (const user of ['alice', 'bob', 'nobody']) {
      expect(await client.command(`AUTH PLAIN ${plain(user, 'guess')}`)).toBe('535 5.7.8 Authentication credentials invalid')
    }
    expect(await client.command(`AUTH PLAIN ${plain('alice', 'wonderland')}`)).toBe('454 4.7.0 Temporary authentication failure, try again later')
    now += 2100 // the lockout under test is 2 s of the relay's clock
    expect(await client.command(`AUTH PLAIN ${plain('alice', 'wonderland')}`)).toBe('235 2.7.0 Authentication successful')
    client.close()
  })

  it('locks a user name out after repeated failures whether or not it exists, without locking other users', async () => {
    const { t } = await authRelay({ throttle: { ipFailures: 100, userFailures: 2, window: '10s', lockout: '10s' } })
    const client = await secureRaw(t.port)
    for (const user of ['alice', 'nobody']) {
      expect(await client.command(`AUTH PLAIN ${plain(user, 'guess')}`)).toBe('535 5.7.8 Authentication credentials invalid')
      expect(await client.command(`AUTH PLAIN ${plain(user, 'guess')}`)).toBe('535 5.7.8 Authentication credentials invalid')
      expect(await client.command(`AUTH PLAIN ${plain(user, 'guess')}`)).toBe('454 4.7.0 Temporary authentication failure, try again later')
    }
    expect(await client.command(`AUTH PLAIN ${plain('ALICE', 'wonderland')}`)).toBe('454 4.7.0 Temporary authentication failure, try again later')
    expect(await client.command(`AUTH PLAIN ${plain('bob', 'builder')}`)).toBe('235 2.7.0 Authentication successful')
    client.close()
  })

  it('answers malformed AUTH exchanges with clean 5xx replies and keeps the connection usable', async () => {
    const { t } = await authRelay()
    const client = await secureRaw(t.port)
    expect(await client.command('AUTH')).toBe('501 5.5.4 Syntax: AUTH mechanism [initial-response]')
    expect(await client.command('AUTH XOAUTH2 dG9rZW4=')).toBe('504 5.5.4 Unrecognized authentication type')
    expect(await client.command('AUTH PLAIN not*base64!')).toBe('501 5.5.2 Cannot decode response')
    expect(await client.command('AUTH PLAIN =')).toBe('501 5.5.2 Cannot decode response')
    expect(await client.command(`AUTH PLAIN ${Buffer.from('no separators').toString('base64')}`)).toBe('501 5.5.2 Cannot decode response')
    expect(await client.command('AUTH PLAIN')).toBe('334')
    expect(await client.command('*')).toBe('501 5.7.0 Authentication aborted')
    expect(await client.command('AUTH LOGIN')).toBe('334 VXNlcm5hbWU6')
    expect(await client.command('')).toBe('334 UGFzc3dvcmQ6')
    expect(await client.command(Buffer.from('x').toString('base64'))).toBe('501 5.5.2 Cannot decode response')
    expect(await client.command(`AUTH PLAIN ${'QUFB'.repeat(3500)}`)).toBe('500 5.5.6 Authentication exchange line is too long')
    expect(await client.command('AUTH CRAM-MD5')).toMatch(/^334 [A-Za-z0-9+/]+=*$/)
    expect(await client.command(Buffer.from('alice 00000000000000000000000000000000').toString('base64'))).toBe(
      '535 5.7.8 Authentication credentials invalid',
    )
    expect(await client.command('NOOP')).toBe('250 OK')
    expect(await client.command(`AUTH PLAIN ${plain('alice', 'wonderland')}`)).toBe('235 2.7.0 Authentication successful')
    expect(await client.command(`AUTH PLAIN ${plain('bob', 'builder')}`)).toBe('503 5.5.1 Already authenticated')
    client.close()
  })

  it('answers 421 and closes the connection on an AUTH line longer than the 16 KiB command limit', async () => {
    const { t } = await authRelay()
    const client = await secureRaw(t.port)
    client.write(`AUTH PLAIN ${'A'.repeat(20_000)}\r\n`)
    // smtp-server's own limit (16 KiB) is above ours: it answers and closes.
    expect(await client.reply()).toBe('421 Error: Command line too long')
    await client.closed
    const again = await secureRaw(t.port)
    expect(await again.command('NOOP')).toBe('250 OK')
    again.close()
  })

  it('refuses AUTH inside a mail transaction with 503 5.5.1', async () => {
    const { t } = await authRelay()
    const client = await secureRaw(t.port)
    expect(await client.command('MAIL FROM:<alice@example.com>')).toBe('250 Accepted')
    expect(await client.command(`AUTH PLAIN ${plain('alice', 'wonderland')}`)).toBe('503 5.5.1 AUTH not permitted during a mail transaction')
    client.close()
  })

  it('answers 454 4.7.0 when the authenticator fails, and logs nothing of the password', async () => {
    const broken: Authenticator = () => Promise.reject(new Error('directory down'))
    const { t } = await authRelay({ authenticator: broken, mechanisms: ['PLAIN'] })
    const client = await secureRaw(t.port)
    expect(await client.command(`AUTH PLAIN ${plain('alice', 'wonderland')}`)).toBe('454 4.7.0 Temporary authentication failure, try again later')
    client.close()
  })

  it('offers AUTH without TLS only with allowInsecure on a loopback listener', async () => {
    const transport = memoryTransport()
    const t = await startRelay({ stages: [], transport, auth: { authenticator: users, allowInsecure: true } })
    relays.push(t)
    const { client } = await RawSmtp.connect(t.port)
    expect(await client.command('EHLO raw.test')).toContain('250-AUTH PLAIN LOGIN')
    expect(await client.command(`AUTH PLAIN ${plain('bob', 'builder')}`)).toBe('235 2.7.0 Authentication successful')
    client.close()
    const build = (listeners: { host: string; port: number }[], auth: RelayAuthOptions, withTls = true) =>
      (() => createRelay({ transport, listeners, auth, ...(withTls ? { tls } : {}) })) as () => unknown
    const error = (fn: () => unknown) => {
      try {
        fn()
      } catch (err) {
        return err as RelayError
      }
      throw new Error('expected a RelayError')
    }
    const exposed = error(build([{ host: '0.0.0.0', port: 0 }], { authenticator: users, allowInsecure: true }))
    expect(exposed).toBeInstanceOf(RelayError)
    expect(exposed.code).toBe('ERR_RELAY_INVALID_OPTION')
    expect(exposed.message).toContain('clear text on 0.0.0.0')
    expect(error(build([{ host: '127.0.0.1', port: 0 }], { authenticator: users }, false)).message).toContain('auth needs tls')
    const hashed: Authenticator = () => null
    expect(error(build([{ host: '127.0.0.1', port: 0 }], { authenticator: hashed, mechanisms: ['CRAM-MD5'] })).message).toContain('CRAM-MD5 needs')
  })

  it('does not offer AUTH when no authenticator is configured', async () => {
    const t = await startRelay({ stages: [], transport: memoryTransport(), tls })
    relays.push(t)
    const client = await secureRaw(t.port)
    expect(await client.command('EHLO raw.test')).not.toContain('AUTH')
    expect(await client.command(`AUTH PLAIN ${plain('alice', 'wonderland')}`)).toBe('500 Error: command not recognized')
    client.close()
  })
})

describe.runIf(havePeer('redis-server', 'apt-get install -y redis-server'))('SMTP AUTH throttling shared through Redis', () => {
  let redis: TestRedis
  beforeAll(async () => void (redis = await startRedis()))
  afterAll(async () => redis?.stop())

  it('locks a user out on every relay process after failures on one of them', async () => {
    const throttle = { ipFailures: 100, userFailures: 2, window: '10s', lockout: '10s', store: { redis: redis.url } } as const
    const { t: a } = await authRelay({ throttle })
    const { t: b } = await authRelay({ throttle })
    const first = await secureRaw(a.port)
    for (let i = 0; i < 2; i++)
      expect(await first.command(`AUTH PLAIN ${plain('alice', 'guess')}`)).toBe('535 5.7.8 Authentication credentials invalid')
    first.close()
    const second = await secureRaw(b.port)
    expect(await second.command(`AUTH PLAIN ${plain('alice', 'wonderland')}`)).toBe('454 4.7.0 Temporary authentication failure, try again later')
    expect(await second.command(`AUTH PLAIN ${plain('bob', 'builder')}`)).toBe('235 2.7.0 Authentication successful')
    second.close()
  })
})
