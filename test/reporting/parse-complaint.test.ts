import { describe, expect, it } from 'vitest'
import { parseBounce } from '../../src/reporting/bounces/parse-bounce.js'
import { parseComplaint } from '../../src/reporting/complaints/parse-complaint.js'
import { corpusFile, expectations } from './corpus.js'

const reports = expectations('arf')

describe('parseComplaint on the corpus', () => {
  it('has all 26 complaint reports of EXPECTED.tsv', () => {
    expect(reports).toHaveLength(26)
  })

  it.each(reports.map((r) => ({ ...r })))(
    'reads $file as $feedback_type about [$original_rcpt_to], original $original_message_id',
    async ({ file, feedback_type, original_rcpt_to, original_message_id, original_mail_from, source_ip }) => {
      const complaint = await parseComplaint(corpusFile('arf', file!))
      expect(complaint).not.toBeNull()
      expect(complaint!.feedbackType).toBe(feedback_type)
      expect(complaint!.recipients).toEqual(original_rcpt_to ? original_rcpt_to.split(',') : [])
      expect(complaint!.originalMessageId).toBe(original_message_id || undefined)
      expect(complaint!.originalMailFrom).toBe(original_mail_from || undefined)
      expect(complaint!.sourceIp).toBe(source_ip || undefined)
    },
  )

  it('takes no bounce of the corpus for a complaint, and no complaint for a bounce', async () => {
    const complaints = []
    for (const r of expectations('bounces')) if (await parseComplaint(corpusFile('bounces', r.file!))) complaints.push(r.file)
    const bounces = []
    for (const r of reports) if (await parseBounce(corpusFile('arf', r.file!))) bounces.push(r.file)
    expect({ complaints, bounces }).toEqual({ complaints: [], bounces: [] })
  })
})

describe('parseComplaint', () => {
  it('reads the RFC 5965 fields of an ARF report and its format', async () => {
    const arf = [
      'From: fbl@isp.example',
      'To: fbl@relay.example',
      'Content-Type: multipart/report; report-type=feedback-report; boundary="r"',
      '',
      '--r',
      'Content-Type: text/plain',
      '',
      'A complaint.',
      '--r',
      'Content-Type: message/feedback-report',
      '',
      'Feedback-Type: Fraud',
      'User-Agent: ISP-FBL/1.0',
      'Version: 1',
      'Original-Mail-From: <bounces@relay.example>',
      'Original-Rcpt-To: <ann@isp.example>, <ben@isp.example>',
      'Reporting-MTA: dns; mx.isp.example',
      'Source-IP: 192.0.2.7',
      'Arrival-Date: Mon, 5 Jan 2026 09:12:00 +0000',
      '',
      '--r',
      'Content-Type: message/rfc822',
      '',
      'Message-ID: <m-9@relay.example>',
      'To: someone-else@isp.example',
      '',
      'Cheap watches.',
      '--r--',
      '',
    ].join('\r\n')
    expect(await parseComplaint(arf)).toEqual({
      format: 'arf',
      feedbackType: 'fraud',
      recipients: ['ann@isp.example', 'ben@isp.example'],
      originalMessageId: '<m-9@relay.example>',
      originalMailFrom: 'bounces@relay.example',
      reportingMta: 'mx.isp.example',
      sourceIp: '192.0.2.7',
      arrivalDate: 'Mon, 5 Jan 2026 09:12:00 +0000',
      userAgent: 'ISP-FBL/1.0',
    })
  })

  it("takes the embedded original's To when the report names no recipient, ignoring address-like display names", async () => {
    const arf = [
      'Content-Type: multipart/report; report-type=feedback-report; boundary="r"',
      '',
      '--r',
      'Content-Type: message/feedback-report',
      '',
      'Feedback-Type: abuse',
      '',
      '--r',
      'Content-Type: text/rfc822-headers',
      '',
      'To: "ann@isp.example" <real@isp.example>, Undisclosed recipients:;',
      'Message-ID: m-11@relay.example',
      '--r--',
      '',
    ].join('\n')
    expect(await parseComplaint(arf)).toMatchObject({
      feedbackType: 'abuse',
      recipients: ['real@isp.example'],
      originalMessageId: 'm-11@relay.example',
    })
  })

  it('reads an Amazon SES complaint notification', async () => {
    const notification = {
      notificationType: 'Complaint',
      complaint: {
        complainedRecipients: [{ emailAddress: 'ann@isp.example' }],
        complaintFeedbackType: 'abuse',
        userAgent: 'Yahoo!-Mail-Feedback/2.0',
        arrivalDate: '2026-01-05T09:12:00.000Z',
      },
      mail: { source: 'bounces@relay.example', sourceIp: '192.0.2.7', headers: [{ name: 'Message-ID', value: '<m-10@relay.example>' }] },
    }
    expect(await parseComplaint(`From: no-reply@sns.amazonaws.com\nSubject: AWS Notification Message\n\n${JSON.stringify(notification)}\n`)).toEqual({
      format: 'amazon-ses',
      feedbackType: 'abuse',
      recipients: ['ann@isp.example'],
      originalMessageId: '<m-10@relay.example>',
      originalMailFrom: 'bounces@relay.example',
      sourceIp: '192.0.2.7',
      arrivalDate: '2026-01-05T09:12:00.000Z',
      userAgent: 'Yahoo!-Mail-Feedback/2.0',
    })
  })

  it('returns null for letters, bounces and bytes that are not mail', async () => {
    const letter = 'From: ann@isp.example\nTo: news@relay.example\nSubject: stop\n\nPlease stop sending me this.\n'
    const bounce =
      'From: MAILER-DAEMON@mx.example\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\n\n--b\nContent-Type: message/delivery-status\n\nFinal-Recipient: rfc822; a@example.org\nAction: failed\nStatus: 5.1.1\n--b--\n'
    for (const raw of [letter, bounce, '', '\u0000binary']) expect(await parseComplaint(raw)).toBeNull()
  })
})
