import { describe, expect, it } from 'vitest'
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { Readable } from 'node:stream'
import { createTransport } from 'nodemailer'
import { startSink } from '../src/testing/index.js'

const MiB = 1024 * 1024

/** A message of `size` bytes, generated as it is read. */
function bigMessage(size: number): Readable {
  const line = Buffer.from(`${'abcdefghij'.repeat(7)}abcdef\r\n`)
  const block = Buffer.concat(Array.from({ length: 800 }, () => line))
  let sent = 0
  return new Readable({
    read() {
      if (sent === 0) this.push('Subject: big\r\n\r\n')
      if (sent >= size) return void this.push(null)
      sent += block.length
      this.push(block)
    },
  })
}

describe('memory', () => {
  it('relays a 100 MB message through a transforming and a spooling stage with peak RSS growth under 64 MB', async () => {
    const sink = await startSink({ keepContent: false })
    const child = spawn(process.execPath, ['--import', 'tsx', new URL('./helpers/memory-relay.ts', import.meta.url).pathname, String(sink.port)], {
      stdio: ['pipe', 'pipe', 'inherit'],
    })
    const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]()
    const next = async () => JSON.parse(String((await lines.next()).value)) as Record<string, number>
    try {
      const { port } = await next()
      const client = createTransport({ host: '127.0.0.1', port, ignoreTLS: true })
      const envelope = { from: 'a@example.com', to: ['b@example.org'] }
      await client.sendMail({ envelope, raw: 'Subject: warm-up\r\n\r\nsmall\r\n' })
      child.stdin.write('mark\n')
      await next()
      await client.sendMail({ envelope, raw: bigMessage(100 * MiB) })
      child.stdin.write('report\n')
      const { baseline, peak } = await next()
      client.close()
      const [, big] = await sink.waitForMessages(2)
      expect(big!.size).toBeGreaterThan(100 * MiB)
      const growth = (peak! - baseline!) / 1024
      console.log(`relay peak RSS ${(peak! / 1024).toFixed(1)} MiB, growth ${growth.toFixed(1)} MiB for a 100 MiB message`)
      expect(growth).toBeLessThan(64)
    } finally {
      child.stdin.end('exit\n')
      await new Promise((resolve) => child.once('exit', resolve))
      await sink.close()
    }
  })
})
