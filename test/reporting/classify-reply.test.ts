import { describe, expect, it } from 'vitest'
import { classifyReply } from '../../src/reporting/bounces/classify-reply.js'
import { BOUNCE_CATEGORY_CLASS, type BounceCategory, type BounceClass } from '../../src/reporting/bounces/types.js'

type Row = readonly [
  code: number | undefined,
  enhanced: string | undefined,
  text: string,
  cls: BounceClass,
  category: BounceCategory,
  status?: string,
]

const replies: readonly Row[] = [
  [550, '5.1.1', '<bob@example.org>: Recipient address rejected: User unknown in virtual mailbox table', 'hard', 'user-unknown', '5.1.1'],
  [550, undefined, 'User unknown', 'hard', 'user-unknown', '5.0.0'],
  [550, undefined, 'sorry, no mailbox here by that name', 'hard', 'user-unknown', '5.0.0'],
  [553, '5.1.2', 'Domain of recipient does not exist', 'hard', 'host-unknown', '5.1.2'],
  [556, '5.1.10', 'Recipient address has null MX', 'hard', 'host-unknown', '5.1.10'],
  [550, '5.4.4', 'Unable to route', 'hard', 'host-unknown', '5.4.4'],
  // Exchange Online puts null MX's 5.1.10 on unknown recipients: the words say which.
  [550, '5.1.10', 'RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup', 'hard', 'user-unknown', '5.1.10'],
  [550, '5.1.6', 'recipient no longer on server', 'hard', 'has-moved', '5.1.6'],
  [552, '5.2.2', 'Mailbox full', 'soft', 'mailbox-full', '5.2.2'],
  // Servers put 5.1.1 on a full mailbox: the words win.
  [552, undefined, 'sorry, mailbox bob@example.org is over quota temporarily (#5.1.1)', 'soft', 'mailbox-full', '5.1.1'],
  [550, '5.2.1', 'The email account that you tried to reach is disabled', 'soft', 'mailbox-disabled', '5.2.1'],
  [552, '5.3.4', 'Message size exceeds fixed maximum message size', 'soft', 'message-too-big', '5.3.4'],
  [554, '5.7.1', 'Message rejected as spam', 'block', 'spam', '5.7.1'],
  [554, '5.7.1', 'Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org', 'block', 'blocked', '5.7.1'],
  [550, '5.7.1', 'Virus detected in the attachment', 'block', 'virus', '5.7.1'],
  [550, '5.7.26', "Unauthenticated email from example.com is not accepted due to domain's DMARC policy", 'block', 'auth-failure', '5.7.26'],
  [554, '5.7.1', '<bob@example.org>: Relay access denied', 'block', 'relay-denied', '5.7.1'],
  [550, '5.7.1', 'Message rejected by policy', 'block', 'policy', '5.7.1'],
  // X.7.x is a policy code: whatever the words say, it must not suppress the recipient.
  [550, '5.7.1', 'Recipient unknown', 'block', 'policy', '5.7.1'],
  // So are X.1.7 and X.1.8, and words about the sender: our sender's domain is not the recipient's.
  [553, '5.1.8', '<alice@example.com>: Sender address rejected: Domain not found', 'block', 'policy', '5.1.8'],
  [550, undefined, 'Domain of sender address alice@example.com does not exist', 'block', 'policy', '5.0.0'],
  [421, '4.7.0', 'Too many connections from your IP, rate limit exceeded', 'soft', 'rate-limited', '4.7.0'],
  [421, '4.7.0', '[TSS04] Messages from 192.0.2.1 temporarily deferred due to user complaints', 'block', 'blocked', '4.7.0'],
  [451, '4.4.1', 'No answer from host', 'soft', 'network', '4.4.1'],
  // Greylisting defers on purpose, whatever code it picks (4.2.0 and 4.7.1 are common).
  [450, '4.2.0', '<bob@example.org>: Recipient address rejected: Greylisted, see https://postgrey.example/', 'soft', 'greylisted', '4.2.0'],
  [451, '4.7.1', 'Please try again later (greylisting)', 'soft', 'greylisted', '4.7.1'],
  [451, '4.3.0', 'Temporary local problem, please try again', 'soft', 'system', '4.3.0'],
  [450, '4.2.2', 'Mailbox full, try again later', 'soft', 'mailbox-full', '4.2.2'],
  // Transient failures are never hard: a 4xx "user unknown" may be a directory outage.
  [450, '4.1.1', 'User unknown in local recipient table (temporary)', 'soft', 'user-unknown', '4.1.1'],
  [554, '4.4.7', 'Message expired: unable to deliver in 840 minutes', 'soft', 'expired', '4.4.7'],
  [503, '5.5.1', 'Bad sequence of commands', 'soft', 'protocol', '5.5.1'],
  // X.5.0 goes on anything: it names no cause.
  [550, '5.5.0', 'Requested action not taken: mailbox unavailable', 'undetermined', 'other', '5.5.0'],
  [550, '5.6.0', 'Headers too large', 'block', 'content', '5.6.0'],
  [550, undefined, 'Requested action not taken: mailbox unavailable', 'undetermined', 'other', '5.0.0'],
  [undefined, undefined, '', 'undetermined', 'other', undefined],
]

describe('classifyReply', () => {
  const table = replies.map(([code, enhanced, text, cls, category, status]) => ({ code, enhanced, text, cls, category, status }))
  it.each(table)('classifies $code $enhanced $text as $cls ($category)', ({ code, enhanced, text, cls, category, status }) => {
    const result = classifyReply(code, enhanced, text)
    expect(result).toEqual(status === undefined ? { class: cls, category } : { class: cls, category, status })
  })

  it('reads codes quoted in the text when none are given', () => {
    expect(classifyReply(undefined, undefined, '550 5.1.1 <bob@example.org>... User unknown')).toEqual({
      class: 'hard',
      category: 'user-unknown',
      status: '5.1.1',
    })
    expect(classifyReply(undefined, undefined, "5.1.0 - Unknown address error 550-'5.7.1 Access denied'").status).toBe('5.7.1')
    expect(classifyReply(undefined, undefined, 'Unable to contact LDAP server. (#4.4.3)')).toEqual({
      class: 'soft',
      category: 'system',
      status: '4.4.3',
    })
  })

  it('reads no words in addresses: spam@ and virus@ mailboxes can be unknown users', () => {
    expect(classifyReply(550, '5.1.1', '<spam@example.org>: Recipient address rejected: User unknown').category).toBe('user-unknown')
    expect(classifyReply(550, undefined, 'virus-reports@example.org... No such user').category).toBe('user-unknown')
  })

  it('does not take an IP address or a dotted version for a status code', () => {
    expect(classifyReply(550, undefined, 'host 10.2.4.5 said: mailbox unavailable').status).toBe('5.0.0')
    expect(classifyReply(550, undefined, 'see 4.16.55.1 for details').status).toBe('5.0.0')
  })

  it('calls an unknown user after DATA filtered (block), unless the server says 5.1.1', () => {
    expect(classifyReply(550, undefined, 'Unknown user bob@example.org', { phase: 'data' })).toEqual({
      class: 'block',
      category: 'filtered',
      status: '5.0.0',
    })
    expect(classifyReply(550, '5.1.1', 'User unknown', { phase: 'data' }).class).toBe('hard')
    expect(classifyReply(550, undefined, 'User unknown', { phase: 'rcpt' }).class).toBe('hard')
  })

  it('never blames the recipient for a refusal at MAIL FROM or at connect', () => {
    expect(classifyReply(553, undefined, 'sender address unknown', { phase: 'mail' })).toEqual({
      class: 'block',
      category: 'policy',
      status: '5.0.0',
    })
    expect(classifyReply(554, undefined, 'host unknown', { phase: 'connect' }).class).toBe('block')
  })

  it("uses a reporting MTA's status for the class, but lets the words outrank it", () => {
    expect(classifyReply(undefined, undefined, 'DNS Error: lookup of example.jp responded NXDOMAIN', { reportedStatus: '4.0.0' })).toEqual({
      class: 'soft',
      category: 'host-unknown',
      status: '4.0.0',
    })
    // Sendmail said 5.7.1 for a remote "553 Invalid recipient": a translation, not a policy verdict.
    expect(classifyReply(553, undefined, 'Invalid recipient bob@example.org', { reportedStatus: '5.7.1', phase: 'rcpt' })).toEqual({
      class: 'hard',
      category: 'user-unknown',
      status: '5.7.1',
    })
  })

  it('gives every category a class, hard ones only for permanent failures', () => {
    for (const cls of Object.values(BOUNCE_CATEGORY_CLASS)) expect(['hard', 'soft', 'block', 'undetermined']).toContain(cls)
    expect(
      Object.entries(BOUNCE_CATEGORY_CLASS)
        .filter(([, c]) => c === 'hard')
        .map(([k]) => k),
    ).toEqual(['user-unknown', 'has-moved', 'host-unknown'])
  })
})
