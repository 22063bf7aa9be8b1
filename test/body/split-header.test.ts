import { Readable } from 'node:stream'
import { buffer } from 'node:stream/consumers'
import { describe, expect, it } from 'vitest'
import { splitHeader } from '../../src/core/body/split-header.js'
import { SmtpError } from '../../src/index.js'

async function split(chunks: string[], max = Infinity) {
  const result = await splitHeader(Readable.from(chunks.map((c) => Buffer.from(c, 'latin1'))), max)
  return { head: result.head.toString('latin1'), separator: result.separator.toString(), body: (await buffer(result.body)).toString('latin1') }
}

describe('splitHeader', () => {
  it('splits at the first empty line, across chunk boundaries', async () => {
    expect(await split(['Subject: a\r', '\nTo: b\r\n\r', '\nbody\r\n'])).toEqual({
      head: 'Subject: a\r\nTo: b\r\n',
      separator: '\r\n',
      body: 'body\r\n',
    })
  })

  it('keeps continuation lines in the header section', async () => {
    expect((await split(['Subject: a\r\n  folded\r\n\r\nbody'])).head).toBe('Subject: a\r\n  folded\r\n')
  })

  it('ends the section at the first line that is not a field, without a separator', async () => {
    expect(await split(['Subject: a\r\nnot a header\r\nmore\r\n'])).toEqual({
      head: 'Subject: a\r\n',
      separator: '',
      body: 'not a header\r\nmore\r\n',
    })
  })

  it('treats a message that starts with a body line as having no header section', async () => {
    expect(await split(['From mbox line\r\nSubject: x\r\n'])).toEqual({ head: '', separator: '', body: 'From mbox line\r\nSubject: x\r\n' })
  })

  it('handles an empty message and a header-only message', async () => {
    expect(await split([])).toEqual({ head: '', separator: '', body: '' })
    expect(await split(['Subject: only'])).toEqual({ head: 'Subject: only', separator: '', body: '' })
  })

  it('rejects a header section over the limit with 552 5.3.4', async () => {
    const err = await split([`X: ${'a'.repeat(2000)}`], 1000).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(SmtpError)
    expect((err as SmtpError).toReply()).toBe('552 5.3.4 Message header section too large')
  })
})
