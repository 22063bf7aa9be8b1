import { once } from 'node:events'
import { SMTPServer } from 'smtp-server'
import { afterEach, describe, expect, it } from 'vitest'
import type { AddressOptions } from '../src/index.js'
import { commandHooksInstalled } from '../src/ingress/smtp-server/commands.js'
import { type MemoryTransport, memoryTransport } from '../src/testing/index.js'
import { RawSmtp } from './helpers/raw-smtp.js'
import { allowAll, startRelay, type TestRelay } from './helpers/relay.js'

let t: TestRelay | undefined
let client: RawSmtp | undefined
afterEach(async () => {
  client?.close()
  await t?.close()
  client = t = undefined
})

/** A relay that relays anything (so that only the address checks refuse), and a raw client after EHLO. */
async function open(addresses?: AddressOptions): Promise<{ raw: RawSmtp; transport: MemoryTransport }> {
  const transport = memoryTransport()
  t = await startRelay({ stages: [allowAll], transport, ...(addresses ? { addresses } : {}) })
  ;({ client } = await RawSmtp.connect(t.port))
  await client.command('EHLO raw.test')
  return { raw: client, transport }
}

const ROUTING_RCPT = '553 5.1.3 Routing syntax is not accepted in the recipient address'

describe('address hygiene at RCPT', () => {
  const cases: Array<[string, string]> = [
    ['a source route', '<@relay.test:victim@elsewhere.test>'],
    ['a source route with several hops', '<@a.test,@b.test:victim@elsewhere.test>'],
    ['the % hack', '<victim%elsewhere.test@example.org>'],
    ['a bang path', '<elsewhere.test!victim@example.org>'],
    ['a quoted local part with @', '<"victim@elsewhere.test"@example.org>'],
    ['a quoted local part with %', '<"victim%elsewhere.test"@example.org>'],
    ['two @ signs', '<victim@elsewhere.test@example.org>'],
  ]
  for (const [what, path] of cases) {
    it(`refuses ${what} with 553 5.1.3`, async () => {
      const { raw } = await open()
      expect(await raw.command('MAIL FROM:<alice@example.com>')).toBe('250 Accepted')
      expect(await raw.command(`RCPT TO:${path}`)).toBe(ROUTING_RCPT)
    })
  }

  it('refuses IP-literal domains with 553 5.1.3 unless allowed', async () => {
    const { raw } = await open()
    await raw.command('MAIL FROM:<alice@example.com>')
    expect(await raw.command('RCPT TO:<victim@[192.0.2.1]>')).toBe('553 5.1.3 Address literals are not accepted in the recipient address')
    expect(await raw.command('RCPT TO:<victim@[IPv6:2001:db8::1]>')).toBe('553 5.1.3 Address literals are not accepted in the recipient address')
  })

  it('refuses invalid syntax with 501 5.1.3', async () => {
    const { raw } = await open()
    await raw.command('MAIL FROM:<alice@example.com>')
    for (const path of [
      '<>',
      '<victim>',
      '<@example.org>',
      '<victim@>',
      '<victim@exa mple.org>',
      '<victim@-example.org>',
      '<vic..tim@example.org>',
      'victim@example.org',
      `<${'a'.repeat(65)}@example.org>`,
      '<victim@[300.1.1.1]>',
    ]) {
      expect(await raw.command(`RCPT TO:${path}`), path).toBe('501 5.1.3 Bad recipient address syntax')
    }
  })

  it('refuses a non-ASCII address without SMTPUTF8 with 553 5.6.7, and accepts it with SMTPUTF8', async () => {
    const { raw, transport } = await open()
    await raw.command('MAIL FROM:<alice@example.com>')
    expect(await raw.command('RCPT TO:<jörg@bücher.example>')).toBe('553 5.6.7 Non-ASCII address requires SMTPUTF8')
    expect(await raw.command('RSET')).toMatch(/^250/)
    expect(await raw.command('MAIL FROM:<alice@example.com> SMTPUTF8')).toBe('250 Accepted')
    expect(await raw.command('RCPT TO:<jörg@BÜCHER.example>')).toBe('250 Accepted')
    expect(await raw.command('DATA')).toMatch(/^354/)
    expect(await raw.command('Subject: x\r\n\r\nx\r\n.')).toMatch(/^250 2\.0\.0/)
    expect(transport.messages[0]!.envelope.rcptTo[0]!.address).toBe('jörg@bücher.example')
  })

  it('normalises case and a trailing dot in the domain, and keeps the local part and punycode as sent', async () => {
    const { raw, transport } = await open()
    expect(await raw.command('MAIL FROM:<Alice@Example.COM.>')).toBe('250 Accepted')
    expect(await raw.command('RCPT TO:<Bob@EXAMPLE.org.>')).toBe('250 Accepted')
    expect(await raw.command('RCPT TO:<carol@XN--bcher-kva.example> NOTIFY=NEVER')).toBe('250 Accepted')
    expect(await raw.command('DATA')).toMatch(/^354/)
    expect(await raw.command('Subject: x\r\n\r\nx\r\n.')).toMatch(/^250 2\.0\.0/)
    const { envelope } = transport.messages[0]!
    expect(envelope.mailFrom?.address).toBe('Alice@example.com')
    expect(envelope.rcptTo).toEqual([{ address: 'Bob@example.org' }, { address: 'carol@xn--bcher-kva.example', args: { NOTIFY: 'NEVER' } }])
  })

  it('accepts a quoted local part without routing characters, and the domainless <Postmaster>', async () => {
    const { raw } = await open()
    await raw.command('MAIL FROM:<alice@example.com>')
    expect(await raw.command('RCPT TO:<"bob.smith"@example.org>')).toBe('250 Accepted')
    expect(await raw.command('RCPT TO:<Postmaster>')).toBe('250 Accepted')
  })

  it('ignores a source route, and accepts %, ! and IP literals, when each check is relaxed', async () => {
    const { raw, transport } = await open({ sourceRoutes: true, percentHack: true, bangPaths: true, ipLiterals: true })
    await raw.command('MAIL FROM:<alice@example.com>')
    expect(await raw.command('RCPT TO:<@relay.test:bob@example.org>')).toBe('250 Accepted')
    expect(await raw.command('RCPT TO:<a%b@example.org>')).toBe('250 Accepted')
    expect(await raw.command('RCPT TO:<a!b@example.org>')).toBe('250 Accepted')
    expect(await raw.command('RCPT TO:<c@[192.0.2.1]>')).toBe('250 Accepted')
    expect(await raw.command('RCPT TO:<"x@y"@example.org>')).toBe(ROUTING_RCPT)
    expect(await raw.command('DATA')).toMatch(/^354/)
    expect(await raw.command('Subject: x\r\n\r\nx\r\n.')).toMatch(/^250 2\.0\.0/)
    expect(transport.messages[0]!.envelope.rcptTo.map((r) => r.address)).toEqual([
      'bob@example.org',
      'a%b@example.org',
      'a!b@example.org',
      'c@[192.0.2.1]',
    ])
  })
})

describe('address hygiene at MAIL', () => {
  it('refuses routing syntax, literals and bad syntax in the sender with 5.1.7, and accepts the null sender', async () => {
    const { raw } = await open()
    expect(await raw.command('MAIL FROM:<@relay.test:alice@example.com>')).toBe('553 5.1.7 Routing syntax is not accepted in the sender address')
    expect(await raw.command('MAIL FROM:<alice%example.com@relay.test>')).toBe('553 5.1.7 Routing syntax is not accepted in the sender address')
    expect(await raw.command('MAIL FROM:<alice@[127.0.0.1]>')).toBe('553 5.1.7 Address literals are not accepted in the sender address')
    expect(await raw.command('MAIL FROM:<alice@exa_mple.com>')).toBe('501 5.1.7 Bad sender address syntax')
    expect(await raw.command('MAIL FROM:<>')).toBe('250 Accepted')
  })
})

describe('smtp-server command hooks', () => {
  it('hook this smtp-server version (fails if a new version changed the code they wrap)', () => {
    expect(commandHooksInstalled()).toBe(true)
  })

  it('leave other smtp-server instances in the process as they were', async () => {
    expect(commandHooksInstalled()).toBe(true)
    const server = new SMTPServer({
      disableReverseLookup: true,
      logger: false,
      authOptional: true,
      disabledCommands: ['STARTTLS'],
      allowInsecureAuth: true,
      onAuth: (_a, _s, cb) => cb(null, { user: 'x' }),
    })
    server.listen(0, '127.0.0.1')
    await once(server.server, 'listening')
    const { client: raw } = await RawSmtp.connect((server.server.address() as { port: number }).port)
    try {
      expect(await raw.command('EHLO raw.test')).toContain('250 AUTH LOGIN PLAIN')
      expect(await raw.command(`AUTH PLAIN ${Buffer.from('\0x\0y').toString('base64')}`)).toBe('235 Authentication successful')
      expect(await raw.command('MAIL FROM:<a@example.com.>')).toBe('501 Error: Bad sender address syntax')
      expect(await raw.command('MAIL FROM:<@a.test:a@example.com>')).toBe('250 Accepted')
    } finally {
      raw.close()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  })
})
