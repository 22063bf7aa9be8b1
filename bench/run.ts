/**
 * `npm run bench`: messages/second and peak RSS of relay chains against a bare pass-through
 * baseline measured in the same run, at 4 KB, 256 KB and 5 MB, in two modes:
 *
 * - reuse: each client session sends message after message over one connection;
 * - per-connection: one connection per message, as many applications send (here smtp-server's
 *   fixed 100 ms pre-greeting delay caps the baseline; relaychain's submission listener greets
 *   at once).
 *
 * Load comes from Postfix's smtp-source and goes to Postfix's smtp-sink when they are installed
 * (`apt-get install postfix`), from/to small Node equivalents otherwise. Each server runs in its
 * own process and runs the built package (the bench script builds first); every figure is the
 * median of BENCH_RUNS runs (default 3).
 *
 * Servers (bench/servers.mjs): baseline; relaychain (a grant stage only); relaychain-full (the
 * outbound gateway without scanners: relay policy, address rewrite, header edits, disclaimer and
 * an archive copy over SMTP); relaychain-dkim (a grant stage and DKIM signing, RSA-2048). Single
 * stages' CPU per message is measured in-process by bench/stage-cpu.ts and bench/dkim-cost.ts.
 *
 * Environment: BENCH_SESSIONS (20), BENCH_RUNS (3), BENCH_SIZES (e.g. "4K,256K"), BENCH_SERVERS
 * (e.g. "baseline,relaychain"), BENCH_MODES ("reuse,per-connection").
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { freePort, nodeLoad, startNodeSink, waitForPort } from './load.js'

const SESSIONS = Number(process.env.BENCH_SESSIONS ?? 20)
const RUNS = Number(process.env.BENCH_RUNS ?? 3)
const SIZES = [
  { label: '4K', bytes: 4 * 1024, reuse: 3000, perConnection: 1000 },
  { label: '256K', bytes: 256 * 1024, reuse: 600, perConnection: 300 },
  { label: '5M', bytes: 5 * 1024 * 1024, reuse: 60, perConnection: 40 },
].filter((s) => !process.env.BENCH_SIZES || process.env.BENCH_SIZES.split(',').includes(s.label))
const SERVERS = (process.env.BENCH_SERVERS ?? 'baseline,relaychain,relaychain-full,relaychain-dkim').split(',')
const MODES = (process.env.BENCH_MODES ?? 'reuse,per-connection').split(',') as Array<'reuse' | 'per-connection'>

const hasTool = (tool: string) => spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0
const postfixTools = hasTool('smtp-source') && hasTool('smtp-sink')

interface Sample {
  msgsPerSec: number
  maxRssMiB: number
  /** CPU time of the server process per message: far steadier than throughput on a shared box. */
  cpuMicrosPerMsg: number
  failed: number
}

async function startServer(
  server: string,
  upstreamPort: number,
): Promise<{ child: ChildProcess; port: number; ask: (command: 'mark' | 'stats') => Promise<Record<string, number>> }> {
  const script = fileURLToPath(new URL('./servers.mjs', import.meta.url))
  const child = spawn(process.execPath, [script, server, String(upstreamPort), String(SESSIONS)], { stdio: ['pipe', 'pipe', 'inherit'] })
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]()
  const read = async () => JSON.parse(String((await lines.next()).value)) as Record<string, number>
  const { port } = await read()
  return {
    child,
    port: port!,
    ask: async (command: 'mark' | 'stats') => {
      child.stdin!.write(`${command}\n`)
      return read()
    },
  }
}

function smtpSource(port: number, count: number, bytes: number, reuse: boolean): Promise<void> {
  const args = ['-s', String(SESSIONS), '-m', String(count), '-l', String(bytes), '-f', 'bench@example.com', '-t', 'sink@example.org']
  if (reuse) args.unshift('-d')
  return new Promise((resolve, reject) => {
    const child = spawn('smtp-source', [...args, `127.0.0.1:${port}`], { stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`smtp-source exited ${code}: ${stderr.trim()}`))))
  })
}

async function measure(server: string, upstreamPort: number, size: (typeof SIZES)[number], mode: 'reuse' | 'per-connection'): Promise<Sample> {
  const target = await startServer(server, upstreamPort)
  try {
    const count = mode === 'reuse' ? size.reuse : size.perConnection
    await target.ask('mark')
    const started = performance.now()
    if (postfixTools) await smtpSource(target.port, count, size.bytes, mode === 'reuse')
    else await nodeLoad(target.port, SESSIONS, count, size.bytes, mode === 'reuse')
    const seconds = (performance.now() - started) / 1000
    const stats = await target.ask('stats')
    return {
      msgsPerSec: count / seconds,
      maxRssMiB: stats.maxRssKiB! / 1024,
      cpuMicrosPerMsg: stats.cpuMicros! / count,
      failed: stats.failed! + Math.max(0, count - stats.ok! - stats.failed!),
    }
  } finally {
    target.child.kill('SIGTERM')
    await new Promise((resolve) => target.child.once('exit', resolve))
  }
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!

async function main(): Promise<void> {
  const upstreamPort = await freePort()
  const sink = postfixTools
    ? spawn('smtp-sink', [...(process.getuid?.() === 0 ? ['-u', 'nobody'] : []), `127.0.0.1:${upstreamPort}`, '1024'], { stdio: 'ignore' })
    : startNodeSink(upstreamPort)
  console.log(
    `relaychain bench: ${SESSIONS} sessions, median of ${RUNS} runs, load ${postfixTools ? 'smtp-source → … → smtp-sink' : 'node client → … → node sink'}`,
  )
  console.log(`node ${process.version}, ${cpus().length} CPUs (${cpus()[0]?.model ?? 'unknown'})\n`)

  const rows: string[] = []
  try {
    await waitForPort(upstreamPort)
    for (const mode of MODES) {
      for (const size of SIZES) {
        // Runs interleave the servers, so that drift in the machine's load hits each alike.
        const samples = new Map<string, Sample[]>(SERVERS.map((s) => [s, []]))
        for (let run = 0; run < RUNS; run++) {
          for (const server of SERVERS) {
            const sample = await measure(server, upstreamPort, size, mode)
            samples.get(server)!.push(sample)
            console.log(
              `  ${mode} ${size.label} ${server} run ${run + 1}/${RUNS}: ${sample.msgsPerSec.toFixed(0)} msg/s${sample.failed ? `, ${sample.failed} failed` : ''}`,
            )
          }
        }
        const results = new Map<string, Sample>()
        for (const [server, list] of samples) {
          results.set(server, {
            msgsPerSec: median(list.map((s) => s.msgsPerSec)),
            maxRssMiB: median(list.map((s) => s.maxRssMiB)),
            cpuMicrosPerMsg: median(list.map((s) => s.cpuMicrosPerMsg)),
            failed: list.reduce((n, s) => n + s.failed, 0),
          })
        }
        const base = results.get('baseline')
        for (const [server, r] of results) {
          const ratio = base && server !== 'baseline' ? `${(r.msgsPerSec / base.msgsPerSec).toFixed(2)}×` : '—'
          const cpu = `${r.cpuMicrosPerMsg.toFixed(0)}${base && server !== 'baseline' ? ` (${(r.cpuMicrosPerMsg / base.cpuMicrosPerMsg).toFixed(2)}×)` : ''}`
          const row = `| ${mode} | ${size.label} | ${server} | ${r.msgsPerSec.toFixed(0)} | ${ratio} | ${cpu} | ${r.maxRssMiB.toFixed(0)} |${r.failed ? ` ${r.failed} failed |` : ' |'}`
          rows.push(row)
        }
      }
    }
  } finally {
    sink.kill('SIGTERM')
  }
  const table = [
    '| mode | size | server | msg/s | vs baseline | CPU µs/msg | peak RSS MiB | |',
    '|---|---|---|---:|---:|---:|---:|---|',
    ...rows,
  ].join('\n')
  const out = fileURLToPath(new URL('./results.md', import.meta.url))
  writeFileSync(out, `# Latest bench (${new Date().toISOString().slice(0, 10)}, node ${process.version}, ${cpus().length} CPUs)\n\n${table}\n`)
  console.log(`\n${table}\n\nwritten to bench/results.md`)
}

await main()
