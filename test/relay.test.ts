import { once } from 'node:events'
import { createServer } from 'node:net'
import { describe, expect, it } from 'vitest'
import { type Logger, reject, SmtpError, type Stage, smtpTransport } from '../src/index.js'
import { memoryTransport, startSink } from '../src/testing/index.js'
import { afterTest } from './helpers/after-test.js'
import { RawSmtp } from './helpers/raw-smtp.js'
import { allowAll, allowDomains, refusal, startRelay } from './helpers/relay.js'

const RAW = 'From: <alice@example.com>\r\nTo: <bob@example.org>\r\nSubject: hello\r\n\r\nHi Bob.\r\n'

async function sinkAndRelay(sinkOptions: Parameters<typeof startSink>[0] = {}, stages: Stage[] = [allowAll], extra = {}) {
  const sink = await startSink(sinkOptions)
  const t = await startRelay({ stages, transport: smtpTransport({ host: sink.host, port: sink.port }), ...extra })
  afterTest(
    () => sink.close(),
    () => t.close(),
  )
  return { sink, t }
}

/** The message as the sink got it, without the Received field the relay prepended. */
function withoutReceived(raw: Buffer): string {
  return raw.toString('latin1').replace(/^Received: [^\r]*\r\n(?:\t[^\r]*\r\n)*/, '')
}

describe('relaying to an upstream', () => {
  it('delivers the exact bytes with a Received field and answers 250 2.0.0 with the queue id', async () => {
    const { sink, t } = await sinkAndRelay()
    const info = await t.client().sendMail({ envelope: { from: 'alice@example.com', to: ['bob@example.org'] }, raw: RAW })
    expect(info.response).toMatch(/^250 2\.0\.0 Ok: queued as [0-9A-Z]{16}$/)
    const [message] = await sink.waitForMessages(1)
    expect(message!.mailFrom).toBe('alice@example.com')
    expect(message!.rcptTo).toEqual(['bob@example.org'])
    expect(withoutReceived(message!.raw)).toBe(RAW)
    const id = String(info.response).split(' ').pop()
    expect(message!.raw.toString()).toMatch(
      new RegExp(
        `^Received: from \\[127\\.0\\.0\\.1\\] \\(unknown \\[127\\.0\\.0\\.1\\]\\)\r\n\tby relay\\.test \\(relaychain\\)\r\n\twith ESMTP id ${id} for <bob@example\\.org>;\r\n\t\\w{3}, \\d{1,2} \\w{3} \\d{4} \\d\\d:\\d\\d:\\d\\d \\+0000\r\n`,
      ),
    )
  })

  it('rejects RCPT with 554 5.7.1 when no stage grants relaying, and forwards nothing', async () => {
    const { sink, t } = await sinkAndRelay({}, [])
    const err = await refusal(t.client().sendMail({ envelope: { from: 'alice@example.com', to: ['victim@elsewhere.test'] }, raw: RAW }))
    expect(err.response).toBe('554 5.7.1 Relay access denied')
    expect(sink.messages).toHaveLength(0)
  })

  it('refuses only the recipients no stage granted, and delivers to the others', async () => {
    const { sink, t } = await sinkAndRelay({}, [allowDomains('example.org')])
    const info = await t.client().sendMail({ envelope: { from: 'alice@example.com', to: ['bob@example.org', 'eve@elsewhere.test'] }, raw: RAW })
    expect(info.accepted).toEqual(['bob@example.org'])
    expect(info.rejected).toEqual(['eve@elsewhere.test'])
    expect((info.rejectedErrors as Array<{ response: string }>)[0]!.response).toBe('554 5.7.1 Relay access denied')
    const [message] = await sink.waitForMessages(1)
    expect(message!.rcptTo).toEqual(['bob@example.org'])
  })

  it('passes an upstream 5xx at DATA to the client with its code and enhanced code', async () => {
    const { sink, t } = await sinkAndRelay({ data: () => '554 5.7.1 Message looks like spam' })
    const err = await refusal(t.client().sendMail({ envelope: { from: 'alice@example.com', to: ['bob@example.org'] }, raw: RAW }))
    expect(err.response).toBe('554 5.7.1 Message looks like spam')
    expect(sink.messages).toHaveLength(0)
  })

  it('passes an upstream 4xx at DATA to the client so it retries', async () => {
    const { t } = await sinkAndRelay({ data: () => '451 4.3.0 Try again later' })
    const err = await refusal(t.client().sendMail({ envelope: { from: 'alice@example.com', to: ['bob@example.org'] }, raw: RAW }))
    expect(err.response).toBe('451 4.3.0 Try again later')
  })

  it('answers 451 4.4.1 when the upstream cannot be reached', async () => {
    const closed = createServer()
    closed.listen(0, '127.0.0.1')
    await once(closed, 'listening')
    const port = (closed.address() as { port: number }).port
    await new Promise((resolve) => closed.close(resolve))
    const t = await startRelay({ stages: [allowAll], transport: smtpTransport({ host: '127.0.0.1', port }) })
    afterTest(() => t.close())
    const err = await refusal(t.client().sendMail({ envelope: { from: 'alice@example.com', to: ['bob@example.org'] }, raw: RAW }))
    expect(err.response).toBe('451 4.4.1 Upstream server unavailable, try again later')
  })

  it('answers with the upstream RCPT error when the upstream refuses every recipient', async () => {
    const { t } = await sinkAndRelay({ rcpt: () => '550 5.1.1 No such user here' })
    const err = await refusal(t.client().sendMail({ envelope: { from: 'alice@example.com', to: ['nobody@example.org'] }, raw: RAW }))
    expect(err.response).toBe('550 5.1.1 No such user here')
  })

  it('answers 250 and bounces a DSN to the sender for recipients the upstream refused after DATA', async () => {
    const { sink, t } = await sinkAndRelay({ rcpt: (a) => (a.startsWith('nobody@') ? '550 5.1.1 No such user here' : undefined) })
    const info = await t.client().sendMail({ envelope: { from: 'alice@example.com', to: ['bob@example.org', 'nobody@example.org'] }, raw: RAW })
    expect(info.response).toMatch(/^250 2\.0\.0 /)
    const [delivered, dsn] = await sink.waitForMessages(2)
    expect(delivered!.rcptTo).toEqual(['bob@example.org'])
    expect(dsn!.mailFrom).toBe('')
    expect(dsn!.rcptTo).toEqual(['alice@example.com'])
    const text = dsn!.raw.toString()
    expect(text).toContain('Content-Type: multipart/report; report-type=delivery-status;')
    expect(text).toContain('Final-Recipient: rfc822; nobody@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n')
    expect(text).toContain('Diagnostic-Code: smtp; 550 5.1.1 No such user here')
    expect(text).toContain('Subject: hello')
    expect(text).not.toContain('Hi Bob.')
  })

  it('sends no DSN when the refused recipient asked for NOTIFY=NEVER', async () => {
    const logs: string[] = []
    const { sink, t } = await sinkAndRelay({ rcpt: (a) => (a.startsWith('nobody@') ? '550 5.1.1 No such user here' : undefined) }, [allowAll], {
      logger: capture(logs),
    })
    const { client } = await RawSmtp.connect(t.port)
    afterTest(async () => client.close())
    await client.command('EHLO raw.test')
    expect(await client.command('MAIL FROM:<alice@example.com>')).toBe('250 Accepted')
    expect(await client.command('RCPT TO:<bob@example.org>')).toBe('250 Accepted')
    expect(await client.command('RCPT TO:<nobody@example.org> NOTIFY=NEVER')).toBe('250 Accepted')
    expect(await client.command('DATA')).toMatch(/^354/)
    expect(await client.command(`${RAW}.`)).toMatch(/^250 2\.0\.0 /)
    await sink.waitForMessages(1)
    expect(logs.join('\n')).toContain('no DSN due')
    expect(sink.messages).toHaveLength(1)
  })

  it('answers pipelined MAIL, RCPT, RCPT and DATA in order', async () => {
    const { sink, t } = await sinkAndRelay({}, [allowDomains('example.org')])
    const { client } = await RawSmtp.connect(t.port)
    afterTest(async () => client.close())
    expect(await client.command('EHLO raw.test')).toContain('250-PIPELINING')
    client.write('MAIL FROM:<alice@example.com>\r\nRCPT TO:<bob@example.org>\r\nRCPT TO:<eve@elsewhere.test>\r\nDATA\r\n')
    expect(await client.reply()).toBe('250 Accepted')
    expect(await client.reply()).toBe('250 Accepted')
    expect(await client.reply()).toBe('554 5.7.1 Relay access denied')
    expect(await client.reply()).toMatch(/^354 /)
    expect(await client.command(`${RAW}.`)).toMatch(/^250 2\.0\.0 Ok: queued as /)
    const [message] = await sink.waitForMessages(1)
    expect(message!.rcptTo).toEqual(['bob@example.org'])
  })

  it('carries BODY=8BITMIME and 8-bit bytes through unchanged', async () => {
    const { sink, t } = await sinkAndRelay()
    const raw = Buffer.concat([
      Buffer.from('Subject: caf\xe9\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: 8bit\r\n\r\n', 'latin1'),
      Buffer.from([0xe9, 0xe8, 0xff, 0x0d, 0x0a]),
    ])
    await t.client().sendMail({ envelope: { from: 'alice@example.com', to: ['bob@example.org'], use8BitMime: true } as never, raw })
    const [message] = await sink.waitForMessages(1)
    expect(message!.mailArgs.BODY).toBe('8BITMIME')
    expect(Buffer.from(withoutReceived(message!.raw), 'latin1').equals(raw)).toBe(true)
  })

  it('carries SMTPUTF8 addresses and UTF-8 headers through unchanged', async () => {
    const { sink, t } = await sinkAndRelay()
    const raw = Buffer.from('From: Jörg <jörg@bücher.example>\r\nTo: <δοκιμή@παράδειγμα.example>\r\nSubject: Grüße\r\n\r\nHallo.\r\n')
    await t.client().sendMail({ envelope: { from: 'jörg@bücher.example', to: ['δοκιμή@παράδειγμα.example'] }, raw })
    const [message] = await sink.waitForMessages(1)
    expect(message!.mailArgs.SMTPUTF8).toBe(true)
    expect(message!.mailFrom).toBe('jörg@bücher.example')
    expect(message!.rcptTo).toEqual(['δοκιμή@παράδειγμα.example'])
    expect(Buffer.from(withoutReceived(message!.raw), 'latin1').equals(raw)).toBe(true)
  })

  it('relays the null sender as MAIL FROM:<>', async () => {
    const { sink, t } = await sinkAndRelay()
    const { client } = await RawSmtp.connect(t.port)
    afterTest(async () => client.close())
    expect(await client.startMessage('', ['bob@example.org'])).toMatch(/^354/)
    expect(await client.command(`${RAW}.`)).toMatch(/^250 /)
    const [message] = await sink.waitForMessages(1)
    expect(message!.mailFrom).toBe('')
  })

  it('carries DSN parameters upstream, one transaction per distinct NOTIFY/ORCPT', async () => {
    const { sink, t } = await sinkAndRelay()
    const { client } = await RawSmtp.connect(t.port)
    afterTest(async () => client.close())
    await client.command('EHLO raw.test')
    expect(await client.command('MAIL FROM:<alice@example.com> RET=HDRS ENVID=env+2B1')).toBe('250 Accepted')
    expect(await client.command('RCPT TO:<bob@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob+2Bx@example.org')).toBe('250 Accepted')
    expect(await client.command('RCPT TO:<carol@example.org> NOTIFY=NEVER')).toBe('250 Accepted')
    expect(await client.command('DATA')).toMatch(/^354/)
    expect(await client.command(`${RAW}.`)).toMatch(/^250 /)
    const messages = await sink.waitForMessages(2)
    const bob = messages.find((m) => m.rcptTo.includes('bob@example.org'))!
    const carol = messages.find((m) => m.rcptTo.includes('carol@example.org'))!
    expect(bob.mailArgs).toMatchObject({ RET: 'HDRS', ENVID: 'env+1' })
    expect(bob.rcptArgs[0]).toMatchObject({ NOTIFY: 'SUCCESS,FAILURE', ORCPT: 'rfc822;bob+x@example.org' })
    expect(carol.rcptArgs[0]).toMatchObject({ NOTIFY: 'NEVER' })
    expect(withoutReceived(carol.raw)).toBe(RAW)
  })

  it('refuses a recipient beyond the limit with 452 4.5.3', async () => {
    const { t } = await sinkAndRelay({}, [allowAll], { limits: { recipients: 2 } })
    const { client } = await RawSmtp.connect(t.port)
    afterTest(async () => client.close())
    await client.command('EHLO raw.test')
    await client.command('MAIL FROM:<alice@example.com>')
    expect(await client.command('RCPT TO:<a@example.org>')).toBe('250 Accepted')
    expect(await client.command('RCPT TO:<b@example.org>')).toBe('250 Accepted')
    expect(await client.command('RCPT TO:<c@example.org>')).toBe('452 4.5.3 Too many recipients')
  })
})

describe('stage hooks through the relay', () => {
  it('answers 451 4.3.0 when a stage throws something that is not an SmtpError, and logs the cause', async () => {
    const logs: string[] = []
    const broken: Stage = {
      name: 'broken',
      async data() {
        throw new Error('database connection lost')
      },
    }
    const transport = memoryTransport()
    const t = await startRelay({ stages: [allowAll, broken], transport, logger: capture(logs) })
    afterTest(() => t.close())
    const err = await refusal(t.client().sendMail({ envelope: { from: 'alice@example.com', to: ['bob@example.org'] }, raw: RAW }))
    expect(err.response).toBe('451 4.3.0 Temporary local problem, please try again later')
    expect(transport.messages).toHaveLength(0)
    expect(logs.join('\n')).toContain('database connection lost')
  })

  it('answers a MAIL FROM refusal with the stage error, without its internal reason', async () => {
    const senders: Stage = {
      name: 'block-sender',
      mailFrom(_tx, from) {
        if (from?.address === 'spammer@bad.test') throw reject.policy('listed in local blocklist')
      },
    }
    const t = await startRelay({ stages: [senders, allowAll], transport: memoryTransport() })
    afterTest(() => t.close())
    const err = await refusal(t.client().sendMail({ envelope: { from: 'spammer@bad.test', to: ['bob@example.org'] }, raw: RAW }))
    expect(err.response).toBe('550 5.7.1 Message rejected due to local policy')
  })

  it('refuses one recipient a stage throws for and keeps the others', async () => {
    const noBob: Stage = {
      name: 'no-bob',
      rcptTo(_tx, to) {
        if (to.address.startsWith('bob@')) throw new SmtpError(550, '5.1.1', 'Mailbox unavailable')
      },
    }
    const transport = memoryTransport()
    const t = await startRelay({ stages: [noBob, allowAll], transport })
    afterTest(() => t.close())
    const info = await t.client().sendMail({ envelope: { from: 'alice@example.com', to: ['bob@example.org', 'carol@example.org'] }, raw: RAW })
    expect(info.rejected).toEqual(['bob@example.org'])
    expect(transport.messages[0]!.envelope.rcptTo.map((r) => r.address)).toEqual(['carol@example.org'])
  })

  it('delivers to the rewritten sender and the expanded recipients', async () => {
    const rewrite: Stage = {
      name: 'rewrite',
      mailFrom: (_tx, from) => (from ? { address: from.address.replace('@old.example', '@new.example') } : undefined),
      rcptTo: (_tx, to) => (to.address === 'team@example.org' ? [{ address: 'ann@example.org' }, { address: 'ben@example.org' }] : undefined),
    }
    const transport = memoryTransport()
    const t = await startRelay({ stages: [rewrite, allowAll], transport })
    afterTest(() => t.close())
    await t.client().sendMail({ envelope: { from: 'alice@old.example', to: ['team@example.org', 'ann@example.org'] }, raw: RAW })
    const [delivery] = transport.messages
    expect(delivery!.envelope.mailFrom?.address).toBe('alice@new.example')
    expect(delivery!.envelope.rcptTo.map((r) => r.address)).toEqual(['ann@example.org', 'ben@example.org'])
    expect(delivery!.message.original.mailFrom?.address).toBe('alice@old.example')
  })

  it('logs one line per message with stage timings and never the body', async () => {
    const logs: string[] = []
    const timed: Stage = { name: 'timed', data: (_msg, next) => next() }
    const t = await startRelay({ stages: [allowAll, timed], transport: memoryTransport(), logger: capture(logs) })
    afterTest(() => t.close())
    await t.client().sendMail({ envelope: { from: 'alice@example.com', to: ['bob@example.org'] }, raw: RAW })
    const lines = logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === 'message relayed')
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatchObject({ from: 'alice@example.com', to: ['bob@example.org'], accepted: 1, rejected: 0 })
    expect(Object.keys(lines[0]!.stages as object)).toEqual(['timed', 'memory'])
    expect(logs.join('\n')).not.toContain('Hi Bob')
  })
})

function capture(lines: string[]): Logger {
  const write = (level: string) => (fields: Record<string, unknown>, msg: string) =>
    lines.push(JSON.stringify({ level, msg, ...fields }, (_k, v: unknown) => (v instanceof Error ? v.message : v)))
  return { debug: write('debug'), info: write('info'), warn: write('warn'), error: write('error') }
}
