/** Measuring a relay's peak memory: the relay runs in a child process (test/helpers/memory-relay.ts). */
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { Readable } from 'node:stream'

/** A message of `head`, about `size` bytes of 78-character lines, then `tail`, generated as it is read. */
export function bigMessage(size: number, head = 'Subject: big\r\n\r\n', tail = ''): Readable {
  const line = Buffer.from(`${'abcdefghij'.repeat(7)}abcdef\r\n`)
  const block = Buffer.concat(Array.from({ length: 800 }, () => line))
  let sent = 0
  return new Readable({
    read() {
      if (sent === 0) this.push(head)
      if (sent >= size) {
        if (tail) this.push(tail)
        return void this.push(null)
      }
      sent += block.length
      this.push(block)
    },
  })
}

/**
 * The time a memory test may take: 50–100 MB through a relay in a child process that collects
 * garbage to sample its live memory, and an independent verifier (dkimpy, openssl) reading the
 * result, take 20–55 s on a loaded 2-core machine on Node 24, against vitest's 60 s default.
 */
export const BIG_MESSAGE_TIMEOUT = 180_000

/** A relay in a child process, in front of the SMTP server on `upstreamPort`. */
export interface MeasuredRelay {
  readonly port: number
  /** Records the peak RSS so far as the baseline. */
  mark(): Promise<void>
  /**
   * Growth since `mark()`, in MiB: of peak RSS, and of peak live memory (heap and buffers after a
   * forced collection; see memory-relay.ts). Bounds are asserted on `live`, which machine load
   * and the V8 version do not move; `rss` is printed alongside.
   */
  growth(): Promise<{ rss: number; live: number }>
  stop(): Promise<void>
}

/** Starts the relay with the named chain (see memory-relay.ts), with `env` added to its environment. */
export async function startMeasuredRelay(
  upstreamPort: number,
  chain: 'spool' | 'smime' | 'dkim' | 'content',
  env: Record<string, string> = {},
): Promise<MeasuredRelay> {
  const child = spawn(
    process.execPath,
    ['--expose-gc', '--import', 'tsx', new URL('./memory-relay.ts', import.meta.url).pathname, String(upstreamPort), chain],
    {
      stdio: ['pipe', 'pipe', 'inherit'],
      env: { ...process.env, ...env },
    },
  )
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]()
  const next = async () => JSON.parse(String((await lines.next()).value)) as Record<string, number>
  const exited = new Promise((resolve) => child.once('exit', resolve))
  const { port } = await next()
  return {
    port: port!,
    async mark() {
      child.stdin.write('mark\n')
      await next()
    },
    async growth() {
      child.stdin.write('report\n')
      const { baseline, peak, liveBaseline, livePeak } = await next()
      return { rss: (peak! - baseline!) / 1024, live: (livePeak! - liveBaseline!) / 1024 }
    },
    async stop() {
      child.stdin.end('exit\n')
      await exited
    },
  }
}
