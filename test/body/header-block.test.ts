import { describe, expect, it } from 'vitest'
import { HeaderBlock, RelayError } from '../../src/index.js'

const RAW = Buffer.from(
  'Received: from a\r\n\tby b; date\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\nX-Eight: caf\xe9\r\nTo: <x@example.org>\r\nsubject: second\r\n',
  'latin1',
)

describe('HeaderBlock', () => {
  it('writes an untouched section back byte for byte, 8-bit and folding included', () => {
    expect(
      HeaderBlock.parse(RAW)
        .toBuffer()
        .equals(Buffer.concat([RAW, Buffer.from('\r\n')])),
    ).toBe(true)
    expect(HeaderBlock.parse(RAW, Buffer.alloc(0)).toBuffer().equals(RAW)).toBe(true)
  })

  it('reads values unfolded and names case-insensitively', () => {
    const block = HeaderBlock.parse(RAW)
    expect(block.get('received')).toBe('from a\tby b; date')
    expect(block.getAll('SUBJECT')).toEqual(['=?utf-8?q?caf=C3=A9?=', 'second'])
    expect(block.has('x-missing')).toBe(false)
  })

  it('adds at the top, appends at the bottom, sets in place and removes every occurrence', () => {
    const block = HeaderBlock.parse(RAW)
    block.add('X-Top', '1').append('X-Bottom', '2').set('Subject', 'replaced')
    expect(block.remove('to')).toBe(1)
    const text = block.toBuffer().toString('latin1')
    expect(text.startsWith('X-Top: 1\r\nReceived: from a\r\n\tby b; date\r\nSubject: replaced\r\nX-Eight')).toBe(true)
    expect(text.endsWith('X-Bottom: 2\r\n\r\n')).toBe(true)
    expect(block.getAll('subject')).toEqual(['replaced'])
  })

  it('adds the empty line after an edited section that had none', () => {
    const block = HeaderBlock.parse(Buffer.from('A: b\r\n'), Buffer.alloc(0))
    block.add('X', 'y')
    expect(block.toBuffer().toString()).toBe('X: y\r\nA: b\r\n\r\n')
  })

  it('refuses names and values that would break the section', () => {
    const block = HeaderBlock.from([])
    expect(() => block.add('Bad Name', 'x')).toThrow(RelayError)
    expect(() => block.add('X', 'a\r\nInjected: yes')).toThrow(/not folding/)
    expect(() => block.add('X', 'a\nb')).toThrow(RelayError)
    expect(block.add('X', 'a\r\n\tfolded').get('x')).toBe('a\tfolded')
  })

  it('keeps edits of a clone apart from the original', () => {
    const block = HeaderBlock.parse(RAW)
    const copy = block.clone()
    copy.remove('received')
    expect(block.has('received')).toBe(true)
  })
})
