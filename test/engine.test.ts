/**
 * The transaction engine: one meaning of the envelope in every hook, at the relay and nested;
 * outcomes announced once as typed events; DSNs that leave through the notices transport without
 * re-running the inbound chain or holding the client's 250; any ingress driving `begin()`.
 */
import { describe, expect, it } from 'vitest'
import { createPipeline, type DeliveryEvent, reject, SmtpError, type Stage, smtpTransport, type Transport } from '../src/index.js'
import { memoryTransport, startSink, testMessage } from '../src/testing/index.js'
import { afterTest } from './helpers/after-test.js'
import { RawSmtp } from './helpers/raw-smtp.js'
import { allowAll, startRelay } from './helpers/relay.js'

const RAW = 'From: a@example.com\r\nSubject: hello\r\nMessage-ID: <m1@example.com>\r\n\r\nHi.\r\n'

/** A stage that takes at most 20 recipients, and records what it saw of the envelope. */
function limitOf20(): Stage & { seen: { mail: number[]; rcpt: number[] } } {
  const seen = { mail: [] as number[], rcpt: [] as number[] }
  return {
    name: 'limit-of-20',
    seen,
    mailFrom(tx) {
      seen.mail.push(tx.envelope.rcptTo.length)
    },
    rcptTo(tx) {
      seen.rcpt.push(tx.envelope.rcptTo.length)
      if (tx.envelope.rcptTo.length >= 20) throw new SmtpError(452, '4.5.3', 'Too many recipients')
    },
  }
}

const rcpts = Array.from({ length: 25 }, (_, i) => `r${i}@example.org`)

describe('the envelope a stage sees', () => {
  it('is the same at the relay and in a nested pipeline: 20 of 25 recipients accepted in both', async () => {
    const atRelay = limitOf20()
    const relayed = memoryTransport()
    const t = await startRelay({ stages: [allowAll, atRelay], transport: relayed })
    afterTest(() => t.close())
    const { client } = await RawSmtp.connect(t.port)
    afterTest(() => client.close())
    expect(await client.command('EHLO client.test')).toMatch(/^250/)
    expect(await client.command('MAIL FROM:<a@example.com>')).toMatch(/^250/)
    const replies = []
    for (const r of rcpts) replies.push(await client.command(`RCPT TO:<${r}>`))
    expect(replies.filter((r) => r.startsWith('250'))).toHaveLength(20)
    expect(replies.slice(20)).toEqual(Array(5).fill('452 4.5.3 Too many recipients'))

    const nested = limitOf20()
    const inner = memoryTransport()
    const report = await createPipeline({ stages: [], transport: createPipeline({ stages: [nested], transport: inner }) }).deliver(
      await testMessage({ to: rcpts }),
    )
    expect(report.accepted).toHaveLength(20)
    expect(report.rejected.map((r) => r.error.toReply())).toEqual(Array(5).fill('452 4.5.3 Too many recipients'))
    expect(inner.messages[0]!.envelope.rcptTo).toHaveLength(20)

    expect(nested.seen).toEqual(atRelay.seen)
    expect(atRelay.seen.mail).toEqual([0])
    expect(atRelay.seen.rcpt).toEqual([...Array.from({ length: 20 }, (_, i) => i), 20, 20, 20, 20, 20])
  })
})

describe('delivery events', () => {
  it('announce every outcome of a message once: refused recipient, accepted, delivered, refused after DATA, DSN sent', async () => {
    const sink = await startSink({ rcpt: (a) => (a.startsWith('nobody@') ? '550 5.1.1 No such user' : undefined) })
    afterTest(() => sink.close())
    const noEve: Stage = {
      name: 'no-eve',
      rcptTo: (_tx, to) => (to.address.startsWith('eve@') ? Promise.reject(reject.policy('eve is blocked')) : undefined),
    }
    const t = await startRelay({ stages: [allowAll, noEve], transport: smtpTransport({ host: sink.host, port: sink.port }) })
    afterTest(() => t.close())
    const events: DeliveryEvent[] = []
    t.relay.events.subscribe((e) => events.push(e))
    const dsnSent = new Promise<void>((resolve) => t.relay.events.subscribe((e) => e.type === 'dsn' && resolve()))

    const { client } = await RawSmtp.connect(t.port)
    afterTest(() => client.close())
    expect(await client.command('EHLO client.test')).toMatch(/^250/)
    expect(await client.command('MAIL FROM:<alice@example.com>')).toMatch(/^250/)
    expect(await client.command('RCPT TO:<eve@example.org>')).toBe('550 5.7.1 Message rejected due to local policy')
    expect(await client.command('RCPT TO:<bob@example.org>')).toMatch(/^250/)
    expect(await client.command('RCPT TO:<nobody@example.org>')).toMatch(/^250/)
    expect(await client.command('DATA')).toMatch(/^354/)
    const reply = await client.command(`${RAW}.`)
    expect(reply).toMatch(/^250 2\.0\.0 Ok: queued as /)
    await dsnSent

    const id = reply.split(' ').pop()
    const mine = events.filter((e) => e.type !== 'error' && e.id === id)
    expect(mine.map((e) => (e.type === 'recipient-refused' ? `${e.type}:${e.phase}:${e.rcpt}` : e.type))).toEqual([
      'recipient-refused:rcpt:eve@example.org',
      'accepted',
      'delivered',
      'recipient-refused:data:nobody@example.org',
      'dsn',
    ])
    const accepted = mine.find((e) => e.type === 'accepted')!
    expect(accepted).toMatchObject({
      from: 'alice@example.com',
      to: ['bob@example.org', 'nobody@example.org'],
      accepted: 1,
      rejected: 1,
      reply,
      messageId: '<m1@example.com>',
    })
    expect(accepted.type === 'accepted' && Object.keys(accepted.stages)).toEqual(['smtp'])
    expect(mine.find((e) => e.type === 'recipient-refused')).toMatchObject({
      reply: '550 5.7.1 Message rejected due to local policy',
      stage: 'no-eve',
      reason: 'eve is blocked',
    })
    expect(mine.find((e) => e.type === 'dsn')).toMatchObject({
      outcome: 'sent',
      to: 'alice@example.com',
      failed: [{ rcpt: 'nobody@example.org', reply: '550 5.1.1 No such user' }],
    })
    expect(events.filter((e) => e.type === 'error')).toEqual([])
  })

  it('announce a refused sender and a refused message with the stage and its reason', async () => {
    const picky: Stage = {
      name: 'picky',
      mailFrom: (_tx, from) => (from?.address === 'spam@example.com' ? Promise.reject(reject.policy('known spammer')) : undefined),
      data: async () => {
        throw reject.policy('no content wanted')
      },
    }
    const t = await startRelay({ stages: [allowAll, picky], transport: memoryTransport() })
    afterTest(() => t.close())
    const events: DeliveryEvent[] = []
    t.relay.events.subscribe((e) => events.push(e))
    const { client } = await RawSmtp.connect(t.port)
    afterTest(() => client.close())
    expect(await client.command('EHLO client.test')).toMatch(/^250/)
    expect(await client.command('MAIL FROM:<spam@example.com>')).toBe('550 5.7.1 Message rejected due to local policy')
    expect(await client.startMessage('ann@example.com', ['bob@example.org'])).toMatch(/^354/)
    expect(await client.command(`${RAW}.`)).toBe('550 5.7.1 Message rejected due to local policy')
    expect(events.map((e) => e.type)).toEqual(['sender-refused', 'message-refused'])
    expect(events[0]).toMatchObject({ from: 'spam@example.com', stage: 'picky', reason: 'known spammer' })
    expect(events[1]).toMatchObject({ from: 'ann@example.com', to: ['bob@example.org'], accepted: 0, stage: 'picky', reason: 'no content wanted' })
  })
})

describe('DSNs for recipients refused after DATA', () => {
  it('leave through the notices transport without re-running the inbound stages or holding the 250', async () => {
    let dataCalls = 0
    const counting: Stage = { name: 'counting', data: (_msg, next) => (dataCalls++, next()) }
    const partial = memoryTransport({
      reject: (rcpt) => (rcpt.address.startsWith('nobody@') ? new SmtpError(550, '5.1.1', 'No such user') : undefined),
    })
    let release!: () => void
    const held = new Promise<void>((resolve) => (release = resolve))
    const sentNotices: string[] = []
    const notices: Transport = {
      name: 'notices',
      async send(msg) {
        await held // a notices transport that takes its time
        sentNotices.push(msg.envelope.rcptTo[0]!.address)
        return { accepted: msg.envelope.rcptTo, rejected: [] }
      },
    }
    const pipeline = createPipeline({ stages: [allowAll, counting], transport: partial, notices })
    const t = await startRelay({ pipeline })
    afterTest(() => t.close())
    const info = await t.client().sendMail({ envelope: { from: 'alice@example.com', to: ['bob@example.org', 'nobody@example.org'] }, raw: RAW })
    // The client has its 250 while the notice is still being handed over.
    expect(info.response).toMatch(/^250 2\.0\.0 /)
    expect(sentNotices).toEqual([])
    const sent = new Promise<void>((resolve) => t.relay.events.subscribe((e) => e.type === 'dsn' && resolve()))
    release()
    await sent
    expect(sentNotices).toEqual(['alice@example.com'])
    expect(dataCalls).toBe(1)
  })
})

describe('an ingress of your own', () => {
  it('drives the same transaction: begin, addRecipient, data with a raw message', async () => {
    const transport = memoryTransport()
    const pipeline = createPipeline({ stages: [], transport })
    const session = (await testMessage()).session
    const tx = await pipeline.begin(session, { address: 'app@example.com' })
    expect(await tx.addRecipient({ address: 'user@example.org' })).toEqual([{ address: 'user@example.org' }])
    const outcome = await tx.data({ raw: 'Subject: from an HTTP API\r\n\r\nhello\r\n' })
    expect(outcome).toMatchObject({
      accepted: [{ address: 'user@example.org' }],
      rejected: [],
      reply: `250 2.0.0 Ok: queued as ${tx.id}`,
      aborted: false,
    })
    expect(transport.messages[0]!.raw.toString()).toBe('Subject: from an HTTP API\r\n\r\nhello\r\n')
    await expect(tx.addRecipient({ address: 'late@example.org' })).rejects.toMatchObject({ code: 'ERR_RELAY_TRANSACTION_STATE' })
  })
})
