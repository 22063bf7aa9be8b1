import { describe, expect, it } from 'vitest'
import { RelayError, reject, SmtpError, toSmtpError } from '../src/index.js'

describe('SmtpError', () => {
  it('formats the reply line the client sees', () => {
    const err = new SmtpError(550, '5.7.1', 'Message rejected', { reason: 'rule 12' })
    expect(err.toReply()).toBe('550 5.7.1 Message rejected')
    expect(err.temporary).toBe(false)
    expect(err.reason).toBe('rule 12')
    expect(new SmtpError(451, '4.3.0', 'later').temporary).toBe(true)
  })

  it('never lets a line break into the reply', () => {
    expect(new SmtpError(550, '5.7.1', 'one\r\n250 two').toReply()).toBe('550 5.7.1 one 250 two')
  })

  it('refuses codes outside 400-599 and enhanced codes of another class', () => {
    expect(() => new SmtpError(250, '2.0.0' as never, 'ok')).toThrow(RelayError)
    expect(() => new SmtpError(550, '4.7.1', 'mismatch')).toThrow(/does not match/)
  })

  it('is recognised across module copies through its brand', () => {
    const foreign = Object.create({ [Symbol.for('relaychain.SmtpError')]: true }) as object
    expect(foreign instanceof SmtpError).toBe(true)
    expect(new Error('x') instanceof SmtpError).toBe(false)
    expect(new RelayError('ERR_RELAY_INVALID_STAGE', 'x') instanceof RelayError).toBe(true)
    expect(new RelayError('ERR_RELAY_INVALID_STAGE', 'x') instanceof SmtpError).toBe(false)
  })
})

describe('reject', () => {
  // Every named constructor's reply, as a table, because a wrong enhanced code goes unnoticed otherwise.
  const table: Array<[string, SmtpError, string]> = [
    ['policy', reject.policy('why'), '550 5.7.1 Message rejected due to local policy'],
    ['connection', reject.connection(), '554 5.7.1 Connection refused'],
    ['noRelay', reject.noRelay(), '554 5.7.1 Relay access denied'],
    ['tooBig', reject.tooBig(1000), '552 5.3.4 Message size exceeds fixed limit of 1000 bytes'],
    ['tooBig without limit', reject.tooBig(), '552 5.3.4 Message too big'],
    ['tooManyRecipients', reject.tooManyRecipients(), '452 4.5.3 Too many recipients'],
    ['bareLineEnding', reject.bareLineEnding(), '550 5.5.2 Message refused: bare CR or LF line ending (RFC 5321 section 2.3.8)'],
    ['tempFail', reject.tempFail(new Error('db down')), '451 4.3.0 Temporary local problem, please try again later'],
    ['unavailable', reject.unavailable(), '421 4.3.2 Service not available, try again later'],
  ]
  for (const [name, err, reply] of table) {
    it(`${name} answers ${reply.slice(0, 9)}`, () => expect(err.toReply()).toBe(reply))
  }

  it('keeps internal reasons out of the reply', () => {
    const err = reject.policy('sender in blocklist bl.internal')
    expect(err.toReply()).not.toContain('blocklist')
    expect(err.reason).toBe('sender in blocklist bl.internal')
  })
})

describe('toSmtpError', () => {
  it('passes an SmtpError through', () => {
    const err = reject.noRelay()
    expect(toSmtpError(err)).toBe(err)
  })

  it('turns anything else into 451 4.3.0 with the original as cause', () => {
    const cause = new TypeError('undefined is not a function')
    const err = toSmtpError(cause)
    expect(err.toReply()).toBe('451 4.3.0 Temporary local problem, please try again later')
    expect(err.cause).toBe(cause)
    expect(toSmtpError('a string').reason).toBe('a string')
  })
})
