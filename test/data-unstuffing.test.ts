import { once } from 'node:events'
import { SMTPStream } from 'smtp-server/lib/smtp-stream.js'
import { describe, expect, it } from 'vitest'
import { installFastUnstuffing } from '../src/ingress/smtp-server/data-unstuffing.js'

type Feed = (chunk: Buffer, done: (err?: Error) => void) => void
const proto = SMTPStream.prototype as unknown as { _feedDataStream: Feed }

/** What an SMTPStream with `feed` makes of `chunks`: the command lines, and each DATA's content. */
async function receive(feed: Feed, chunks: readonly Buffer[]): Promise<{ commands: string[]; messages: string[] }> {
  const saved = proto._feedDataStream
  proto._feedDataStream = feed
  try {
    const stream = new SMTPStream()
    const commands: string[] = []
    const messages: string[] = []
    const ended: Promise<unknown>[] = []
    stream.oncommand = (line: Buffer, next: () => void) => {
      commands.push(line.toString('latin1'))
      if (line.toString() === 'DATA') {
        const data = stream.startDataMode()
        const parts: Buffer[] = []
        data.on('data', (d: Buffer) => parts.push(d))
        ended.push(
          once(data, 'end').then(() => {
            messages.push(Buffer.concat(parts).toString('latin1'))
            stream.continue()
          }),
        )
      }
      next()
    }
    for (const chunk of chunks) stream.write(chunk)
    stream.end()
    await once(stream, 'finish')
    await Promise.all(ended)
    return { commands, messages }
  } finally {
    proto._feedDataStream = saved
  }
}

describe("smtp-server's DATA reader with indexOf", () => {
  const original = proto._feedDataStream

  it('installs on the smtp-server version relaychain pins', () => {
    installFastUnstuffing()
    expect(proto._feedDataStream).not.toBe(original)
  })

  it('ends DATA, unstuffs dots and hands back what follows exactly as smtp-server does, however the input is cut', async () => {
    installFastUnstuffing()
    const fast = proto._feedDataStream
    const pieces = ['x', 'abc', '\r\n', '\r\n', '.', '..', '\r\n.', '\r\n..', '\r\n.\r\n', '\n.', '\r\n.\r\nNOOP\r\n', '\r.\r', '.\r\n']
    let seed = 7
    const random = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff
    for (let n = 0; n < 1500; n++) {
      const body = Array.from({ length: Math.floor(random() * 20) }, () => pieces[Math.floor(random() * pieces.length)]).join('')
      const input = Buffer.from(`DATA\r\n${body}\r\n.\r\nQUIT\r\n`)
      const chunks: Buffer[] = []
      for (let at = 0; at < input.length; ) {
        const size = 1 + Math.floor(random() * (n % 2 ? 4 : 40))
        chunks.push(input.subarray(at, at + size))
        at += size
      }
      expect([JSON.stringify(body), await receive(fast, chunks)]).toEqual([JSON.stringify(body), await receive(original, chunks)])
    }
  })
})
