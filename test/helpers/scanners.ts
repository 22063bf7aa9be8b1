/**
 * The real scanners, started offline for a test file on free loopback ports: spamd
 * (SpamAssassin, network tests off), clamd (ClamAV, with a test signature database instead of
 * the official one freshclam cannot fetch) and rspamd (modules that need DNS, HTTP or redis
 * disabled). Each runs in its own process group, with its files in a temp dir; `stop()` ends the
 * group by the PID we started and removes the dir, `kill()` SIGKILLs it mid-test. See
 * ../shared/notes/peers.md for how these settings were found.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { chmodSync, chownSync, copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { request } from 'node:http'
import { connect, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import MailComposer from 'nodemailer/lib/mail-composer'
import type { MessageImpl } from '../../src/core/message.js'
import type { Message } from '../../src/core/types.js'
import { spoolMessage } from '../../src/scanners/run.js'
import type { ScanInput } from '../../src/scanners/types.js'
import { type TestMessageOptions, testMessage } from '../../src/testing/index.js'

/** The EICAR test string: every virus scanner detects it; it is harmless. */
export const EICAR = 'X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*'
/** The GTUBE string: SpamAssassin and rspamd treat it as certain spam. */
export const GTUBE = 'XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X'

export interface Daemon {
  readonly host: string
  readonly port: number
  readonly pid: number
  /** SIGKILLs the daemon's process group, as a crash would, and waits until it has exited. */
  kill(): Promise<void>
  /** Stops the daemon (SIGTERM, SIGKILL after 5 s) and removes its files. Idempotent. */
  stop(): Promise<void>
}

const isRoot = process.getuid?.() === 0

/** A port nobody listens on right now. */
export async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}

/** Sends `request` over TCP and resolves with the reply (empty if the port refuses). */
function ask(port: number, payload: string): Promise<string> {
  return new Promise((resolve) => {
    let reply = ''
    const socket = connect(port, '127.0.0.1', () => socket.end(payload))
    socket.setTimeout(2000, () => socket.destroy())
    socket.on('data', (d: Buffer) => (reply += d.toString('latin1')))
    socket.on('error', () => {})
    socket.on('close', () => resolve(reply))
  })
}

function httpGet(port: number, path: string): Promise<string> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path, timeout: 2000 }, (res) => {
      let body = ''
      res.on('data', (d: Buffer) => (body += d.toString()))
      res.on('end', () => resolve(body))
    })
    req.on('error', () => resolve(''))
    req.end()
  })
}

/** Chowns a tree to a system user (when we are root), so a daemon that drops privileges can use it. */
function giveTo(user: string, path: string): void {
  if (!isRoot) return
  const uid = Number(spawnSync('id', ['-u', user]).stdout.toString())
  const gid = Number(spawnSync('id', ['-g', user]).stdout.toString())
  const walk = (p: string) => {
    chownSync(p, uid, gid)
    if (statSync(p).isDirectory()) for (const entry of readdirSync(p)) walk(join(p, entry))
  }
  walk(path)
}

async function launch(
  name: string,
  command: string,
  args: string[],
  dir: string,
  port: number,
  ready: () => Promise<boolean>,
  readyWithin: number,
): Promise<Daemon> {
  const child: ChildProcess = spawn(command, args, { detached: true, stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  let running = true
  void exited.then(() => (running = false))
  const signalGroup = (signal: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, signal)
    } catch {
      // already gone
    }
  }
  // If the test process dies before stop(), the daemon must not outlive it.
  const onExit = () => signalGroup('SIGKILL')
  process.once('exit', onExit)
  void exited.then(() => process.off('exit', onExit))
  let stopped = false
  const daemon: Daemon = {
    host: '127.0.0.1',
    port,
    pid: child.pid!,
    async kill() {
      signalGroup('SIGKILL')
      await exited
    },
    async stop() {
      if (stopped) return
      stopped = true
      signalGroup('SIGTERM')
      const timer = setTimeout(() => signalGroup('SIGKILL'), 5000)
      await exited
      clearTimeout(timer)
      rmSync(dir, { recursive: true, force: true })
    },
  }
  // A bounded readiness poll: daemons have no "ready" signal we can wait on.
  const deadline = Date.now() + readyWithin
  while (!(await ready())) {
    if (!running || Date.now() > deadline) {
      await daemon.stop()
      throw new Error(`${name} did not become ready on port ${port} within ${readyWithin} ms: ${stderr.slice(-2000)}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  return daemon
}

/** spamd with the shipped rules, offline: no DNS, no network tests, no Bayes. */
export async function startSpamd(): Promise<Daemon> {
  const dir = mkdtempSync(join(tmpdir(), 'relaychain-spamd-'))
  const site = join(dir, 'site')
  mkdirSync(site)
  mkdirSync(join(dir, 'home'))
  for (const file of readdirSync('/etc/spamassassin')) {
    if (/\.(pre|cf)$/.test(file)) copyFileSync(join('/etc/spamassassin', file), join(site, file))
  }
  writeFileSync(join(site, 'zz-offline.cf'), 'dns_available no\nskip_rbl_checks 1\nuse_razor2 0\nuse_pyzor 0\nuse_bayes 0\nbayes_auto_learn 0\n')
  chmodSync(dir, 0o755)
  giveTo('debian-spamd', dir)
  const port = await freePort()
  const args = [
    '-L',
    '-x',
    `--listen=127.0.0.1:${port}`,
    '--allowed-ips=127.0.0.1',
    '--max-children=2',
    '--min-children=1',
    `--siteconfigpath=${site}`,
    '-H',
    join(dir, 'home'),
    `--pidfile=${join(dir, 'spamd.pid')}`,
    '-s',
    join(dir, 'spamd.log'),
    ...(isRoot ? ['-u', 'debian-spamd'] : []),
  ]
  return launch('spamd', 'spamd', args, dir, port, async () => /^SPAMD\/\S+ 0 PONG/.test(await ask(port, 'PING SPAMC/1.5\r\n\r\n')), 30_000)
}

/** clamd with a database of test signatures (EICAR as a body signature, found inside MIME too). */
export async function startClamd(options: { streamMaxLength?: string } = {}): Promise<Daemon> {
  const dir = mkdtempSync(join(tmpdir(), 'relaychain-clamd-'))
  mkdirSync(join(dir, 'db'))
  mkdirSync(join(dir, 'tmp'))
  writeFileSync(join(dir, 'db', 'test.ndb'), `Test.EICAR:0:*:${Buffer.from(EICAR).toString('hex')}\n`)
  const port = await freePort()
  const conf = join(dir, 'clamd.conf')
  writeFileSync(
    conf,
    [
      `TCPSocket ${port}`,
      'TCPAddr 127.0.0.1',
      'Foreground yes',
      `DatabaseDirectory ${join(dir, 'db')}`,
      `TemporaryDirectory ${join(dir, 'tmp')}`,
      'SelfCheck 0',
      'ScanMail yes',
      `StreamMaxLength ${options.streamMaxLength ?? '25M'}`,
      'MaxScanSize 100M',
      'MaxFileSize 25M',
      `LogFile ${join(dir, 'clamd.log')}`,
      ...(isRoot ? ['User clamav'] : []),
      '',
    ].join('\n'),
  )
  chmodSync(dir, 0o755)
  giveTo('clamav', dir)
  return launch('clamd', 'clamd', ['-c', conf], dir, port, async () => (await ask(port, 'zPING\0')).startsWith('PONG'), 30_000)
}

/** Modules that would reach out (DNS, HTTP maps) or need redis. */
const RSPAMD_OFF = [
  'rbl',
  'surbl',
  'phishing',
  'multimap',
  'fuzzy_check',
  'rspamd_update',
  'url_redirector',
  'spf',
  'dkim',
  'dmarc',
  'arc',
  'asn',
  'hfilter',
  'mx_check',
  'reputation',
  'neural',
  'bimi',
  'dcc',
  'antivirus',
  'external_services',
  'greylist',
  'ratelimit',
  'history_redis',
  'replies',
  'emails',
  'whitelist',
  'dkim_signing',
  'maillist',
  'once_received',
]

/** A cold start compiles the hyperscan cache: 15–20 s alone, longer on a busy machine. */
export const RSPAMD_READY_WITHIN = 90_000

/**
 * rspamd's normal worker, offline. Its hyperscan cache lives in a stable temp dir, so only the
 * first start on a machine compiles (15–20 s); later starts take about a second.
 */
export async function startRspamd(): Promise<Daemon> {
  const dir = mkdtempSync(join(tmpdir(), 'relaychain-rspamd-'))
  const local = join(dir, 'local', 'local.d')
  mkdirSync(local, { recursive: true })
  mkdirSync(join(dir, 'run'))
  mkdirSync(join(dir, 'log'))
  const cache = join(tmpdir(), `relaychain-rspamd-cache-${process.getuid?.() ?? 'user'}`)
  mkdirSync(cache, { recursive: true })
  const port = await freePort()
  const unused = await freePort()
  writeFileSync(
    join(dir, 'rspamd.conf'),
    [
      '.include "$CONFDIR/common.conf"',
      'options { .include "$CONFDIR/options.inc"',
      '  .include(try=true; priority=1,duplicate=merge) "$LOCAL_CONFDIR/local.d/options.inc" }',
      'logging { type = "file"; filename = "$LOGDIR/rspamd.log"; level = "error"; }',
      `worker "normal" { bind_socket = "127.0.0.1:${port}"; count = 1; mime = true; }`,
      '',
    ].join('\n'),
  )
  // Only the hyperscan cache is shared between instances; everything else is per instance.
  const run = join(dir, 'run')
  writeFileSync(
    join(local, 'options.inc'),
    [
      `dns { nameserver = ["127.0.0.1:${unused}"]; timeout = 0.2s; retransmits = 1; }`,
      `pidfile = "${run}/rspamd.pid";`,
      `control_socket = "${run}/rspamd.sock mode=0600";`,
      `cache_file = "${run}/symbols.cache";`,
      `dynamic_conf = "${run}/dynamic";`,
      `history_file = "${run}/history";`,
      `rrd = "${run}/rspamd.rrd";`,
      `stats_file = "${run}/stats.ucl";`,
      '',
    ].join('\n'),
  )
  for (const module of RSPAMD_OFF) writeFileSync(join(local, `${module}.conf`), 'enabled = false;\n')
  chmodSync(dir, 0o755)
  giveTo('_rspamd', dir)
  giveTo('_rspamd', cache)
  const args = [
    '-f',
    '-c',
    join(dir, 'rspamd.conf'),
    '--var',
    'CONFDIR=/etc/rspamd',
    '--var',
    `LOCAL_CONFDIR=${join(dir, 'local')}`,
    '--var',
    `DBDIR=${cache}`,
    '--var',
    `RUNDIR=${run}`,
    '--var',
    `LOGDIR=${join(dir, 'log')}`,
    ...(isRoot ? ['-u', '_rspamd', '-g', '_rspamd'] : []),
  ]
  return launch('rspamd', 'rspamd', args, dir, port, async () => (await httpGet(port, '/ping')).trim() === 'pong', RSPAMD_READY_WITHIN)
}

const inputs: Message[] = []

/** A scanner's input for `eml`, as the scanning stages build it. Remove its spool with {@link disposeScanInputs}. */
export async function scanInput(eml: string | Buffer, options: TestMessageOptions & { signal?: AbortSignal } = {}): Promise<ScanInput> {
  const message = await testMessage({ ...options, eml })
  inputs.push(message)
  const spooled = await spoolMessage(message)
  return { message, size: spooled.size, open: spooled.open, signal: options.signal ?? new AbortController().signal }
}

/** Removes the spools (temp files) of every input {@link scanInput} made. */
export async function disposeScanInputs(): Promise<void> {
  await Promise.all(inputs.splice(0).map((m) => (m as MessageImpl).dispose()))
}

/** A small MIME message with `content` as a base64 attachment. */
export async function withAttachment(content: string | Buffer, filename = 'file.bin'): Promise<Buffer> {
  const composer = new MailComposer({
    from: 'ann@example.com',
    to: 'bob@example.org',
    subject: 'attachment',
    text: 'See the attachment.',
    attachments: [{ filename, content: Buffer.from(content), contentType: 'application/octet-stream' }],
  })
  const raw = await composer.compile().build()
  return Buffer.from(raw.toString('latin1').replace(/\r?\n/g, '\r\n'), 'latin1')
}
