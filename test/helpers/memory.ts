/**
 * Peak memory of a relay for one large message: the relay runs in its own process
 * (`memory-relay.ts`) so that its RSS is its own, and the message is generated as it is sent.
 */
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { Readable } from 'node:stream'
import { createTransport } from 'nodemailer'

export const MiB = 1024 * 1024

/** A message of at least `size` bytes: `head` (header section and blank line), then 78-character lines. */
export function bigMessage(size: number, head = 'Subject: big\r\n\r\n'): Readable {
  const line = Buffer.from(`${'abcdefghij'.repeat(7)}abcdef\r\n`)
  const block = Buffer.concat(Array.from({ length: 800 }, () => line))
  let sent = 0
  return new Readable({
    read() {
      if (sent === 0) this.push(head)
      if (sent >= size) return void this.push(null)
      sent += block.length
      this.push(block)
    },
  })
}

export interface MemoryRun {
  /** The chain memory-relay.ts builds: 'transform-and-spool' or 'dkim-sign'. */
  chain: string
  upstreamPort: number
  /** Size of the large message in bytes. */
  size: number
  /** Its header section, blank line included; a small warm-up message with the same header goes first. */
  head?: string
  /** Extra environment for the relay process (e.g. a test key). */
  env?: Record<string, string>
}

/** Sends a warm-up message, then the large one; resolves with the relay's peak RSS and its growth, in MiB. */
export async function relayPeakGrowth(run: MemoryRun): Promise<{ peak: number; growth: number }> {
  const script = new URL('./memory-relay.ts', import.meta.url).pathname
  const child = spawn(process.execPath, ['--import', 'tsx', script, String(run.upstreamPort), run.chain], {
    stdio: ['pipe', 'pipe', 'inherit'],
    env: { ...process.env, ...run.env },
  })
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]()
  const next = async () => JSON.parse(String((await lines.next()).value)) as Record<string, number>
  try {
    const { port } = await next()
    const client = createTransport({ host: '127.0.0.1', port, ignoreTLS: true })
    const envelope = { from: 'a@example.com', to: ['b@example.org'] }
    const head = run.head ?? 'Subject: big\r\n\r\n'
    await client.sendMail({ envelope, raw: `${head}small\r\n` })
    child.stdin.write('mark\n')
    await next()
    await client.sendMail({ envelope, raw: bigMessage(run.size, head) })
    child.stdin.write('report\n')
    const { baseline, peak } = await next()
    client.close()
    return { peak: peak! / 1024, growth: (peak! - baseline!) / 1024 }
  } finally {
    child.stdin.end('exit\n')
    await new Promise((resolve) => child.once('exit', resolve))
  }
}
