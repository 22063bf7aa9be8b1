/**
 * A real redis-server for tests, on a free loopback port, without persistence; stop it in
 * afterAll. Guard the tests that need it with `havePeer('redis-server', …)`.
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { connect } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { freePort } from './ports.js'

export interface TestRedis {
  readonly port: number
  /** `redis://127.0.0.1:<port>` */
  readonly url: string
  stop(): Promise<void>
}

/** True once the server answers PING with PONG. */
function pong(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    socket.setTimeout(500, () => (socket.destroy(), resolve(false)))
    socket.once('error', () => resolve(false))
    socket.once('connect', () => socket.write('PING\r\n'))
    socket.once('data', (data) => (socket.destroy(), resolve(data.toString().startsWith('+PONG'))))
  })
}

/** Starts redis-server and waits (at most 10 s) until it answers. */
export async function startRedis(): Promise<TestRedis> {
  const port = await freePort()
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
  const exited = once(child, 'exit')
  const deadline = Date.now() + 10_000
  while (!(await pong(port))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL')
      throw new Error(`redis-server did not start on port ${port}`)
    }
    await sleep(50) // bounded readiness poll of the daemon
  }
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    async stop() {
      if (child.exitCode === null) process.kill(child.pid!, 'SIGTERM')
      await exited
    },
  }
}
