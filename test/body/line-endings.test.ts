import { describe, expect, it } from 'vitest'
import { Readable } from 'node:stream'
import { buffer } from 'node:stream/consumers'
import { SmtpError, toCrlf } from '../../src/index.js'
import { hasBareLineEnding, lineEndingGuard } from '../../src/body/line-endings.js'

async function through(stream: NodeJS.ReadWriteStream, chunks: string[]): Promise<string> {
  return (await buffer(Readable.from(chunks.map((c) => Buffer.from(c))).pipe(stream as never))).toString()
}

describe('bare line endings', () => {
  it('finds bare LF and bare CR, also across chunk boundaries', () => {
    expect(hasBareLineEnding(Buffer.from('a\r\nb\r\n'), false)).toBe(false)
    expect(hasBareLineEnding(Buffer.from('a\nb'), false)).toBe(true)
    expect(hasBareLineEnding(Buffer.from('a\rb'), false)).toBe(true)
    expect(hasBareLineEnding(Buffer.from('\nb'), true)).toBe(false)
    expect(hasBareLineEnding(Buffer.from('\nb'), false)).toBe(true)
    expect(hasBareLineEnding(Buffer.from('b'), true)).toBe(true)
    expect(hasBareLineEnding(Buffer.from('a\r'), false)).toBe(false)
  })

  it('the guard fails with 550 5.5.2 on a bare LF in reject mode', async () => {
    const err = await through(lineEndingGuard({ policy: 'reject' }), ['ok\r\n', 'bad\n']).catch((e: unknown) => e)
    expect((err as SmtpError).toReply()).toMatch(/^550 5\.5\.2 /)
  })

  it('the guard fails on a CR at the very end of the message', async () => {
    const err = await through(lineEndingGuard({ policy: 'reject' }), ['ok\r']).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(SmtpError)
  })

  it('the guard normalises to CRLF in normalize mode, a CR split from its LF included', async () => {
    expect(await through(lineEndingGuard({ policy: 'normalize' }), ['a\nb\r', '\nc\r', 'd\r'])).toBe('a\r\nb\r\nc\r\nd\r\n')
  })

  it('the guard fails with 552 5.3.4 past the size limit', async () => {
    const err = await through(lineEndingGuard({ policy: 'reject', maxSize: 10 }), ['12345\r\n', '67890\r\n']).catch((e: unknown) => e)
    expect((err as SmtpError).toReply()).toBe('552 5.3.4 Message size exceeds fixed limit of 10 bytes')
  })

  it('toCrlf leaves CRLF text alone and fixes everything else', async () => {
    expect(await through(toCrlf(), ['a\r\nb\r\n'])).toBe('a\r\nb\r\n')
    expect(await through(toCrlf(), ['a\nb\rc\r', '\n\r'])).toBe('a\r\nb\r\nc\r\n\r\n')
  })
})
