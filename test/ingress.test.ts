import { Readable } from 'node:stream'
import { buffer } from 'node:stream/consumers'
import { describe, expect, it } from 'vitest'
import { SmtpError } from '../src/index.js'
import { type IngressOptions, IngressStream } from '../src/ingress/smtp-server/ingress-stream.js'

async function run(chunks: string[], options: Partial<IngressOptions> = {}) {
  const ingress = new IngressStream({ policy: 'reject', maxSize: Infinity, maxHeaderSize: Infinity, ...options })
  Readable.from(chunks.map((c) => Buffer.from(c, 'latin1'))).pipe(ingress)
  const [header, body] = await Promise.all([ingress.header, buffer(ingress)])
  return { head: header.head.toString('latin1'), separator: header.separator.toString(), body: body.toString('latin1') }
}

async function refusal(chunks: string[], options: Partial<IngressOptions> = {}): Promise<string> {
  const err = await run(chunks, options).catch((e: unknown) => e)
  expect(err).toBeInstanceOf(SmtpError)
  return (err as SmtpError).toReply()
}

describe('IngressStream', () => {
  it('splits the header section from the body across chunk boundaries', async () => {
    expect(await run(['Subject: a\r', '\nTo: b\r\n\r', '\nbody\r\n'])).toEqual({
      head: 'Subject: a\r\nTo: b\r\n',
      separator: '\r\n',
      body: 'body\r\n',
    })
  })

  it('handles an empty message and a header-only message', async () => {
    expect(await run([])).toEqual({ head: '', separator: '', body: '' })
    expect(await run(['Subject: only\r\n'])).toEqual({ head: 'Subject: only\r\n', separator: '', body: '' })
  })

  it('refuses a bare LF with 550 5.5.2, in the header section and in the body', async () => {
    expect(await refusal(['Subject: a\n\r\nbody\r\n'])).toMatch(/^550 5\.5\.2 /)
    expect(await refusal(['Subject: a\r\n\r\nok\r\n', 'bad\n'])).toMatch(/^550 5\.5\.2 /)
  })

  it('refuses a CR at the very end of the message', async () => {
    expect(await refusal(['Subject: a\r\n\r\nok\r'])).toMatch(/^550 5\.5\.2 /)
  })

  it('normalises to CRLF in normalize mode, a CR split from its LF included', async () => {
    expect(await run(['Subject: a\nX: b\r', '\n\r\nb\rc\r', 'd\r'], { policy: 'normalize' })).toEqual({
      head: 'Subject: a\r\nX: b\r\n',
      separator: '\r\n',
      body: 'b\r\nc\r\nd\r\n',
    })
  })

  it('refuses more bytes than the size limit with 552 5.3.4', async () => {
    expect(await refusal(['Subject: a\r\n\r\n', '1234567890\r\n'], { maxSize: 20 })).toBe('552 5.3.4 Message size exceeds fixed limit of 20 bytes')
  })

  it('refuses a header section over its limit with 552 5.3.4', async () => {
    expect(await refusal([`X: ${'a'.repeat(2000)}\r\n`], { maxHeaderSize: 1000 })).toBe('552 5.3.4 Message header section too large')
  })
})
