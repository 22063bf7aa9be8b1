/** The `@example`s of the reporting helpers say what the code does. */
import { describe, expect, it } from 'vitest'
import { HeaderBlock } from '../../src/core/body/header-block.js'
import { isDelayNotice } from '../../src/reporting/bounces/bounce-signals.js'
import { dsnFields, dsnFieldsInText } from '../../src/reporting/bounces/delivery-status.js'
import { toRecipients } from '../../src/reporting/bounces/recipient-evidence.js'
import { oneLine, phaseIn, quotedReply } from '../../src/reporting/bounces/smtp-transcript.js'
import { categoryOfReplyCode, categoryOfStatus, replyIn, statusOf } from '../../src/reporting/bounces/status-codes.js'
import { strongCategoryOfText, weakCategoryOfText } from '../../src/reporting/bounces/text-patterns.js'
import { recipientBlocks, textRecipients } from '../../src/reporting/bounces/text-recipients.js'
import { addressesIn, addressIn, fieldGroups, headerSection } from '../../src/reporting/header-section.js'

describe('documented examples', () => {
  it('header sections, field groups and addresses', () => {
    expect(headerSection(Buffer.from('Message-ID:\n <a@b>\nTo: x@y\n\nbody')).get('message-id')).toBe('<a@b>')
    expect(fieldGroups(Buffer.from('Reporting-MTA: dns; mx\n\nFinal-Recipient: rfc822; a@b\nAction: failed\n')).map((g) => g.get('action'))).toEqual([
      undefined,
      'failed',
    ])
    expect(addressIn('rfc822; <bob@example.org>')).toBe('bob@example.org')
    expect(addressesIn('"ann@isp.example" <ann@mail.example>, <Undisclosed Recipients>')).toEqual(['ann@mail.example'])
  })

  it('status and reply codes', () => {
    expect(statusOf('5.01.001 (bad destination mailbox)')).toBe('5.1.1')
    expect(statusOf('relayed via 10.2.4.5')).toBeUndefined()
    expect(replyIn("5.1.0 - Unknown address error 550-'5.7.1 Access denied'")).toEqual({ code: 550, enhanced: '5.7.1', at: 30 })
    expect(categoryOfStatus('5.2.2')).toBe('mailbox-full')
    expect(categoryOfStatus('5.7.606')).toBe('policy')
    expect(categoryOfReplyCode(551)).toBe('has-moved')
    expect(categoryOfReplyCode(550)).toBeUndefined()
    expect(strongCategoryOfText('452 4.2.2 The email account that you tried to reach is over quota')).toBe('mailbox-full')
    expect(weakCategoryOfText('554 Service currently unavailable')).toBe('system')
  })

  it('delivery-status fields', () => {
    expect(dsnFields(Buffer.from('Reporting-MTA: dns; mx\n\nFinal-Recipient: rfc822; a@b\nAction: failed\nStatus: 5.1.1\n'))).toMatchObject({
      message: { reportingMta: 'mx' },
      recipients: [{ finalRecipient: 'a@b', action: 'failed', status: '5.1.1' }],
    })
    expect(dsnFieldsInText('Technical report:\n\nAction: failed\nFinal-Recipient: rfc822; a@b\nStatus: 5.3.5\n')?.recipients[0]?.status).toBe('5.3.5')
  })

  it('SMTP dialogue in a notice', () => {
    expect(quotedReply('<bob@example.org>:\nRemote host said: 550-5.7.26 Unauthenticated\n550-5.7.26 mail\n\nGiving up.')).toEqual({
      text: '550-5.7.26 Unauthenticated mail',
      code: 550,
      enhanced: '5.7.26',
    })
    expect(oneLine('550-5.7.1 Messages with multiple\n 550 5.7.1 addresses in From:')).toBe('550-5.7.1 Messages with multiple addresses in From:')
    expect(phaseIn('>>> RCPT To:<a@b>\n<<< 250 ok\n>>> DATA\n<<< 550 Unknown user')).toBe('data')
    expect(phaseIn('550 user unknown (in reply to RCPT TO command)')).toBe('rcpt')
    expect(isDelayNotice(HeaderBlock.from([]), 'THIS IS A WARNING MESSAGE ONLY.\nYOU DO NOT NEED TO RESEND YOUR MESSAGE.')).toBe(true)
  })

  it('recipients of a notice', () => {
    expect(textRecipients(HeaderBlock.from([]), 'I could not deliver to:\n\n<bob@example.org>:\n550 User unknown\n', [])).toEqual(['bob@example.org'])
    expect(recipientBlocks('<a@x.org>:\n550 unknown\n<b@x.org>:\n552 full\n', ['a@x.org', 'b@x.org']).get('b@x.org')).toBe('<b@x.org>:\n552 full\n')
    expect(toRecipients([{ finalRecipient: 'bob@example.org', action: 'failed', diagnostic: '550 5.1.1 User unknown' }])).toEqual([
      {
        finalRecipient: 'bob@example.org',
        action: 'failed',
        replyCode: 550,
        diagnostic: '550 5.1.1 User unknown',
        classification: { class: 'hard', category: 'user-unknown', status: '5.1.1' },
      },
    ])
  })
})
