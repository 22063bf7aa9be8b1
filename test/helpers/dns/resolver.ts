/**
 * `startValidatingResolver(zones)`: a real DNSSEC-validating resolver for the tests, Debian's
 * `unbound`, on 127.0.0.1 at a free port, serving test zones signed offline (sign.ts).
 *
 * How it is put together, in a fresh temp dir:
 * - ldns signs the zones under a parent anchor zone (`test.`), whose DS is the only trust anchor.
 * - unbound loads every zone file as an `auth-zone` with `for-upstream: yes`: its iterator takes
 *   answers from the files as if from authoritative servers, and its validator checks them like
 *   any upstream answer. No authoritative server runs, so nothing listens but unbound itself.
 * - Isolation, three layers deep: `local-zone: "." refuse` answers REFUSED to every client query
 *   outside the anchor; the root hints name a single loopback address, never the real root
 *   (an empty hints file is NOT enough: unbound then falls back to its built-in root servers);
 *   and `do-not-query-address` covers all of IPv4 and IPv6, so unbound sends no query anywhere.
 *   With `verbosity: 3` the log shows every query unbound sends (`sending query:`): the tests
 *   read it to prove there were none.
 *
 * Outcomes: a `'signed'` zone's answers carry AD=1; an `'unsigned'` one (insecure delegation)
 * AD=0; an `'expired'` one SERVFAIL. Start-up is about a tenth of a second (`startupMs`).
 * Guard tests with {@link haveValidatingResolver}: it skips loudly when unbound or ldns is
 * missing, and fails under RELAYCHAIN_REQUIRE_PEERS=1.
 */
import { spawn } from 'node:child_process'
import { createSocket } from 'node:dgram'
import { once } from 'node:events'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import dnsPacket from 'dns-packet'
import { havePeer } from '../peers.js'
import { signTestZones } from './sign.js'
import type { TestZone } from './zones.js'

export interface ValidatingResolver {
  readonly host: '127.0.0.1'
  readonly port: number
  /** `127.0.0.1:<port>`, as the DNS client's `server` option takes it. */
  readonly address: string
  /** Milliseconds from the call to the first answered query (signing included). */
  readonly startupMs: number
  /** The zone the test zones hang under, e.g. `test`. */
  readonly anchor: string
  /** unbound's log so far. */
  log(): string
  stop(): Promise<void>
}

export interface ValidatingResolverOptions {
  /** Parent of every test zone, signed, the trust anchor. Default `test` (RFC 6761). */
  anchor?: string
  /** unbound's verbosity; 3 logs each query it sends. Default 1. */
  verbosity?: number
}

/** True if unbound and ldns are installed; otherwise see test/helpers/peers.ts. */
export function haveValidatingResolver(): boolean {
  return (
    havePeer('unbound', 'apt-get install -y unbound') &&
    havePeer('ldns-signzone', 'apt-get install -y ldnsutils') &&
    havePeer('ldns-keygen', 'apt-get install -y ldnsutils')
  )
}

/** True once `server` listens, false if it failed to (port taken). `events.once` would reject instead. */
const listened = (server: Server): Promise<boolean> =>
  new Promise((resolve) => {
    server.once('listening', () => resolve(true))
    server.once('error', () => resolve(false))
  })

/** A port free for both UDP and TCP on 127.0.0.1 (released again for unbound to take). */
async function freePort(): Promise<number> {
  for (;;) {
    const udp = createSocket('udp4')
    udp.bind(0, '127.0.0.1')
    await once(udp, 'listening')
    const port = udp.address().port
    const tcp = createServer().listen(port, '127.0.0.1')
    const free = await listened(tcp)
    await new Promise((done) => udp.close(() => done(undefined)))
    if (free) {
      await new Promise((done) => tcp.close(() => done(undefined)))
      return port
    }
  }
}

/** True once a query for the anchor's SOA is answered (any answer: unbound is serving). */
async function answers(port: number, anchor: string): Promise<boolean> {
  const socket = createSocket('udp4')
  try {
    const reply = once(socket, 'message')
    socket.send(
      dnsPacket.encode({ type: 'query', id: 1, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'SOA', name: anchor }] }),
      port,
      '127.0.0.1',
    )
    return await Promise.race([reply.then(() => true), sleep(100).then(() => false)])
  } finally {
    socket.close()
  }
}

function config(
  dir: string,
  port: number,
  anchor: string,
  verbosity: number,
  trustAnchorFile: string,
  zones: readonly { origin: string; file: string }[],
): string {
  const server = [
    `interface: 127.0.0.1`,
    `port: ${port}`,
    `do-ip6: no`,
    `username: ""`,
    `chroot: ""`,
    `directory: "${dir}"`,
    `pidfile: ""`,
    `use-syslog: no`,
    `logfile: ""`,
    `log-time-ascii: yes`,
    `verbosity: ${verbosity}`,
    `val-log-level: 2`,
    `num-threads: 1`,
    `so-reuseport: no`,
    `outgoing-range: 32`,
    `module-config: "validator iterator"`,
    `msg-cache-size: 1m`,
    `rrset-cache-size: 1m`,
    `key-cache-size: 1m`,
    `neg-cache-size: 1m`,
    `trust-anchor-file: "${trustAnchorFile}"`,
    `trust-anchor-signaling: no`,
    `root-key-sentinel: no`,
    `root-hints: "${join(dir, 'root.hints')}"`,
    `do-not-query-localhost: yes`,
    `do-not-query-address: 0.0.0.0/0`,
    `do-not-query-address: ::/0`,
    `local-zone: "." refuse`,
    `local-zone: "${anchor}." transparent`,
  ]
  const auth = zones.flatMap((z) => [
    'auth-zone:',
    `  name: "${z.origin}."`,
    `  zonefile: "${z.file}"`,
    '  for-downstream: no',
    '  for-upstream: yes',
    '  fallback-enabled: no',
  ])
  return ['server:', ...server.map((line) => `  ${line}`), ...auth, 'remote-control:', '  control-enable: no', ''].join('\n')
}

/**
 * Signs `zones` and starts unbound serving them (see the file header). Call `stop()` when done.
 *
 * @example
 * ```ts
 * const resolver = await startValidatingResolver([testZone('secure.test', [mx('secure.test', 10, 'mx.secure.test')])])
 * const dns = createDnsClient({ server: resolver.address })
 * (await dns.mx('secure.test')).authenticated // true
 * await resolver.stop()
 * ```
 */
export async function startValidatingResolver(zones: readonly TestZone[], options: ValidatingResolverOptions = {}): Promise<ValidatingResolver> {
  const started = performance.now()
  const anchor = options.anchor ?? 'test'
  const dir = await mkdtemp(join(tmpdir(), 'relaychain-unbound-'))
  try {
    const signed = await signTestZones(dir, zones, anchor)
    await writeFile(join(dir, 'root.hints'), '. 3600000 NS ns.root.invalid.\nns.root.invalid. 3600000 A 127.255.255.254\n')
    for (let attempt = 1; ; attempt++) {
      const port = await freePort()
      const file = join(dir, 'unbound.conf')
      await writeFile(file, config(dir, port, anchor, options.verbosity ?? 1, signed.trustAnchorFile, signed.zones))
      const child = spawn('unbound', ['-d', '-c', file], { stdio: ['ignore', 'ignore', 'pipe'] })
      let log = ''
      child.stderr.setEncoding('utf8').on('data', (text: string) => (log += text))
      const exited = once(child, 'exit')
      const kill = () => child.kill('SIGKILL')
      process.once('exit', kill) // never outlive the test process
      let ready = false
      for (let waited = 0; !ready && child.exitCode === null && waited < 5000; waited += 20) {
        ready = log.includes('start of service') && (await answers(port, anchor))
        if (!ready) await sleep(20)
      }
      if (ready) {
        const startupMs = Math.round(performance.now() - started)
        return {
          host: '127.0.0.1',
          port,
          address: `127.0.0.1:${port}`,
          startupMs,
          anchor,
          log: () => log,
          async stop() {
            process.removeListener('exit', kill)
            if (child.exitCode === null && child.signalCode === null) {
              child.kill('SIGTERM')
              const timer = setTimeout(kill, 3000)
              await exited
              clearTimeout(timer)
            }
            await rm(dir, { recursive: true, force: true })
          },
        }
      }
      process.removeListener('exit', kill)
      if (child.exitCode === null) {
        child.kill('SIGKILL')
        await exited
      }
      // Another process may have taken the port between freePort() and unbound's bind: try again.
      if (attempt >= 3 || !/bind|address already in use/i.test(log)) throw new Error(`unbound did not start:\n${log}`)
    }
  } catch (err) {
    await rm(dir, { recursive: true, force: true })
    throw err
  }
}
