import { createTransport } from 'nodemailer'
import { createRelay, relayPolicy, type SmtpError, smtpTransport } from 'relaychain'
import { memoryTransport, runStage, startSink, testMessage } from 'relaychain/testing'
import { describe, expect, it } from 'vitest'
import { internalNotice, requireSubject } from './custom-stage.js'

const stage = requireSubject({ senderDomains: ['example.com'] })

describe('require-subject (unit: one stage, no relay)', () => {
  it('tags a message with a Subject and passes it on', async () => {
    const transport = memoryTransport()
    const msg = await testMessage({ from: 'ann@example.com', eml: 'Subject: hi\r\n\r\nbody\r\n' })
    await runStage(stage, msg, transport)
    expect(transport.messages[0]!.raw.toString()).toBe('X-Checked-By: require-subject\r\nSubject: hi\r\n\r\nbody\r\n')
    expect(msg.state.checkedSubject).toBe('hi')
  })

  it('refuses a message without a Subject with 550 5.6.0', async () => {
    const err = await runStage(stage, await testMessage({ eml: 'From: a@example.com\r\n\r\nbody\r\n' })).catch((e: unknown) => e)
    expect((err as SmtpError).toReply()).toBe('550 5.6.0 Message must have a Subject')
  })
})

describe('require-subject (integration: a real relay and upstream)', () => {
  it('refuses MAIL FROM a foreign domain with 550 5.7.1 and relays the rest tagged', async () => {
    const sink = await startSink()
    const relay = createRelay({
      stages: [relayPolicy({ domains: ['example.org'] }), stage],
      transport: smtpTransport({ host: sink.host, port: sink.port }),
      listeners: [{ port: 0, mode: 'submission' }],
    })
    const [bound] = await relay.listen()
    const client = createTransport({ host: '127.0.0.1', port: bound!.port, ignoreTLS: true })
    try {
      const refused = await client
        .sendMail({ from: 'eve@elsewhere.example', to: 'bob@example.org', subject: 'x', text: 'x' })
        .catch((e: { response: string }) => e)
      expect((refused as { response: string }).response).toBe('550 5.7.1 Message rejected due to local policy')
      await client.sendMail({ from: 'ann@example.com', to: 'bob@example.org', subject: 'Report', text: 'x' })
      const [message] = await sink.waitForMessages(1)
      expect(message!.raw.toString()).toMatch(/^X-Checked-By: require-subject\r\n/m)
    } finally {
      client.close()
      await relay.close()
      await sink.close()
    }
  })
})

describe('internal-notice (a stage that forks the message)', () => {
  it('adds the notice to the copy for internal recipients only, and reports every recipient delivered', async () => {
    const transport = memoryTransport()
    const msg = await testMessage({ to: ['bob@example.org', 'carl@partner.example'], eml: 'Subject: hi\r\n\r\nbody\r\n' })
    const report = await runStage(internalNotice({ domains: ['example.org'], text: 'internal' }), msg, transport)
    expect(report.accepted.map((a) => a.address)).toEqual(['bob@example.org', 'carl@partner.example'])
    expect(transport.messages.map((m) => [m.envelope.rcptTo.map((r) => r.address), m.raw.toString()])).toEqual([
      [['bob@example.org'], 'X-Internal-Notice: internal\r\nSubject: hi\r\n\r\nbody\r\n'],
      [['carl@partner.example'], 'Subject: hi\r\n\r\nbody\r\n'],
    ])
  })
})
