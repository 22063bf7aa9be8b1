/**
 * `npx tsx bench/stage-cpu.ts`: CPU time per message of single stages, in process (no sockets):
 * each message is built with `testMessage()` and read whole by a memory transport, once through
 * a stage that does nothing (the baseline) and once through the stage under test; the figure is
 * the difference in process CPU time (user + system), which stays steady on a shared machine
 * where throughput does not. Interleaved rounds, median reported.
 *
 * Environment: STAGE_CPU_ROUNDS (5), STAGE_CPU_MESSAGES (messages per round and size, 300).
 */
import { readFileSync } from 'node:fs'
import { addressRewrite, disclaimer, type Stage } from '../src/index.js'
import { memoryTransport, runStage, testMessage } from '../src/testing/index.js'

const ROUNDS = Number(process.env.STAGE_CPU_ROUNDS ?? 5)
const MESSAGES = Number(process.env.STAGE_CPU_MESSAGES ?? 300)

const HEAD = 'From: <bench@example.com>\r\nTo: <sink@example.org>\r\nSubject: bench\r\nMessage-ID: <bench@example.com>\r\n'
/** A body of 78-character lines, like smtp-source's. */
const lines = (bytes: number) => `${'x'.repeat(76)}\r\n`.repeat(Math.ceil(bytes / 78))
const gmail = readFileSync(new URL('../test/fixtures/mime/gmail-mixed.eml', import.meta.url))

const MESSAGE_SHAPES: Record<string, Buffer> = {
  'plain 4 KB (no MIME headers)': Buffer.from(`${HEAD}\r\n${lines(4096)}`),
  'plain 256 KB (no MIME headers)': Buffer.from(`${HEAD}\r\n${lines(256 * 1024)}`),
  'alternative + 3 KB PDF (5 KB)': gmail,
  'alternative + 256 KB attachment': Buffer.from(
    gmail.toString('latin1').replace(/(Content-ID: <f_lx1>\r\nX-Attachment-Id: f_lx1\r\n\r\n)/, `$1${lines(256 * 1024).replace(/x/g, 'A')}`),
    'latin1',
  ),
}

const noop: Stage = {
  name: 'noop',
  async data(_msg, next) {
    return next()
  },
}
const STAGES: Record<string, Stage> = {
  disclaimer: disclaimer({ text: 'This message is confidential. If you received it in error, please delete it.' }),
  'address-rewrite (From/To maps)': addressRewrite({ sender: { '@example.com': '@example.net' }, recipients: { '@example.org': '@example.net' } }),
}

async function cpuPerMessage(stage: Stage, eml: Buffer): Promise<number> {
  const started = process.cpuUsage()
  for (let i = 0; i < MESSAGES; i++) {
    const transport = memoryTransport()
    await runStage(stage, await testMessage({ from: 'bench@example.com', to: ['sink@example.org'], eml }), transport)
  }
  const used = process.cpuUsage(started)
  return (used.user + used.system) / MESSAGES
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!

console.log('| stage | message | baseline µs/msg | with stage µs/msg | stage µs/msg |\n|---|---|---:|---:|---:|')
for (const [stageName, stage] of Object.entries(STAGES)) {
  for (const [shape, eml] of Object.entries(MESSAGE_SHAPES)) {
    await cpuPerMessage(stage, eml) // warm up (lazy imports, JIT)
    const base: number[] = []
    const withStage: number[] = []
    for (let r = 0; r < ROUNDS; r++) {
      base.push(await cpuPerMessage(noop, eml))
      withStage.push(await cpuPerMessage(stage, eml))
    }
    const [b, s] = [median(base), median(withStage)]
    console.log(`| ${stageName} | ${shape} | ${b.toFixed(0)} | ${s.toFixed(0)} | ${(s - b).toFixed(0)} |`)
  }
}
