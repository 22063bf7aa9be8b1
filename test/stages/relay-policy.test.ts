import { readFileSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { createTransport } from 'nodemailer'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Logger, popBeforeSmtp, RelayError, type RelayOptions, staticAuthenticator } from '../../src/index.js'
import { networkMatcher } from '../../src/shared/ip.js'
import { type RelayPolicyOptions, relayPolicy } from '../../src/stages/relay-policy.js'
import { checkOpenRelay, memoryTransport, type Sink, startSink } from '../../src/testing/index.js'
import { afterTest, relayToSink } from '../helpers/after-test.js'
import { havePeer } from '../helpers/peers.js'
import { RawSmtp } from '../helpers/raw-smtp.js'
import { startRedis, type TestRedis } from '../helpers/redis.js'
import { refusal, startRelay, type TestRelay } from '../helpers/relay.js'

const tls = {
  key: readFileSync(new URL('../fixtures/tls/key.pem', import.meta.url)),
  cert: readFileSync(new URL('../fixtures/tls/cert.pem', import.meta.url)),
}
const clientTls = { ca: tls.cert, servername: 'relay.test' }
const authenticator = staticAuthenticator({
  alice: { password: 'wonderland', senders: ['alice@example.test', '@sales.example.test'] },
  'bob@example.test': 'builder',
})
const RAW = 'Subject: hi\r\n\r\nHello.\r\n'

async function policyRelay(policy: RelayPolicyOptions, extra: Partial<RelayOptions> = {}): Promise<{ t: TestRelay; sink: Sink }> {
  return relayToSink([relayPolicy(policy)], { tls, auth: { authenticator }, ...extra })
}

/** Tries one recipient from a raw client; returns the RCPT reply. */
async function tryRcpt(port: number, from: string, to: string, host = '127.0.0.1'): Promise<string> {
  const { client } = await RawSmtp.connect(port, host)
  try {
    await client.command('EHLO raw.test')
    expect(await client.command(`MAIL FROM:<${from}>`)).toBe('250 Accepted')
    return await client.command(`RCPT TO:<${to}>`)
  } finally {
    client.close()
  }
}

describe('relay-policy: third-party relay tests', () => {
  it('refuses every classic relay-test form from an unauthenticated client and accepts the controls; only they reach the upstream', async () => {
    const { t, sink } = await policyRelay({ domains: ['example.test'] })
    const report = await checkOpenRelay({ host: '127.0.0.1', port: t.port, domain: 'example.test', sendData: true })
    expect(report.tests.length).toBeGreaterThanOrEqual(20)
    expect(report.tests.filter((r) => r.accepted)).toEqual([])
    for (const r of report.tests) expect(r.reply, r.name).toMatch(/^(554 5\.7\.1 Relay access denied|553 5\.1\.[37] |501 5\.1\.[37] )/)
    expect(report.passed).toBe(true)
    expect(report.control).toMatchObject({ accepted: true, reply: '250 Accepted' })
    // Authenticated submission: the other control.
    const client = createTransport({ host: '127.0.0.1', port: t.port, requireTLS: true, tls: clientTls, auth: { user: 'alice', pass: 'wonderland' } })
    await client.sendMail({ envelope: { from: 'alice@example.test', to: ['victim@elsewhere.test'] }, raw: RAW })
    client.close()
    const messages = await sink.waitForMessages(2)
    expect(messages.map((m) => m.rcptTo)).toEqual([['postmaster@example.test'], ['victim@elsewhere.test']])
    expect(sink.messages).toHaveLength(2)
  })

  it('reports the forms an open relay accepts (the check can fail)', async () => {
    const { t } = await policyRelay({ networks: ['127.0.0.0/8'] })
    const report = await checkOpenRelay({ host: '127.0.0.1', port: t.port, domain: 'example.test' })
    expect(report.passed).toBe(false)
    expect(report.tests.find((r) => r.name === 'third-party sender and recipient')).toMatchObject({ accepted: true, reply: '250 Accepted' })
    // The address checks still refuse the routing tricks, even for an allowlisted client.
    expect(report.tests.find((r) => r.name === 'percent hack')).toMatchObject({
      accepted: false,
      reply: '553 5.1.3 Routing syntax is not accepted in the recipient address',
    })
  })
})

describe('relay-policy: sender login', () => {
  async function submit(user: string, pass: string, from: string | null) {
    const { t } = await policyRelay({ senderLogin: true })
    const client = createTransport({ host: '127.0.0.1', port: t.port, requireTLS: true, tls: clientTls, auth: { user, pass } })
    afterTest(async () => client.close())
    return client.sendMail({ envelope: { from: from ?? '', to: ['victim@elsewhere.test'] }, raw: RAW })
  }

  it('refuses MAIL FROM an address the authenticated user does not own with 553 5.7.1', async () => {
    expect(await refusal(submit('alice', 'wonderland', 'bob@example.test'))).toEqual({
      response: '553 5.7.1 Sender address rejected: not owned by the authenticated user',
      responseCode: 553,
    })
  })

  it('accepts the senders and domains the identity owns, in any case, and the null sender', async () => {
    for (const from of ['Alice@EXAMPLE.test', 'anyone@sales.example.test', null]) {
      expect((await submit('alice', 'wonderland', from)).response).toMatch(/^250 2\.0\.0 /)
    }
  })

  it('takes the login as the only owned sender when the identity lists none', async () => {
    expect((await submit('bob@example.test', 'builder', 'bob@example.test')).response).toMatch(/^250 /)
    expect((await refusal(submit('bob@example.test', 'builder', 'alice@example.test'))).responseCode).toBe(553)
  })

  it('lets a function decide who owns a sender', async () => {
    const { t } = await policyRelay({ senderLogin: (identity, sender) => sender.startsWith(`${identity.user}+`) })
    const client = createTransport({ host: '127.0.0.1', port: t.port, requireTLS: true, tls: clientTls, auth: { user: 'alice', pass: 'wonderland' } })
    afterTest(async () => client.close())
    const send = (from: string) => client.sendMail({ envelope: { from, to: ['x@elsewhere.test'] }, raw: RAW })
    expect((await send('alice+news@example.test')).response).toMatch(/^250 /)
    expect((await refusal(send('alice@example.test'))).responseCode).toBe(553)
  })
})

describe('relay-policy: client networks', () => {
  it('grants relaying to an IPv6 client in an IPv6 network and refuses it for IPv4-only networks', async () => {
    const sink = await startSink()
    afterTest(() => sink.close())
    for (const [networks, expected] of [
      [['::1/128'], '250 Accepted'],
      [['127.0.0.0/8'], '554 5.7.1 Relay access denied'],
    ] as const) {
      const t = await startRelay({
        stages: [relayPolicy({ networks })],
        transport: memoryTransport(),
        listeners: [{ host: '::1', port: 0, mode: 'submission' }],
      })
      afterTest(() => t.close())
      expect(await tryRcpt(t.port, 'a@example.test', 'victim@elsewhere.test', '::1')).toBe(expected)
    }
  })

  it('matches an IPv4 client against a network written as IPv4-mapped IPv6', async () => {
    const { t } = await policyRelay({ networks: ['::ffff:127.0.0.0/104'] })
    expect(await tryRcpt(t.port, 'a@example.test', 'victim@elsewhere.test')).toBe('250 Accepted')
  })

  it('matches mapped, zoned and compressed client addresses in canonical form', () => {
    const match = networkMatcher(['192.0.2.0/24', '2001:db8::/32', '198.51.100.7'], 'networks')
    for (const ip of [
      '192.0.2.7',
      '::ffff:192.0.2.7',
      '::ffff:c000:207',
      '0:0:0:0:0:ffff:192.0.2.7',
      '2001:DB8:0:0::1',
      '2001:db8::1%eth0',
      '198.51.100.7',
    ]) {
      expect(match(ip), ip).toBe(true)
    }
    for (const ip of ['192.0.3.1', '::ffff:192.0.3.1', '2001:db9::1', '198.51.100.8', '::192.0.2.7', 'not-an-ip', ''])
      expect(match(ip), ip).toBe(false)
  })

  it('refuses invalid networks and networks wide enough to make an open relay when the chain is built', () => {
    for (const entry of ['0.0.0.0/0', '::/0', '128.0.0.0/1', '::ffff:0:0/96', '2000::/3']) {
      expect(() => relayPolicy({ networks: [entry] }), entry).toThrow(/open relay/)
    }
    for (const entry of ['192.0.2.0/33', 'example.com', '192.0.2.0/24/1', '10.0.0.0/x']) {
      expect(() => relayPolicy({ networks: [entry] }), entry).toThrow(RelayError)
    }
  })
})

describe('relay-policy: recipient domains', () => {
  it('accepts mail for its domains and their subdomains from anyone, and nothing else', async () => {
    const { t } = await policyRelay({ authenticated: false, domains: ['example.test', '.corp.example'] })
    expect(await tryRcpt(t.port, 'x@elsewhere.test', 'bob@EXAMPLE.test.')).toBe('250 Accepted')
    expect(await tryRcpt(t.port, 'x@elsewhere.test', 'bob@mail.corp.example')).toBe('250 Accepted')
    expect(await tryRcpt(t.port, 'x@elsewhere.test', 'bob@corp.example')).toBe('554 5.7.1 Relay access denied')
    expect(await tryRcpt(t.port, 'x@elsewhere.test', 'bob@notexample.test')).toBe('554 5.7.1 Relay access denied')
    expect(await tryRcpt(t.port, 'x@elsewhere.test', 'bob@example.test.elsewhere.test')).toBe('554 5.7.1 Relay access denied')
  })

  it('refuses a policy that grants nothing, or a whole top-level domain, when the chain is built', () => {
    expect(() => relayPolicy({ authenticated: false })).toThrow(/grants nothing/)
    expect(() => relayPolicy({ domains: ['.com'] })).toThrow(/too wide/)
    expect(() => relayPolicy({ domains: [''] })).toThrow(RelayError)
  })
})

describe('safe by construction', () => {
  it('refuses every recipient and says why at start-up when no stage can grant relaying', async () => {
    const warnings: string[] = []
    const logger: Logger = { debug() {}, info() {}, error() {}, warn: (_f, m) => void warnings.push(m) }
    const t = await startRelay({ stages: [], transport: memoryTransport(), logger })
    afterTest(() => t.close())
    expect(warnings).toContain('no stage declares grantsRelay: every recipient will be refused with 554 5.7.1')
    expect(await tryRcpt(t.port, 'a@example.test', 'b@example.test')).toBe('554 5.7.1 Relay access denied')
  })
})

describe('relay-policy: POP-before-SMTP', () => {
  it('grants relaying to an authorized client IP until the authorization expires', async () => {
    let now = Date.now()
    const pop = popBeforeSmtp({ clock: () => now })
    const { t } = await policyRelay({ popBeforeSmtp: pop })
    expect(await tryRcpt(t.port, 'a@example.test', 'victim@elsewhere.test')).toBe('554 5.7.1 Relay access denied')
    await pop.authorizeClient('::ffff:127.0.0.1', 2000)
    expect(await tryRcpt(t.port, 'a@example.test', 'victim@elsewhere.test')).toBe('250 Accepted')
    now += 2050
    expect(await tryRcpt(t.port, 'a@example.test', 'victim@elsewhere.test')).toBe('554 5.7.1 Relay access denied')
    await pop.authorizeClient('127.0.0.1')
    await pop.revokeClient('127.0.0.1')
    expect(await pop.isAuthorized('127.0.0.1')).toBe(false)
    await expect(pop.authorizeClient('not-an-ip')).rejects.toThrow(RelayError)
  })

  describe.runIf(havePeer('redis-server', 'apt-get install -y redis-server'))('shared through Redis', () => {
    let redis: TestRedis
    beforeAll(async () => void (redis = await startRedis()))
    afterAll(async () => redis?.stop())

    it('lets one process authorize a client that another relay process then grants, until it expires', async () => {
      const watcher = popBeforeSmtp({ store: { redis: redis.url } })
      const relaySide = popBeforeSmtp({ store: { redis: redis.url } })
      afterTest(
        () => watcher.close(),
        () => relaySide.close(),
      )
      const { t } = await policyRelay({ popBeforeSmtp: relaySide })
      await watcher.authorizeClient('127.0.0.1', '2s')
      const authorizedAt = Date.now()
      expect(await tryRcpt(t.port, 'a@example.test', 'victim@elsewhere.test')).toBe('250 Accepted')
      await sleep(2050 - (Date.now() - authorizedAt))
      expect(await tryRcpt(t.port, 'a@example.test', 'victim@elsewhere.test')).toBe('554 5.7.1 Relay access denied')
    })
  })
})
