import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createTransport } from 'nodemailer'
import { afterEach, describe, expect, it } from 'vitest'
import type { Reporting } from '../../src/reporting/reporting.js'
import { openSuppressionList, type SuppressionList } from '../../src/reporting/suppression/list.js'
import { reportIntake } from '../../src/stages/report-intake.js'
import { suppress } from '../../src/stages/suppress.js'
import { verpReturnPath } from '../../src/stages/verp-return-path.js'
import { allowAll, type ReportingHarness, startReporting } from './harness.js'

const keys = [{ id: 'k1', secret: 'a-tracking-secret-of-at-least-32-bytes!!' }]
let h: ReportingHarness | undefined
afterEach(async () => {
  await h?.close()
  h = undefined
})

async function sendRaw(port: number, from: string, to: string, raw: string) {
  const client = createTransport({ host: '127.0.0.1', port, secure: false, ignoreTLS: true })
  try {
    return await client.sendMail({ envelope: { from, to: [to] }, raw })
  } finally {
    client.close()
  }
}

function dsn(to: string, recipient: string, messageId: string, status: string, diagnostic: string): string {
  return [
    'From: Mail Delivery System <MAILER-DAEMON@mx.example.org>',
    `To: <${to}>`,
    'Subject: Undelivered Mail Returned to Sender',
    'MIME-Version: 1.0',
    'Content-Type: multipart/report; report-type=delivery-status; boundary="B1"',
    '',
    '--B1',
    'Content-Type: text/plain',
    '',
    'Your message could not be delivered.',
    '--B1',
    'Content-Type: message/delivery-status',
    '',
    'Reporting-MTA: dns; mx.example.org',
    '',
    `Final-Recipient: rfc822; ${recipient}`,
    'Action: failed',
    `Status: ${status}`,
    'Remote-MTA: dns; mx2.example.org',
    `Diagnostic-Code: smtp; ${diagnostic}`,
    '',
    '--B1',
    'Content-Type: text/rfc822-headers',
    '',
    `Message-ID: ${messageId}`,
    'Subject: Spring sale',
    '',
    '--B1--',
    '',
  ].join('\r\n')
}

function arf(recipient: string, messageId: string): string {
  return [
    'From: <staff@fbl.example.net>',
    'To: <fbl@shop.example>',
    'Subject: FW: Spring sale',
    'MIME-Version: 1.0',
    'Content-Type: multipart/report; report-type=feedback-report; boundary="F1"',
    '',
    '--F1',
    'Content-Type: text/plain',
    '',
    'This is an email abuse report.',
    '--F1',
    'Content-Type: message/feedback-report',
    '',
    'Feedback-Type: abuse',
    'User-Agent: ExampleFBL/1.0',
    'Version: 1',
    `Original-Rcpt-To: <${recipient}>`,
    '',
    '--F1',
    'Content-Type: text/rfc822-headers',
    '',
    `Message-ID: ${messageId}`,
    'From: news@shop.example',
    '',
    '--F1--',
    '',
  ].join('\r\n')
}

describe('suppression', () => {
  it('refuses a suppressed recipient at RCPT with 550 5.7.1 and reports it dropped; the others are delivered', async () => {
    h = await startReporting({ stages: (reporting, list) => [suppress({ list, reporting }), allowAll] })
    h.suppressions.add({ target: 'gone@example.org', reason: 'hard-bounce' })
    const info = (await h.send({ to: ['gone@example.org', 'here@example.org'] })) as {
      rejected: string[]
      rejectedErrors: Array<{ response: string }>
    }
    expect(info.rejected).toEqual(['gone@example.org'])
    expect(info.rejectedErrors[0]!.response).toBe('550 5.7.1 Delivery to this recipient is not permitted')
    expect(h.of('dropped')[0]).toMatchObject({ recipient: 'gone@example.org', reason: 'hard-bounce', mode: 'rejected', sender: 'news@shop.example' })
    await h.drain()
    expect(h.sink.messages.map((m) => m.rcptTo)).toEqual([['here@example.org']])
  })

  it('drops a suppressed recipient silently when so configured: 250 to the client, nothing sent to it, no delivered event', async () => {
    h = await startReporting({ stages: (reporting, list) => [suppress({ list, reporting, mode: 'silent' }), allowAll] })
    h.suppressions.add({ target: 'unsubscribed.example', scope: 'shop.example', reason: 'unsubscribe' })
    const info = (await h.send({ to: ['a@unsubscribed.example', 'here@example.org'] })) as { accepted: string[] }
    expect(info.accepted).toEqual(['a@unsubscribed.example', 'here@example.org'])
    await h.drain()
    expect(h.sink.messages.map((m) => m.rcptTo)).toEqual([['here@example.org']])
    expect(h.of('dropped')[0]).toMatchObject({ recipient: 'a@unsubscribed.example', reason: 'unsubscribe', mode: 'silent' })
    expect(h.of('delivered').map((e) => e.recipient)).toEqual(['here@example.org'])
    // The scope is the sender's domain: another sender may still mail there.
    expect(h.suppressions.check('a@unsubscribed.example', 'ceo@other.example')).toBeUndefined()
  })

  it('keeps suppressions across a restart, with removals and expiry', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'relaychain-suppress-'))
    let now = 1_000
    const file = join(dir, 'list.jsonl')
    const list = await openSuppressionList({ file, clock: () => now })
    list.add({ target: 'a@example.org', reason: 'complaint' })
    list.add({ target: 'b@example.org', reason: 'manual', expires: 5_000 })
    list.add({ target: 'c@example.org', reason: 'manual' })
    list.remove('c@example.org')
    list.close()
    const again = await openSuppressionList({ file, clock: () => now })
    expect(again.check('A@Example.org', 'x@y.example')).toMatchObject({ reason: 'complaint' })
    expect(again.check('b@example.org')).toMatchObject({ reason: 'manual' })
    expect(again.check('c@example.org')).toBeUndefined()
    now = 5_000
    expect(again.check('b@example.org')).toBeUndefined()
    again.close()
    await rm(dir, { recursive: true, force: true })
  })
})

describe('bounce and complaint intake', () => {
  const stages = (reporting: Reporting, list: SuppressionList) => [
    reportIntake({ reporting, bounceDomain: 'bounces.shop.example', keys, feedbackAddresses: ['fbl@shop.example'] }),
    suppress({ list, reporting }),
    allowAll,
    verpReturnPath({ domain: 'bounces.shop.example', keys, reporting }),
  ]

  it('ties a DSN returned to the VERP address to its message and recipient: bounced (dsn), hard, suppressed; nothing delivered onward', async () => {
    h = await startReporting({ stages })
    await h.send({ to: ['late@example.org'], messageId: '<verp1@shop.example>' })
    await h.drain()
    const [sent] = await h.sink.waitForMessages(1)
    expect(sent!.mailFrom).toMatch(/^bounces\+[A-Za-z0-9_-]+\.[0-9a-f]{16}@bounces\.shop\.example$/)
    const queueId = h.of('accepted')[0]!.queueId
    expect(h.of('accepted')[0]!.sender).toBe('news@shop.example')
    await sendRaw(
      h.port,
      '',
      sent!.mailFrom,
      dsn(sent!.mailFrom, 'late@example.org', '<verp1@shop.example>', '5.1.1', '550 5.1.1 <late@example.org>: user unknown'),
    )
    const bounce = h.of('bounced').find((b) => b.source === 'dsn')
    expect(bounce).toMatchObject({
      queueId,
      messageId: '<verp1@shop.example>',
      recipient: 'late@example.org',
      bounceType: 'hard',
      status: '5.1.1',
      remoteMta: 'mx2.example.org',
      sender: 'news@shop.example',
    })
    expect(h.suppressions.check('late@example.org', 'news@shop.example')).toMatchObject({ reason: 'hard-bounce' })
    await h.drain()
    expect(h.sink.messages.length).toBe(1)
    expect(h.of('accepted').length).toBe(1)
  })

  it('refuses a DSN to a bounce address whose mac does not verify with 550 5.1.1', async () => {
    h = await startReporting({ stages })
    const forged = 'bounces+ABC123.0123456789abcdef@bounces.shop.example'
    await expect(sendRaw(h.port, '', forged, dsn(forged, 'x@example.org', '<x@shop.example>', '5.1.1', '550 5.1.1 unknown'))).rejects.toMatchObject({
      responseCode: 550,
    })
    expect(h.of('bounced')).toEqual([])
  })

  it('turns an ARF report at the feedback address into a complained event for the original message and suppresses the complainer for that sender', async () => {
    h = await startReporting({ stages })
    await h.send({ to: ['angry@example.org'], messageId: '<arf1@shop.example>' })
    await h.drain()
    await sendRaw(h.port, 'staff@fbl.example.net', 'fbl@shop.example', arf('angry@example.org', '<arf1@shop.example>'))
    expect(h.of('complained')[0]).toMatchObject({
      queueId: h.of('accepted')[0]!.queueId,
      recipient: 'angry@example.org',
      feedbackType: 'abuse',
      format: 'arf',
      sender: 'news@shop.example',
    })
    expect(h.suppressions.check('angry@example.org', 'news@shop.example')).toMatchObject({ reason: 'complaint', scope: 'shop.example' })
    const info = (await h.send({ to: ['angry@example.org', 'calm@example.org'] })) as { rejected: string[] }
    expect(info.rejected).toEqual(['angry@example.org'])
  })
})
