import { describe, expect, it } from 'vitest'
import { createPipeline, type HeadersOptions, headers, type Stage, smtpTransport } from '../../src/index.js'
import { memoryTransport, runStage, startSink, testMessage } from '../../src/testing/index.js'
import { allowAll, startRelay } from '../helpers/relay.js'

const EML = [
  'Received: from laptop.corp.example ([10.1.2.3])\r\n\tby mail.corp.example with ESMTPSA id 77; Sat, 28 Nov 2026 10:00:00 +0000',
  'Received: from mx.partner.example (mx.partner.example [192.0.2.1]) by relay.example; Sat, 28 Nov 2026 09:59:00 +0000',
  'X-Originating-IP: [10.1.2.3]',
  'x-internal-ticket: 4711',
  'X-Internal-Route: a',
  'From: Ann <ann@example.com>',
  'Subject: hello',
  'Organization: Old Name',
  'Organization: Duplicate',
  '',
  'Body.',
  '',
].join('\r\n')

async function edited(stage: Stage, eml = EML, session = {}): Promise<string> {
  const transport = memoryTransport()
  await runStage(stage, await testMessage({ eml, session }), transport)
  return transport.messages[0]!.raw.toString()
}

describe('headers', () => {
  it('removes fields by name, by name pattern, and by value, keeping every other field byte for byte', async () => {
    const out = await edited(headers({ remove: ['x-originating-ip', /^X-Internal-/i, { name: 'Received', value: /\bby [\w.-]+\.corp\.example\b/ }] }))
    expect(out).toBe(
      [
        'Received: from mx.partner.example (mx.partner.example [192.0.2.1]) by relay.example; Sat, 28 Nov 2026 09:59:00 +0000',
        'From: Ann <ann@example.com>',
        'Subject: hello',
        'Organization: Old Name',
        'Organization: Duplicate',
        '',
        'Body.',
        '',
      ].join('\r\n'),
    )
  })

  it('sets a field in place (dropping duplicates), adds fields at the top in the order given, and skips undefined values', async () => {
    const stage = headers({
      set: { Organization: 'Example Corp' },
      add: { 'X-Relayed-By': 'gateway-1', 'X-Auth-User': (msg) => msg.session.user, 'X-Client': (msg) => msg.session.remoteAddress },
    })
    const out = await edited(stage, 'From: a@example.com\r\nOrganization: Old\r\nSubject: s\r\nOrganization: Dup\r\n\r\nBody.\r\n')
    expect(out).toBe(
      'X-Relayed-By: gateway-1\r\nX-Client: 127.0.0.1\r\nFrom: a@example.com\r\nOrganization: Example Corp\r\nSubject: s\r\n\r\nBody.\r\n',
    )
  })

  it('edits only the messages `when` accepts', async () => {
    const stage = headers({ remove: ['X-Originating-IP'], when: (msg) => msg.session.user !== undefined })
    expect(await edited(stage)).toBe(EML)
    expect(await edited(stage, EML, { user: 'ann' })).not.toContain('X-Originating-IP')
  })

  it('declares trace edits when it only adds, header edits otherwise, and the pipeline lints the order', () => {
    const dkim: Stage = { name: 'dkim-sign', modifies: 'trace', seals: 'message' }
    const add = headers({ add: { 'X-Relayed-By': 'gateway-1' } })
    const strip = headers({ remove: ['X-Originating-IP'] })
    expect([add.modifies, strip.modifies]).toEqual(['trace', 'headers'])
    expect(() => createPipeline({ stages: [dkim, add], transport: memoryTransport() })).not.toThrow()
    expect(() => createPipeline({ stages: [dkim, strip], transport: memoryTransport() })).toThrow(
      expect.objectContaining({ code: 'ERR_RELAY_UNSAFE_ORDER' }),
    )
  })

  it('refuses bad names, values and matchers with ERR_RELAY_INVALID_OPTION when the chain is built', () => {
    const bad: HeadersOptions[] = [
      {},
      { add: { 'Bad Name': 'x' } },
      { set: { Subject: 'line\r\nBcc: victim@example.net' } },
      { add: { 'X-Count': 3 as unknown as string } },
      { remove: [{ name: 'Received' } as unknown as string] },
    ]
    for (const options of bad) expect(() => headers(options)).toThrow(expect.objectContaining({ code: 'ERR_RELAY_INVALID_OPTION' }))
  })

  it('strips X-Originating-IP on the way to the upstream, end to end', async () => {
    const sink = await startSink()
    const t = await startRelay({
      stages: [allowAll, headers({ remove: ['X-Originating-IP'], add: { Organization: 'Example Corp' } })],
      transport: smtpTransport({ host: sink.host, port: sink.port }),
    })
    try {
      await t.client().sendMail({ envelope: { from: 'ann@example.com', to: ['bob@example.org'] }, raw: EML })
      const [message] = await sink.waitForMessages(1)
      const out = message!.raw.toString()
      expect(out).toMatch(/^Organization: Example Corp\r\nReceived: from \[127\.0\.0\.1\]/)
      expect(out).not.toContain('X-Originating-IP')
      expect(out).toContain('\r\nx-internal-ticket: 4711\r\n')
    } finally {
      await t.close()
      await sink.close()
    }
  })
})
