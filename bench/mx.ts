/**
 * `npx tsx bench/mx.ts`: direct MX delivery against the smarthost transport, in the same run.
 * Both relays (bench/mx-server.ts, each in its own process) take 4 KB messages from 20 client
 * sessions that reuse their connections, and deliver to the same discard sink: `smtpTransport`
 * straight to it, `mxTransport` to it as the one MX host of the recipient domain, found through
 * DNS (cached after the first message), with MTA-STS and DANE on (nothing to find). The figure is
 * messages/second, median of interleaved runs, and the server's CPU time per message, which a
 * shared machine disturbs less. Target: mxTransport ≥ 0.9× smtpTransport.
 *
 * Environment: MX_BENCH_RUNS (5), MX_BENCH_MESSAGES (3000), MX_BENCH_SESSIONS (20).
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { cpus } from 'node:os'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { freePort, nodeLoad, startNodeSink, waitForPort } from './load.js'

const RUNS = Number(process.env.MX_BENCH_RUNS ?? 5)
const MESSAGES = Number(process.env.MX_BENCH_MESSAGES ?? 3000)
const SESSIONS = Number(process.env.MX_BENCH_SESSIONS ?? 20)
const SIZE = 4 * 1024

async function start(impl: 'smtp' | 'mx', sinkPort: number) {
  const script = fileURLToPath(new URL('./mx-server.ts', import.meta.url))
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', script, impl, String(sinkPort), String(SESSIONS)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  })
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]()
  const read = async () => JSON.parse(String((await lines.next()).value)) as Record<string, number>
  const { port } = await read()
  const ask = async (command: 'mark' | 'stats') => {
    child.stdin!.write(`${command}\n`)
    return read()
  }
  const stop = async () => {
    child.kill('SIGTERM')
    await new Promise((resolve) => child.once('exit', resolve))
  }
  return { port: port!, ask, stop }
}

async function measure(impl: 'smtp' | 'mx', sinkPort: number) {
  const server = await start(impl, sinkPort)
  try {
    await nodeLoad(server.port, SESSIONS, 200, SIZE, true) // warm up: JIT, pools, caches
    await server.ask('mark')
    const started = performance.now()
    await nodeLoad(server.port, SESSIONS, MESSAGES, SIZE, true)
    const seconds = (performance.now() - started) / 1000
    const stats = await server.ask('stats')
    return {
      msgsPerSec: MESSAGES / seconds,
      cpuMicrosPerMsg: stats.cpuMicros! / MESSAGES,
      failed: stats.failed! + (MESSAGES - stats.ok! - stats.failed!),
    }
  } finally {
    await server.stop()
  }
}

const median = (values: number[]) => [...values].sort((x, y) => x - y)[Math.floor(values.length / 2)]!

const sinkPort = await freePort()
const sink = startNodeSink(sinkPort)
try {
  await waitForPort(sinkPort)
  console.log(`mx bench: ${SESSIONS} sessions with reuse, ${MESSAGES} × 4 KB per run, median of ${RUNS} interleaved runs`)
  console.log(`node ${process.version}, ${cpus().length} CPUs (${cpus()[0]?.model ?? 'unknown'})\n`)
  const samples = { smtp: [] as Awaited<ReturnType<typeof measure>>[], mx: [] as Awaited<ReturnType<typeof measure>>[] }
  for (let run = 0; run < RUNS; run++) {
    for (const impl of ['smtp', 'mx'] as const) {
      const sample = await measure(impl, sinkPort)
      samples[impl].push(sample)
      console.log(
        `  run ${run + 1}/${RUNS} ${impl}: ${sample.msgsPerSec.toFixed(0)} msg/s, ${sample.cpuMicrosPerMsg.toFixed(0)} µs CPU/msg${sample.failed ? `, ${sample.failed} failed` : ''}`,
      )
    }
  }
  const smtp = { rate: median(samples.smtp.map((s) => s.msgsPerSec)), cpu: median(samples.smtp.map((s) => s.cpuMicrosPerMsg)) }
  const mx = { rate: median(samples.mx.map((s) => s.msgsPerSec)), cpu: median(samples.mx.map((s) => s.cpuMicrosPerMsg)) }
  console.log('\n| transport | msg/s | vs smtpTransport | CPU µs/msg |\n|---|---:|---:|---:|')
  console.log(`| smtpTransport | ${smtp.rate.toFixed(0)} | — | ${smtp.cpu.toFixed(0)} |`)
  console.log(
    `| mxTransport | ${mx.rate.toFixed(0)} | ${(mx.rate / smtp.rate).toFixed(2)}× | ${mx.cpu.toFixed(0)} (${(mx.cpu / smtp.cpu).toFixed(2)}×) |`,
  )
} finally {
  sink.kill('SIGTERM')
}
