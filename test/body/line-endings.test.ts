import { Readable } from 'node:stream'
import { buffer } from 'node:stream/consumers'
import { describe, expect, it } from 'vitest'
import { hasBareLineEnding } from '../../src/core/body/line-endings.js'
import { toCrlf } from '../../src/index.js'

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

  it('toCrlf leaves CRLF text alone and fixes everything else', async () => {
    expect(await through(toCrlf(), ['a\r\nb\r\n'])).toBe('a\r\nb\r\n')
    expect(await through(toCrlf(), ['a\nb\rc\r', '\n\r'])).toBe('a\r\nb\r\nc\r\n\r\n')
  })
})
