/** Node stand-ins for smtp-source and smtp-sink, and small port helpers for the bench. */
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { connect, createServer } from 'node:net'
import { fileURLToPath } from 'node:url'
import { createTransport } from 'nodemailer'

export async function freePort(): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}

/** Resolves once something accepts connections on the port (tries for up to 10 s). */
export async function waitForPort(port: number): Promise<void> {
  const deadline = Date.now() + 10_000
  for (;;) {
    const socket = connect(port, '127.0.0.1')
    const ok = await new Promise<boolean>((resolve) => {
      socket.once('connect', () => resolve(true))
      socket.once('error', () => resolve(false))
    })
    socket.destroy()
    if (ok) return
    if (Date.now() > deadline) throw new Error(`nothing listens on ${port}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

/** A discard SMTP sink in its own process. */
export function startNodeSink(port: number): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./sink.ts', import.meta.url)), String(port)], { stdio: 'inherit' })
}

function message(bytes: number): Buffer {
  const head = 'From: <bench@example.com>\r\nTo: <sink@example.org>\r\nSubject: bench\r\n\r\n'
  const line = `${'X'.repeat(76)}\r\n`
  return Buffer.from(head + line.repeat(Math.max(1, Math.ceil(bytes / line.length))))
}

/** `count` messages of about `bytes` over `sessions` parallel clients; resolves with each message's milliseconds until its 250. */
export async function nodeLoad(port: number, sessions: number, count: number, bytes: number, reuse: boolean): Promise<number[]> {
  const raw = message(bytes)
  const latencies: number[] = []
  let remaining = count
  await Promise.all(
    Array.from({ length: sessions }, async () => {
      const client = createTransport({ host: '127.0.0.1', port, ignoreTLS: true, pool: reuse, maxConnections: 1, maxMessages: Infinity })
      while (remaining > 0) {
        remaining--
        const started = performance.now()
        await client.sendMail({ envelope: { from: 'bench@example.com', to: ['sink@example.org'] }, raw })
        latencies.push(performance.now() - started)
      }
      client.close()
    }),
  )
  return latencies
}
