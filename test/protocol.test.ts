/**
 * SMTP details an outside test battery found: the reserved postmaster mailbox, ESMTP parameters
 * we do not implement, command lines that end in a bare LF, and an upstream whose certificate
 * cannot be verified.
 */
import { describe, expect, it } from 'vitest'
import { createRelay, smtpTransport, staticAuthenticator } from '../src/index.js'
import { memoryTransport } from '../src/testing/index.js'
import { afterTest, relayToSink } from './helpers/after-test.js'
import { LogRecorder, TLS } from './helpers/fault-relay.js'
import { RawSmtp } from './helpers/raw-smtp.js'
import { allowDomains, startRelay } from './helpers/relay.js'

describe('RCPT TO:<Postmaster>', () => {
  it('is accepted without a domain (RFC 5321 section 4.5.1) and delivered to the configured postmaster', async () => {
    const { sink, t } = await relayToSink([allowDomains('example.org')], { postmaster: 'hostmaster@example.org' })
    const { client } = await RawSmtp.connect(t.port)
    afterTest(() => client.close())
    expect(await client.startMessage('someone@elsewhere.example', ['Postmaster'])).toMatch(/^354 /)
    expect(await client.command('Subject: to the postmaster\r\n\r\nhello\r\n.')).toMatch(/^250 2\.0\.0 Ok: queued as /)
    const [message] = await sink.waitForMessages(1)
    expect(message!.rcptTo).toEqual(['hostmaster@example.org'])
  })

  it('goes to postmaster@ the relay hostname by default, and other recipients still need relay permission', async () => {
    const { sink, t } = await relayToSink([allowDomains('example.org')])
    const { client } = await RawSmtp.connect(t.port)
    afterTest(() => client.close())
    expect(await client.command('EHLO client.test')).toMatch(/^250/)
    expect(await client.command('MAIL FROM:<someone@elsewhere.example>')).toMatch(/^250 /)
    expect(await client.command('RCPT TO:<postmaster>')).toMatch(/^250 /)
    expect(await client.command('RCPT TO:<victim@elsewhere.example>')).toBe('554 5.7.1 Relay access denied')
    expect(await client.command('DATA')).toMatch(/^354 /)
    expect(await client.command('Subject: hi\r\n\r\nhello\r\n.')).toMatch(/^250 /)
    const [message] = await sink.waitForMessages(1)
    expect(message!.rcptTo).toEqual(['postmaster@relay.test'])
  })
})

describe('ESMTP parameters', () => {
  it.each([
    ['MAIL FROM:<a@example.com> FOO=bar', '555 5.5.4 MAIL FROM parameter FOO not recognized'],
    ['MAIL FROM:<a@example.com> REQUIRETLS', '555 5.5.4 MAIL FROM parameter REQUIRETLS not recognized'],
    ['MAIL FROM:<a@example.com> SIZE=999999999', `552 5.3.4 Message size exceeds fixed limit of ${25 * 1024 * 1024} bytes`],
  ])('%s → %s', async (command, reply) => {
    const { t } = await relayToSink([allowDomains('example.org')])
    const { client } = await RawSmtp.connect(t.port)
    afterTest(() => client.close())
    expect(await client.command('EHLO client.test')).toMatch(/^250/)
    expect(await client.command(command)).toBe(reply)
  })

  it('refuses an unknown RCPT TO parameter with 555 5.5.4 and accepts the ones it implements', async () => {
    const { t } = await relayToSink([allowDomains('example.org')])
    const { client } = await RawSmtp.connect(t.port)
    afterTest(() => client.close())
    expect(await client.command('EHLO client.test')).toMatch(/^250/)
    expect(await client.command('MAIL FROM:<a@example.com> SIZE=100 BODY=8BITMIME RET=HDRS ENVID=x1')).toMatch(/^250 /)
    expect(await client.command('RCPT TO:<b@example.org> XYZ')).toBe('555 5.5.4 RCPT TO parameter XYZ not recognized')
    expect(await client.command('RCPT TO:<b@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b@example.org')).toMatch(/^250 /)
  })
})

describe('command lines that end in a bare LF', () => {
  it("are accepted by default, as most MTAs do ('reject' is about message content)", async () => {
    const { t } = await relayToSink([allowDomains('example.org')])
    const { client } = await RawSmtp.connect(t.port)
    afterTest(() => client.close())
    client.write('EHLO client.test\n')
    expect(await client.reply()).toMatch(/^250/)
    client.write('MAIL FROM:<a@example.com>\n')
    expect(await client.reply()).toMatch(/^250 /)
  })

  it("end the session with 521 5.5.2 under bareLineEndings: 'strict', before the command runs", async () => {
    const { sink, t } = await relayToSink([allowDomains('example.org')], { bareLineEndings: 'strict' })
    const { client } = await RawSmtp.connect(t.port)
    afterTest(() => client.close())
    expect(await client.command('EHLO client.test')).toMatch(/^250/)
    client.write('MAIL FROM:<a@example.com>\n')
    expect(await client.reply()).toBe('521 5.5.2 Bare LF in command line refused; lines must end with CRLF')
    await client.closed
    // CRLF clients are unaffected.
    const ok = t.client()
    expect(
      (await ok.sendMail({ envelope: { from: 'a@example.com', to: ['b@example.org'] }, raw: 'Subject: crlf\r\n\r\nfine\r\n' })).response,
    ).toMatch(/^250 /)
    expect(sink.messages).toHaveLength(1)
  })
})

describe('an upstream whose certificate cannot be verified', () => {
  it('tempfails every message with 451 4.4.1 and logs the reason once at warn level', async () => {
    const upstream = createRelay({
      hostname: 'upstream.test',
      transport: memoryTransport(),
      listeners: [{ port: 0, mode: 'submission' }],
      tls: TLS,
      auth: { authenticator: staticAuthenticator({}) },
    })
    const [bound] = await upstream.listen()
    afterTest(() => upstream.close())
    const logs = new LogRecorder()
    const t = await startRelay({
      stages: [allowDomains('example.org')],
      transport: smtpTransport({ host: '127.0.0.1', port: bound!.port, requireTls: true }),
      logger: logs.logger,
    })
    afterTest(() => t.close())
    const client = t.client()
    for (let i = 0; i < 3; i++) {
      const err = await client.sendMail({ envelope: { from: 'a@example.com', to: ['b@example.org'] }, raw: 'Subject: x\r\n\r\ny\r\n' }).then(
        () => undefined,
        (e: { response?: string }) => e.response,
      )
      expect(err).toBe('451 4.4.1 Upstream server unavailable, try again later')
    }
    const warnings = logs.lines.filter((l) => l.level === 'warn' && l.message.startsWith('next hop unavailable'))
    expect(warnings).toHaveLength(1)
    expect(String(warnings[0]!.fields.reason)).toMatch(/certificate/)
  })
})
