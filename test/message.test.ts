import { Transform } from 'node:stream'
import { buffer } from 'node:stream/consumers'
import { describe, expect, it } from 'vitest'
import { RelayError } from '../src/index.js'
import { testMessage } from '../src/testing/index.js'

const EML = 'Subject: body test\r\n\r\nline one\r\nline two\r\n'

const upper = () =>
  new Transform({
    transform(chunk: Buffer, _e, cb) {
      cb(null, Buffer.from(chunk.toString().toUpperCase()))
    },
  })

describe('message body', () => {
  it('can be read once without a spool', async () => {
    const msg = await testMessage({ eml: EML })
    expect((await buffer(msg.body.stream())).toString()).toBe('line one\r\nline two\r\n')
    expect(() => msg.body.stream()).toThrow(RelayError)
  })

  it('can be read any number of times after spool()', async () => {
    const msg = await testMessage({ eml: EML })
    const spool = await msg.body.spool()
    expect(spool.size).toBe(20)
    expect((await buffer(msg.stream())).toString()).toBe(EML)
    expect((await buffer(msg.stream())).toString()).toBe(EML)
  })

  it('passes the body to spool({ onChunk }) as it spools, and reads an existing spool back for a later caller', async () => {
    const msg = await testMessage({ eml: EML })
    const first: Buffer[] = []
    const spool = await msg.body.spool({ onChunk: (chunk) => first.push(chunk) })
    expect(Buffer.concat(first).toString()).toBe('line one\r\nline two\r\n')
    const second: Buffer[] = []
    expect(await msg.body.spool({ onChunk: (chunk) => second.push(chunk) })).toBe(spool)
    expect(Buffer.concat(second).toString()).toBe('line one\r\nline two\r\n')
    msg.body.transform(upper())
    const third: Buffer[] = []
    expect(await msg.body.spool({ onChunk: (chunk) => third.push(chunk) })).not.toBe(spool)
    expect(Buffer.concat(third).toString()).toBe('LINE ONE\r\nLINE TWO\r\n')
  })

  it('applies transforms lazily, Transform streams and async generators alike', async () => {
    const msg = await testMessage({ eml: EML })
    msg.body.transform(upper())
    msg.body.transform(async function* (source) {
      for await (const chunk of source) yield Buffer.from(String(chunk).replace(/\r\n/g, '!\r\n'))
    })
    expect((await buffer(msg.body.stream())).toString()).toBe('LINE ONE!\r\nLINE TWO!\r\n')
  })

  it('bakes pending transforms into a new spool', async () => {
    const msg = await testMessage({ eml: EML })
    await msg.body.spool()
    msg.body.transform(upper())
    await msg.body.spool()
    expect((await buffer(msg.body.stream())).toString()).toBe('LINE ONE\r\nLINE TWO\r\n')
    expect((await buffer(msg.body.stream())).toString()).toBe('LINE ONE\r\nLINE TWO\r\n')
  })

  it('rewrite() re-parses the header section a whole-message transform produced', async () => {
    const msg = await testMessage({ eml: EML })
    await msg.rewrite(async function* (source) {
      let first = true
      for await (const chunk of source) {
        yield first ? Buffer.concat([Buffer.from('X-Rewritten: yes\r\n'), chunk as Buffer]) : (chunk as Buffer)
        first = false
      }
    })
    expect(msg.headers.get('x-rewritten')).toBe('yes')
    expect(msg.headers.get('subject')).toBe('body test')
    expect((await buffer(msg.body.stream())).toString()).toBe('line one\r\nline two\r\n')
  })

  it('edits headers without reading the body', async () => {
    const msg = await testMessage({ eml: EML })
    msg.headers.add('X-Added', '1')
    expect((await buffer(msg.stream())).toString()).toBe(`X-Added: 1\r\n${EML}`)
  })
})
