/**
 * `npm run bench`: messages/second, CPU per message and peak RSS of relay chains against a bare
 * pass-through baseline measured in the same run, at 4 KB, 256 KB and 5 MB, in two modes:
 *
 * - reuse: each client session sends message after message over one connection;
 * - per-connection: one connection per message, as many applications send (here smtp-server's
 *   fixed 100 ms pre-greeting delay caps the baseline; relaychain's submission listener greets
 *   at once).
 *
 * Load comes from Postfix's smtp-source and goes to Postfix's smtp-sink when they are installed
 * (`apt-get install postfix`), from/to small Node equivalents otherwise. Each server runs in its
 * own process (on the built package: the bench script builds first) and forwards to a sink of its
 * own; every figure is the median of BENCH_RUNS runs, the servers interleaved run by run.
 *
 * Servers (bench/servers.mjs): baseline (smtp-server piped into nodemailer, no code of ours);
 * relaychain (the empty chain: one stage that grants relaying); relaychain-outbound (the outbound
 * gateway: relay policy, address rewrite, header edits, disclaimer, DKIM RSA-2048); postfix (a
 * private Postfix relaying to the sink, bench/postfix.ts; its rate counts until its queue is
 * empty again); relaychain-queue (the empty chain into a durable queue that delivers to the sink;
 * its rate, like Postfix's, counts until every message was delivered). Also available: relaychain-full (the outbound edits plus an archive copy over
 * SMTP, so every message is delivered twice) and relaychain-dkim (a grant stage and DKIM).
 *
 * Besides the table it prints the relay's own stage timings per message (from its `accepted`
 * delivery events), the peak RSS of the empty and the outbound chain for one 100 MB message, the
 * time each store-and-forward server takes to answer 250 (p50/p99 of 4 KB messages over
 * BENCH_SESSIONS sessions, from a Node client that times each message) against the pass-through
 * chain's, and the queue's restart with 10,000 and 100,000 messages queued (bench/queue-restart.ts).
 * It writes bench/results.md and the table between the bench markers of README.md.
 *
 * Environment: BENCH_SESSIONS (10), BENCH_RUNS (3), BENCH_SIZES (e.g. "4K,256K"), BENCH_SERVERS
 * (e.g. "baseline,relaychain"), BENCH_MODES ("reuse,per-connection"), BENCH_MEMORY ("0" skips
 * the 100 MB message), BENCH_LATENCY ("0" skips the time to 250), BENCH_RESTART_COUNTS ("" skips
 * the restart), BENCH_README ("0" leaves README.md alone).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { freePort, nodeLoad, startNodeSink, waitForPort } from './load.js'
import { type PostfixInstance, postfixAvailable, startPostfix } from './postfix.js'
import { measureRestart } from './queue-restart.js'

const SESSIONS = Number(process.env.BENCH_SESSIONS ?? 10)
const RUNS = Number(process.env.BENCH_RUNS ?? 3)
const SIZES = [
  { label: '4K', bytes: 4 * 1024, reuse: 3000, perConnection: 1000 },
  { label: '256K', bytes: 256 * 1024, reuse: 600, perConnection: 300 },
  { label: '5M', bytes: 5 * 1024 * 1024, reuse: 60, perConnection: 40 },
].filter((s) => !process.env.BENCH_SIZES || process.env.BENCH_SIZES.split(',').includes(s.label))
const hasTool = (tool: string) => spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0
const postfixTools = hasTool('smtp-source') && hasTool('smtp-sink')
const SERVERS = (process.env.BENCH_SERVERS ?? 'baseline,relaychain,relaychain-outbound,relaychain-queue,postfix')
  .split(',')
  .filter((s) => s !== 'postfix' || postfixAvailable())
const MODES = (process.env.BENCH_MODES ?? 'reuse,per-connection').split(',') as Mode[]
/** The README table's columns: server → heading. */
const COLUMNS: Record<string, string> = {
  baseline: 'bare ceiling',
  relaychain: 'empty chain',
  'relaychain-outbound': 'outbound chain',
  'relaychain-queue': 'durable queue',
  postfix: 'Postfix',
}

type Mode = 'reuse' | 'per-connection'
type Size = (typeof SIZES)[number]

interface Sample {
  msgsPerSec: number
  /** Peak RSS and CPU time of the server process; absent for Postfix (many processes). */
  maxRssMiB?: number
  /** CPU time of the server process per message: far steadier than throughput on a shared box. */
  cpuMicrosPerMsg?: number
  /** The relay's own timing of each stage, µs per message. */
  stages?: Record<string, number>
  failed: number
}

interface Target {
  port: number
  ask?: (command: 'mark' | 'stats' | 'drain') => Promise<Record<string, number>>
  /** Resolves once everything received was delivered (Postfix stores first). */
  idle?: () => Promise<void>
  stop(): Promise<void>
}

async function startServer(server: string, upstreamPort: number): Promise<Target> {
  if (server === 'postfix') {
    const postfix: PostfixInstance = await startPostfix(await freePort(), upstreamPort, SESSIONS)
    return { port: postfix.port, idle: () => postfix.idle(), stop: async () => postfix.stop() }
  }
  const stores = server === 'relaychain-queue'
  const script = fileURLToPath(new URL('./servers.mjs', import.meta.url))
  const child = spawn(process.execPath, [script, server, String(upstreamPort), String(SESSIONS)], { stdio: ['pipe', 'pipe', 'inherit'] })
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]()
  const read = async () => JSON.parse(String((await lines.next()).value)) as Record<string, number>
  const { port } = await read()
  const ask = async (command: string) => {
    child.stdin!.write(`${command}\n`)
    return read()
  }
  return {
    port: port!,
    ask,
    ...(stores ? { idle: async () => void (await ask('drain')) } : {}),
    stop: () => stopChild(child),
  }
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  child.kill('SIGTERM')
  return exited
}

/** An upstream sink of its own for one measurement. */
async function startSink(): Promise<{ port: number; stop: () => Promise<void> }> {
  const port = await freePort()
  const child = postfixTools
    ? spawn('smtp-sink', [...(process.getuid?.() === 0 ? ['-u', 'nobody'] : []), `127.0.0.1:${port}`, '1024'], { stdio: 'ignore' })
    : startNodeSink(port)
  try {
    await waitForPort(port)
  } catch (err) {
    await stopChild(child)
    throw err
  }
  return { port, stop: () => stopChild(child) }
}

function smtpSource(port: number, sessions: number, count: number, bytes: number, reuse: boolean): Promise<void> {
  const args = ['-s', String(sessions), '-m', String(count), '-l', String(bytes), '-f', 'bench@example.com', '-t', 'sink@example.org']
  if (reuse) args.unshift('-d')
  return new Promise((resolve, reject) => {
    const child = spawn('smtp-source', [...args, `127.0.0.1:${port}`], { stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`smtp-source exited ${code}: ${stderr.trim()}`))))
  })
}

const load = async (port: number, sessions: number, count: number, bytes: number, reuse: boolean): Promise<void> => {
  if (postfixTools) await smtpSource(port, sessions, count, bytes, reuse)
  else await nodeLoad(port, sessions, count, bytes, reuse)
}

async function measure(server: string, size: Size, mode: Mode): Promise<Sample> {
  const sink = await startSink()
  const target = await startServer(server, sink.port).catch(async (err) => {
    await sink.stop()
    throw err
  })
  try {
    const count = mode === 'reuse' ? size.reuse : size.perConnection
    // Warm-up: lazy imports, JIT, the upstream pool.
    await load(target.port, SESSIONS, Math.min(SESSIONS * 2, count), size.bytes, mode === 'reuse')
    await target.idle?.()
    await target.ask?.('mark')
    const started = performance.now()
    await load(target.port, SESSIONS, count, size.bytes, mode === 'reuse')
    await target.idle?.()
    const seconds = (performance.now() - started) / 1000
    if (!target.ask) return { msgsPerSec: count / seconds, failed: 0 }
    const stats = (await target.ask('stats')) as Record<string, number> & { stageMs: Record<string, number> }
    const ok = Math.max(1, stats.ok!)
    return {
      msgsPerSec: count / seconds,
      maxRssMiB: stats.maxRssKiB! / 1024,
      cpuMicrosPerMsg: stats.cpuMicros! / count,
      stages: Object.fromEntries(Object.entries(stats.stageMs).map(([name, ms]) => [name, (ms * 1000) / ok])),
      failed: stats.failed! + Math.max(0, count - stats.ok! - stats.failed!),
    }
  } finally {
    await target.stop()
    await sink.stop()
  }
}

/** Peak RSS of a server relaying one message of `bytes`, and its growth from before that message. */
async function memoryFor(server: string, bytes: number): Promise<{ peakMiB: number; growthMiB: number }> {
  const sink = await startSink()
  const target = await startServer(server, sink.port)
  try {
    await load(target.port, 1, 5, 4096, true)
    const before = await target.ask!('mark')
    await load(target.port, 1, 1, bytes, true)
    const after = await target.ask!('stats')
    return { peakMiB: after.maxRssKiB! / 1024, growthMiB: (after.maxRssKiB! - before.rssKiB!) / 1024 }
  } finally {
    await target.stop()
    await sink.stop()
  }
}

/** Milliseconds until the 250 of each of `count` 4 KB messages over SESSIONS reusing sessions, after a warm-up. */
async function latenciesFor(server: string, count: number): Promise<number[]> {
  const sink = await startSink()
  const target = await startServer(server, sink.port)
  try {
    await nodeLoad(target.port, SESSIONS, SESSIONS * 2, 4096, true)
    await target.idle?.()
    const latencies = await nodeLoad(target.port, SESSIONS, count, 4096, true)
    await target.idle?.()
    return latencies
  } finally {
    await target.stop()
    await sink.stop()
  }
}

const percentile = (values: number[], p: number) => [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor(values.length * p))]!

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!
const medianOf = (list: Sample[], pick: (s: Sample) => number | undefined) => {
  const values = list.map(pick).filter((v): v is number => v !== undefined)
  return values.length ? median(values) : undefined
}

async function main(): Promise<void> {
  const header = `relaychain bench: ${SESSIONS} sessions, median of ${RUNS} runs, load ${postfixTools ? 'smtp-source → … → smtp-sink' : 'node client → … → node sink'}`
  const machine = `node ${process.version}, ${cpus().length} CPUs (${cpus()[0]?.model ?? 'unknown'})`
  console.log(`${header}\n${machine}\nservers: ${SERVERS.join(', ')}\n`)

  const rows: string[] = []
  const readmeRows: string[] = []
  const stageRows: string[] = []
  for (const mode of MODES) {
    for (const size of SIZES) {
      // Runs interleave the servers, so that drift in the machine's load hits each alike.
      const samples = new Map<string, Sample[]>(SERVERS.map((s) => [s, []]))
      for (let run = 0; run < RUNS; run++) {
        for (const server of SERVERS) {
          const sample = await measure(server, size, mode)
          samples.get(server)!.push(sample)
          console.log(
            `  ${mode} ${size.label} ${server} run ${run + 1}/${RUNS}: ${sample.msgsPerSec.toFixed(0)} msg/s${sample.failed ? `, ${sample.failed} failed` : ''}`,
          )
        }
      }
      const results = new Map<string, Sample>()
      for (const [server, list] of samples) {
        const stageNames = Object.keys(list[0]?.stages ?? {})
        results.set(server, {
          msgsPerSec: median(list.map((s) => s.msgsPerSec)),
          maxRssMiB: medianOf(list, (s) => s.maxRssMiB),
          cpuMicrosPerMsg: medianOf(list, (s) => s.cpuMicrosPerMsg),
          stages: Object.fromEntries(stageNames.map((name) => [name, medianOf(list, (s) => s.stages?.[name]) ?? 0])),
          failed: list.reduce((n, s) => n + s.failed, 0),
        })
      }
      const base = results.get('baseline')
      const ratio = (r: Sample) => (base ? `${(r.msgsPerSec / base.msgsPerSec).toFixed(2)}×` : '—')
      for (const [server, r] of results) {
        const other = base && server !== 'baseline'
        const cpu =
          r.cpuMicrosPerMsg === undefined
            ? '—'
            : `${r.cpuMicrosPerMsg.toFixed(0)}${other && base.cpuMicrosPerMsg ? ` (${(r.cpuMicrosPerMsg / base.cpuMicrosPerMsg).toFixed(2)}×)` : ''}`
        const rss = r.maxRssMiB === undefined ? '—' : r.maxRssMiB.toFixed(0)
        rows.push(
          `| ${mode} | ${size.label} | ${server} | ${r.msgsPerSec.toFixed(0)} | ${other ? ratio(r) : '—'} | ${cpu} | ${rss} |${r.failed ? ` ${r.failed} failed |` : ' |'}`,
        )
        if (r.stages && Object.keys(r.stages).length) {
          const cells = Object.entries(r.stages).map(([name, us]) => `${name} ${us.toFixed(0)}`)
          stageRows.push(`| ${mode} | ${size.label} | ${server} | ${cells.join(', ')} |`)
        }
      }
      const cells = Object.keys(COLUMNS).map((server) => {
        const r = results.get(server)
        if (!r) return '—'
        return server === 'baseline' || !base ? r.msgsPerSec.toFixed(0) : `${r.msgsPerSec.toFixed(0)} (${ratio(r)})`
      })
      readmeRows.push(`| ${mode} | ${size.label} | ${cells.join(' | ')} |`)
    }
  }

  let memory = ''
  if (process.env.BENCH_MEMORY !== '0' && SERVERS.includes('relaychain') && SERVERS.includes('relaychain-outbound')) {
    const MiB100 = 100 * 1024 * 1024
    const empty = await memoryFor('relaychain', MiB100)
    const outbound = await memoryFor('relaychain-outbound', MiB100)
    memory =
      `One 100 MB message: peak RSS ${empty.peakMiB.toFixed(0)} MiB with the empty chain (+${empty.growthMiB.toFixed(0)} MiB for the message), ` +
      `${outbound.peakMiB.toFixed(0)} MiB with the outbound chain (+${outbound.growthMiB.toFixed(0)} MiB): ` +
      `${(outbound.peakMiB - empty.peakMiB).toFixed(0)} MiB more.`
    console.log(`\n${memory}`)
  }

  let latency = ''
  const timed = ['baseline', 'relaychain', 'relaychain-queue', 'postfix'].filter((s) => SERVERS.includes(s))
  if (process.env.BENCH_LATENCY !== '0' && timed.length) {
    // Interleaved runs; p50 and p99 over all of a server's messages.
    const all = new Map<string, number[]>(timed.map((s) => [s, []]))
    for (let run = 0; run < RUNS; run++) for (const server of timed) all.get(server)!.push(...(await latenciesFor(server, 1000)))
    const pass = all.get('relaychain')
    const rows = [...all].map(([server, ms]) => {
      const added =
        pass && server !== 'relaychain'
          ? ` | ${(percentile(ms, 0.5) - percentile(pass, 0.5)).toFixed(1)} / ${(percentile(ms, 0.99) - percentile(pass, 0.99)).toFixed(1)}`
          : ' | —'
      return `| ${server} | ${percentile(ms, 0.5).toFixed(1)} | ${percentile(ms, 0.99).toFixed(1)}${added} |`
    })
    latency = [
      `Time to the 250, 4 KB, ${SESSIONS} reusing sessions, ${RUNS} × 1000 messages (ms; the pass-through chain answers after the next hop's 250, a store-and-forward server after its fsyncs):`,
      '',
      '| server | p50 | p99 | vs the pass-through chain, p50 / p99 |',
      '|---|---:|---:|---:|',
      ...rows,
    ].join('\n')
    console.log(`\n${latency}`)
  }

  let restart = ''
  const restartCounts = (process.env.BENCH_RESTART_COUNTS ?? '10000,100000').split(',').filter(Boolean).map(Number)
  if (restartCounts.length) {
    const lines = []
    for (const count of restartCounts) {
      const r = await measureRestart(count, (line) => console.log(line))
      lines.push(`| ${count} | ${r.fillSeconds.toFixed(0)} | ${r.readyMs.toFixed(0)} | ${r.peakRssMiB.toFixed(0)} |`)
    }
    restart = [
      'Queue restart (a relay started on a queue directory holding that many due 2 KB messages, its next hop down; peak RSS over its first 5 s of work, under tsx):',
      '',
      '| queued | filled in s | listening after ms | peak RSS MiB |',
      '|---:|---:|---:|---:|',
      ...lines,
    ].join('\n')
    console.log(`\n${restart}`)
  }

  const table = [
    '| mode | size | server | msg/s | vs baseline | CPU µs/msg | peak RSS MiB | |',
    '|---|---|---|---:|---:|---:|---:|---|',
    ...rows,
  ].join('\n')
  const stages = [
    '| mode | size | server | µs per message in each stage (its own code, downstream excluded; wall time, so a stage that reads the body waits for it to arrive) |',
    '|---|---|---|---|',
    ...stageRows,
  ].join('\n')
  const readmeTable = [
    `| mode | size | ${Object.values(COLUMNS).join(' | ')} |`,
    `|---|---|${Object.keys(COLUMNS)
      .map(() => '---:')
      .join('|')}|`,
    ...readmeRows,
  ].join('\n')
  const date = new Date().toISOString().slice(0, 10)
  const out = fileURLToPath(new URL('./results.md', import.meta.url))
  writeFileSync(
    out,
    `# Latest bench (${date}, ${machine})\n\n${header}.\n\n${readmeTable}\n\n## Every server\n\n${table}\n\n## Stage timings\n\n${stages}\n${memory ? `\n## Memory\n\n${memory}\n` : ''}${latency ? `\n## Time to 250\n\n${latency}\n` : ''}${restart ? `\n## Queue restart\n\n${restart}\n` : ''}`,
  )
  console.log(`\n${readmeTable}\n\n${table}\n\n${stages}\n\nwritten to bench/results.md`)
  if (process.env.BENCH_README !== '0') updateReadme(readmeTable)
}

/** Replaces the table between `<!-- bench:start -->` and `<!-- bench:end -->` in README.md. */
function updateReadme(table: string): void {
  const path = fileURLToPath(new URL('../README.md', import.meta.url))
  const readme = readFileSync(path, 'utf8')
  const start = readme.indexOf('<!-- bench:start -->')
  const end = readme.indexOf('<!-- bench:end -->')
  if (start < 0 || end < start) return
  writeFileSync(path, `${readme.slice(0, start)}<!-- bench:start -->\n${table}\n${readme.slice(end)}`)
  console.log('README.md table updated')
}

await main()
