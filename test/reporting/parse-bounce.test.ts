import { describe, expect, it } from 'vitest'
import { SmtpError } from '../../src/core/errors.js'
import { buildDsn } from '../../src/delivery/dsn.js'
import { parseBounce } from '../../src/reporting/bounces/parse-bounce.js'
import { MAX_REPORT_BYTES } from '../../src/reporting/message-parts.js'
import { testMessage } from '../../src/testing/test-message.js'

const crlf = (text: string) => text.replace(/\r?\n/g, '\r\n')

/** A small RFC 3464 report, written for these tests; LF line endings. */
function dsn(groups: string, returned = 'Message-ID: <orig.1@example.com>\nSubject: hello\n') {
  return [
    'From: Mail Delivery System <MAILER-DAEMON@mx.example.net>',
    'To: <alice@example.com>',
    'Subject: Undelivered Mail Returned to Sender',
    'MIME-Version: 1.0',
    'Content-Type: multipart/report; report-type=delivery-status; boundary="b1"',
    '',
    '--b1',
    'Content-Type: text/plain',
    '',
    'Your message could not be delivered.',
    '',
    '--b1',
    'Content-Type: message/delivery-status',
    '',
    'Reporting-MTA: dns; mx.example.net',
    'Original-Envelope-Id: q-42',
    'Arrival-Date: Mon, 5 Jan 2026 09:12:00 +0000',
    '',
    groups,
    '',
    '--b1',
    'Content-Type: text/rfc822-headers',
    '',
    returned,
    '--b1--',
    '',
  ].join('\n')
}

const failedGroup = (rcpt: string, status: string, diagnostic: string, action = 'failed') =>
  [`Final-Recipient: rfc822; ${rcpt}`, `Action: ${action}`, `Status: ${status}`, `Diagnostic-Code: smtp; ${diagnostic}`].join('\n')

describe('parseBounce', () => {
  it("reads the DSNs relaychain itself sends: each failed recipient's status, reply and class, and the original Message-ID", async () => {
    const msg = await testMessage({
      from: { address: 'alice@example.com', args: { ENVID: 'env-7' } },
      to: ['bob@example.org', 'carol@example.org'],
      eml: 'Message-ID: <m-1@example.com>\r\nFrom: <alice@example.com>\r\nSubject: hi\r\n\r\nHello.\r\n',
    })
    const built = buildDsn(
      msg,
      [
        { rcpt: { address: 'bob@example.org' }, error: new SmtpError(550, '5.1.1', 'User unknown') },
        { rcpt: { address: 'carol@example.org' }, error: new SmtpError(452, '4.2.2', 'Mailbox full') },
      ],
      'relay.example',
    )!
    const report = await parseBounce(Buffer.concat([built.headers.toBuffer(), built.body]))
    expect(report).toMatchObject({
      format: 'rfc3464',
      reportingMta: 'relay.example',
      originalEnvelopeId: 'env-7',
      originalMessageId: '<m-1@example.com>',
    })
    expect(report!.recipients).toEqual([
      expect.objectContaining({
        finalRecipient: 'bob@example.org',
        action: 'failed',
        dsnStatus: '5.1.1',
        replyCode: 550,
        classification: { class: 'hard', category: 'user-unknown', status: '5.1.1' },
      }),
      expect.objectContaining({
        finalRecipient: 'carol@example.org',
        dsnStatus: '4.2.2',
        replyCode: 452,
        classification: { class: 'soft', category: 'mailbox-full', status: '4.2.2' },
      }),
    ])
  })

  it('gives the same report for LF and CRLF line endings, and for a string', async () => {
    const lf = dsn(failedGroup('bob@example.org', '5.0.0', '550 5.7.1 Message rejected as spam'))
    const fromLf = await parseBounce(Buffer.from(lf))
    expect(fromLf?.recipients[0]?.classification).toEqual({ class: 'block', category: 'spam', status: '5.7.1' })
    expect(await parseBounce(Buffer.from(crlf(lf)))).toEqual(fromLf)
    expect(await parseBounce(lf)).toEqual(fromLf)
    expect(fromLf).toMatchObject({
      arrivalDate: 'Mon, 5 Jan 2026 09:12:00 +0000',
      originalEnvelopeId: 'q-42',
      originalMessageId: '<orig.1@example.com>',
    })
  })

  it('reports a delayed recipient as delayed and soft, and leaves out delivered ones', async () => {
    const groups = [
      failedGroup('bob@example.org', '4.4.1', '421 4.4.1 Connection timed out', 'delayed'),
      ['Final-Recipient: rfc822; dave@example.org', 'Action: delivered', 'Status: 2.0.0'].join('\n'),
    ].join('\n\n')
    const report = await parseBounce(dsn(groups))
    expect(report?.recipients).toHaveLength(1)
    expect(report?.recipients[0]).toMatchObject({
      finalRecipient: 'bob@example.org',
      action: 'delayed',
      classification: { class: 'soft', category: 'network' },
    })
  })

  it('returns null for a DSN that reports only deliveries (Action delivered, relayed, expanded)', async () => {
    const groups = ['delivered', 'relayed', 'expanded']
      .map((a) => `Final-Recipient: rfc822; ${a}@example.org\nAction: ${a}\nStatus: 2.0.0`)
      .join('\n\n')
    expect(await parseBounce(dsn(groups))).toBeNull()
  })

  it('reads each recipient of a plain-text bounce with its own reason', async () => {
    const text = [
      'From: MAILER-DAEMON@mx.example.net',
      'To: alice@example.com',
      'Subject: failure notice',
      '',
      'This is the mail system at mx.example.net. I could not deliver your message',
      'to the following addresses. This is a permanent error.',
      '',
      '<bob@example.org>:',
      '192.0.2.1 does not like recipient.',
      'Remote host said: 550 5.1.1 <bob@example.org>: User unknown',
      '',
      '<carol@example.org>:',
      '192.0.2.1 failed after I sent the message.',
      'Remote host said: 552 5.2.2 Mailbox full',
      '',
      '--- Below this line is a copy of the message.',
      '',
      'Message-ID: <orig-2@example.com>',
      'From: alice@example.com',
      'To: bob@example.org, carol@example.org',
      '',
      'Remote host said: 550 no such user (the original may say anything)',
      '',
    ].join('\n')
    const report = await parseBounce(text)
    expect(report).toMatchObject({ format: 'text', originalMessageId: '<orig-2@example.com>' })
    expect(report!.recipients.map((r) => [r.finalRecipient, r.replyCode, r.classification.class, r.classification.category])).toEqual([
      ['bob@example.org', 550, 'hard', 'user-unknown'],
      ['carol@example.org', 552, 'soft', 'mailbox-full'],
    ])
    expect(report!.recipients[1]!.phase).toBe('data')
  })

  it('returns null for auto-replies, letters from people, complaints, success notices and bytes that are not mail', async () => {
    const vacation = 'From: bob@example.org\nTo: alice@example.com\nSubject: Out of office\nAuto-Submitted: auto-replied\n\nI am away until Monday.\n'
    const letter = 'From: bob@example.org\nTo: alice@example.com\nSubject: your mail\n\nYour message could not be delivered to my heart.\n'
    const arf =
      'From: fbl@isp.example\nContent-Type: multipart/report; report-type=feedback-report; boundary=x\n\n--x\nContent-Type: message/feedback-report\n\nFeedback-Type: abuse\n\n--x--\n'
    const success =
      'From: Mail Delivery Subsystem <mailer-daemon@mx.example.net>\nSubject: Delivery Status Notification (Success)\n\nYour message was delivered to bob@example.org.\n'
    for (const raw of [vacation, letter, arf, success, '', '\u0000\u0001binary']) expect(await parseBounce(raw)).toBeNull()
  })

  it('reads an Amazon SES bounce notification, bare or in its SNS envelope, and ignores its delivery notifications', async () => {
    const notification = {
      notificationType: 'Bounce',
      bounce: {
        bounceType: 'Permanent',
        reportingMTA: 'dns; a1-2.smtp-out.amazonses.com',
        bouncedRecipients: [{ emailAddress: 'bob@example.org', action: 'failed', status: '5.1.1', diagnosticCode: 'smtp; 550 5.1.1 user unknown' }],
      },
      mail: { commonHeaders: { messageId: '<ses-1@example.com>' } },
    }
    const mail = (body: string) => `From: no-reply@sns.amazonaws.com\nSubject: AWS Notification Message\n\n${body}\n`
    const bare = await parseBounce(mail(JSON.stringify(notification)))
    expect(bare).toEqual({
      format: 'amazon-ses',
      reportingMta: 'a1-2.smtp-out.amazonses.com',
      originalMessageId: '<ses-1@example.com>',
      recipients: [
        {
          finalRecipient: 'bob@example.org',
          action: 'failed',
          dsnStatus: '5.1.1',
          replyCode: 550,
          diagnostic: '550 5.1.1 user unknown',
          classification: { class: 'hard', category: 'user-unknown', status: '5.1.1' },
        },
      ],
    })
    expect(await parseBounce(mail(JSON.stringify({ Type: 'Notification', Message: JSON.stringify(notification) })))).toEqual(bare)
    expect(await parseBounce(mail(JSON.stringify({ notificationType: 'Delivery', mail: {} })))).toBeNull()
  })

  it("falls back on SES's bounce type and subtype when a recipient has no status or diagnostic", async () => {
    const transient = {
      notificationType: 'Bounce',
      bounce: { bounceType: 'Transient', bounceSubType: 'MailboxFull', bouncedRecipients: [{ emailAddress: 'bob@example.org' }] },
      mail: {},
    }
    const report = await parseBounce(`From: no-reply@sns.amazonaws.com\n\n${JSON.stringify(transient)}\n`)
    expect(report?.recipients[0]).toMatchObject({
      finalRecipient: 'bob@example.org',
      dsnStatus: '4.0.0',
      classification: { class: 'soft', category: 'mailbox-full', status: '4.0.0' },
    })
  })

  it(`reads a bounce whose returned original is far over ${MAX_REPORT_BYTES / 1024 / 1024} MiB, looking only at its head`, async () => {
    const small = dsn(failedGroup('bob@example.org', '5.1.1', '550 5.1.1 User unknown'), 'Message-ID: <big@example.com>\n')
    const attachment = `${'A'.repeat(76)}\n`.repeat(100_000)
    const padded = small.replace('--b1--', `--b1\nContent-Type: application/octet-stream\n\n${attachment}--b1--`)
    expect(padded.length).toBeGreaterThan(3 * MAX_REPORT_BYTES)
    const start = performance.now()
    const report = await parseBounce(padded)
    expect(report?.recipients[0]?.classification.class).toBe('hard')
    expect(report?.originalMessageId).toBe('<big@example.com>')
    expect(performance.now() - start).toBeLessThan(2_000)
  })
})
