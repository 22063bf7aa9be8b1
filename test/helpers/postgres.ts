/**
 * A real PostgreSQL for tests and examples: Debian's server binaries (`initdb`, `postgres` from
 * /usr/lib/postgresql/<version>/bin), a fresh cluster in a temp folder, run as an unprivileged
 * user (`nobody` when we are root: PostgreSQL refuses to run as root), listening on a free
 * loopback port and a socket in that folder, trust authentication (loopback only). `stop()` ends
 * it by the PID we started and removes the folder; `halt()` and `start()` stop and restart the
 * same cluster on the same port (PostgreSQL down during load). Guard the tests with
 * {@link havePostgres}: a missing server skips loudly, and fails under RELAYCHAIN_REQUIRE_PEERS=1.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { freePort } from './ports.js'

const NOBODY = { uid: 65534, gid: 65534 }
const isRoot = process.getuid?.() === 0

/** The newest installed server's bin folder, or undefined. */
export function postgresBin(): string | undefined {
  const root = '/usr/lib/postgresql'
  if (!existsSync(root)) return undefined
  const versions = readdirSync(root)
    .filter((v) => existsSync(join(root, v, 'bin', 'initdb')) && existsSync(join(root, v, 'bin', 'postgres')))
    .sort((a, b) => Number(b) - Number(a))
  return versions[0] && join(root, versions[0], 'bin')
}

/** True if a PostgreSQL server can be started here; otherwise skips loudly (or throws under RELAYCHAIN_REQUIRE_PEERS=1). */
export function havePostgres(): boolean {
  if (postgresBin()) return true
  const message = 'PostgreSQL (initdb, postgres under /usr/lib/postgresql/*/bin) is not available; install it with: apt-get install -y postgresql'
  if (process.env.RELAYCHAIN_REQUIRE_PEERS === '1') throw new Error(`${message} (required: RELAYCHAIN_REQUIRE_PEERS=1)`)
  console.warn(`\n*** SKIPPING tests that need PostgreSQL: ${message} ***\n`)
  return false
}

export interface TestPostgres {
  readonly port: number
  /** `postgres://relaychain@127.0.0.1:<port>/relaychain` */
  readonly url: string
  /** The server's PID now (it changes on `start()` after `halt()`). */
  readonly pid: number
  /** Stops the server (fast shutdown), keeping its data: PostgreSQL down. */
  halt(): Promise<void>
  /** Starts it again on the same port and data. */
  start(): Promise<void>
  /** Stops the server and removes its folder. Idempotent. */
  stop(): Promise<void>
}

/** Initialises a cluster and starts it; resolves once it accepts connections (at most 30 s). */
export async function startPostgres(options: { settings?: Record<string, string> } = {}): Promise<TestPostgres> {
  const bin = postgresBin()
  if (!bin) throw new Error('PostgreSQL is not installed (apt-get install -y postgresql)')
  const dir = mkdtempSync(join(tmpdir(), 'relaychain-pg-'))
  const as = isRoot ? NOBODY : {}
  if (isRoot) chownSync(dir, NOBODY.uid, NOBODY.gid)
  const data = join(dir, 'data')
  const init = spawnSync(join(bin, 'initdb'), ['-D', data, '-U', 'relaychain', '--auth=trust', '-E', 'UTF8', '--locale=C', '--no-sync'], {
    ...as,
    cwd: dir,
    encoding: 'utf8',
  })
  if (init.status !== 0) {
    rmSync(dir, { recursive: true, force: true })
    throw new Error(`initdb failed: ${init.stderr || init.stdout}`)
  }
  const port = await freePort()
  const settings: Record<string, string> = {
    listen_addresses: '127.0.0.1',
    port: String(port),
    unix_socket_directories: dir,
    max_connections: '200',
    shared_buffers: '64MB',
    log_min_messages: 'fatal',
    ...options.settings,
  }
  const args = ['-D', data, ...Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`])]
  let child: ChildProcess | undefined
  let exited: Promise<unknown> = Promise.resolve()

  async function start(): Promise<void> {
    child = spawn(join(bin!, 'postgres'), args, { ...as, cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    child.stderr!.on('data', (d: Buffer) => void (stderr = (stderr + d.toString()).slice(-4000)))
    exited = once(child, 'exit')
    const deadline = Date.now() + 30_000
    while (!ready(bin!, port)) {
      if (child.exitCode !== null || Date.now() > deadline) {
        child.kill('SIGKILL')
        throw new Error(`postgres did not start on port ${port}: ${stderr}`)
      }
      await sleep(100) // bounded readiness poll of the server
    }
    // The database the URL names (the cluster has only `postgres` at first).
    if (!hasDatabase(bin!, port)) {
      const created = spawnSync(join(bin!, 'createdb'), ['-h', '127.0.0.1', '-p', String(port), '-U', 'relaychain', 'relaychain'], {
        encoding: 'utf8',
      })
      if (created.status !== 0 && !/already exists/.test(created.stderr)) throw new Error(`createdb failed: ${created.stderr}`)
    }
  }

  async function halt(): Promise<void> {
    if (child && child.exitCode === null && child.signalCode === null) {
      process.kill(child.pid!, 'SIGINT') // fast shutdown: clients are disconnected, committed data stays
      await exited
    }
  }

  await start()
  let stopped = false
  return {
    port,
    url: `postgres://relaychain@127.0.0.1:${port}/relaychain`,
    get pid() {
      return child!.pid!
    },
    halt,
    start,
    async stop() {
      if (stopped) return
      stopped = true
      await halt()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

function ready(bin: string, port: number): boolean {
  return spawnSync(join(bin, 'pg_isready'), ['-q', '-h', '127.0.0.1', '-p', String(port)]).status === 0
}

function hasDatabase(bin: string, port: number): boolean {
  const r = spawnSync(join(bin, 'psql'), ['-h', '127.0.0.1', '-p', String(port), '-U', 'relaychain', '-d', 'relaychain', '-c', 'select 1'], {
    stdio: 'ignore',
  })
  return r.status === 0
}
