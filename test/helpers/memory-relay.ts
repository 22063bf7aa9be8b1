/**
 * A relay in its own process for the memory tests, in front of an SMTP upstream. Chain `spool`: a
 * body-transforming stage and a spooling stage; chain `smime`: S/MIME signing (alice) then
 * encryption (for bob); chain `dkim`: DKIM signing for example.com (selector `big`) with the PEM
 * key in DKIM_TEST_KEY; chain `content`: spam scan (spamd on SPAMD_PORT), virus scan (clamd on
 * CLAMD_PORT), disclaimer and an archive copy into ARCHIVE_DIR. Prints {"port"} when listening; on stdin, `mark` records the peak RSS so
 * far and `report` prints {"baseline","peak"} in KiB.
 */
import { createInterface } from 'node:readline'
import { Transform } from 'node:stream'
import { archiveTap, clamd, createRelay, disclaimer, fileTransport, type Stage, smtpTransport, spamd, spamScan, virusScan } from '../../src/index.js'
import { dkimSign } from '../../src/stages/dkim-sign.js'
import { smimeEncrypt } from '../../src/stages/smime-encrypt.js'
import { smimeSign } from '../../src/stages/smime-sign.js'
import { allowAll } from './relay.js'
import { credentials, fixture } from './smime.js'

const upstreamPort = Number(process.argv[2])

const transformBody: Stage = {
  name: 'transform-body',
  modifies: 'body',
  async data(msg, next) {
    // Swaps two letters: touches every chunk without changing sizes or line endings.
    msg.body.transform(
      new Transform({
        transform(chunk: Buffer, _e, cb) {
          for (let i = 0; i < chunk.length; i++) if (chunk[i] === 0x61) chunk[i] = 0x62
          cb(null, chunk)
        },
      }),
    )
    return next()
  },
}

const spoolBody: Stage = {
  name: 'spool-body',
  async data(msg, next) {
    await msg.body.spool()
    return next()
  },
}

const chains: Record<string, () => Stage[]> = {
  spool: () => [transformBody, spoolBody],
  smime: () => [
    smimeSign({ certificates: { 'alice@example.com': credentials('alice') } }),
    smimeEncrypt({ certificates: { 'bob@example.org': fixture('bob.pem') } }),
  ],
  dkim: () => [dkimSign({ keys: { 'example.com': { selector: 'big', privateKey: process.env.DKIM_TEST_KEY ?? '' } } })],
  content: () => [
    spamScan({ scanner: spamd({ host: '127.0.0.1', port: Number(process.env.SPAMD_PORT) }) }),
    virusScan({ scanner: clamd({ host: '127.0.0.1', port: Number(process.env.CLAMD_PORT), maxSize: 100 * 1024 * 1024 }) }),
    disclaimer({ text: 'This message is confidential.' }),
    archiveTap({ to: fileTransport({ dir: process.env.ARCHIVE_DIR ?? '' }) }),
  ],
}

const relay = createRelay({
  stages: [allowAll, ...chains[process.argv[3] ?? 'spool']!()],
  transport: smtpTransport({ host: '127.0.0.1', port: upstreamPort }),
  listeners: [{ port: 0, mode: 'submission' }],
  limits: { messageSize: 256 * 1024 * 1024 },
})
const [bound] = await relay.listen()
const collect = (globalThis as { gc?: () => void }).gc
if (!collect) throw new Error('memory-relay needs node --expose-gc')
const live = () => {
  collect()
  const { heapUsed, external } = process.memoryUsage()
  return Math.round((heapUsed + external) / 1024)
}
let baseline = 0
let liveBaseline = 0
let livePeak = 0
let sampler: NodeJS.Timeout | undefined
console.log(JSON.stringify({ port: bound!.port }))
for await (const line of createInterface({ input: process.stdin })) {
  const peak = process.resourceUsage().maxRSS
  if (line === 'mark') {
    baseline = peak
    liveBaseline = livePeak = live()
    // A forced full collection costs more on newer V8 (Node 24: ~3x Node 20, and more with a big
    // heap); sampled every 100 ms it starved the relay there (10 MiB took 70 s instead of 1.3 s).
    // So each sample waits at least 9 times as long as the last collection took: collections take
    // at most a tenth of the time on any runtime, and sampling is as dense as that allows.
    const sample = () => {
      const start = performance.now()
      livePeak = Math.max(livePeak, live())
      sampler = setTimeout(sample, Math.max(100, 9 * (performance.now() - start)))
    }
    sampler = setTimeout(sample, 100)
    console.log(JSON.stringify({ marked: baseline }))
  }
  if (line === 'report') console.log(JSON.stringify({ baseline, peak, liveBaseline, livePeak: Math.max(livePeak, live()) }))
  if (line === 'exit') break
}
clearTimeout(sampler)
await relay.close()
