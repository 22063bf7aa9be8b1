/** Starting queue-child.ts (a relay with a durable queue) as a process of its own, and talking to it. */
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { createInterface, type Interface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import type { EntrySummary } from '../../src/index.js'

export const QUEUE_CHILD = fileURLToPath(new URL('./queue-child.ts', import.meta.url))

export interface QueueProcess {
  readonly child: ChildProcess
  readonly port: number
  /** The entries and what is in tmp/, as the process sees them. */
  report(): Promise<{ entries: EntrySummary[]; tmp: string[] }>
  /** Removes the filler that made its disk full. */
  free(): Promise<void>
  /** Has it deliver everything (flush, deliver, until its queue is empty). */
  drain(): Promise<void>
  /** SIGKILL, and the exit. */
  kill(): Promise<void>
}

/**
 * Starts the process with `env`; `command` runs it (default: node with tsx, or `script` as
 * given: a bundle starts faster); `prefix` goes before it (e.g. `unshare` and a mount).
 */
export async function startQueueProcess(env: Record<string, string>, options: QueueProcessOptions = {}): Promise<QueueProcess> {
  return spawnQueueProcess(env, options).ready
}

export interface QueueProcessOptions {
  script?: string
  prefix?: readonly string[]
}

/** Starts the process; `ready` resolves once it listens, `kill()` works before that too. */
export function spawnQueueProcess(
  env: Record<string, string>,
  options: QueueProcessOptions = {},
): { ready: Promise<QueueProcess>; kill(): Promise<void> } {
  const node = options.script ? [process.execPath, options.script] : [process.execPath, '--import', 'tsx', QUEUE_CHILD]
  const argv = [...(options.prefix ?? []), ...node]
  const child = spawn(argv[0]!, argv.slice(1), { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'inherit'] })
  const lines: Interface = createInterface({ input: child.stdout! })
  const waiting: Array<{ prefix: string; resolve: (line: string) => void }> = []
  lines.on('line', (line) => {
    const i = waiting.findIndex((w) => line.startsWith(w.prefix))
    if (i >= 0) waiting.splice(i, 1)[0]!.resolve(line)
  })
  const line = (prefix: string) =>
    new Promise<string>((resolve, reject) => {
      waiting.push({ prefix, resolve })
      child.once('exit', (code, signal) => reject(new Error(`queue process exited (${code ?? signal}) before ${prefix}`)))
    })
  const exited = once(child, 'exit')
  const kill = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    await exited
  }
  const ready = line('READY ').then(
    (ready): QueueProcess => ({
      child,
      port: Number(ready.slice('READY '.length)),
      async report() {
        const answer = line('REPORT ')
        child.stdin!.write('report\n')
        return JSON.parse((await answer).slice('REPORT '.length))
      },
      async free() {
        const answer = line('FREED')
        child.stdin!.write('free\n')
        await answer
      },
      async drain() {
        const answer = line('DRAINED')
        child.stdin!.write('drain\n')
        await answer
      },
      kill,
    }),
  )
  ready.catch(() => {})
  return { ready, kill }
}
