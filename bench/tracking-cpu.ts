/**
 * `npx tsx bench/tracking-cpu.ts`: CPU per HTML message of link tracking, in process: the ~20 KB
 * e-mails of the shared corpus (../shared/corpus/reporting/html), each as a quoted-printable and
 * as a base64 MIME part, through rewriteMimePart (decode, rewriteHtml, re-encode) with every link
 * mapped to a short URL, the open pixel included; then rewriteHtml alone, and the quoted-printable
 * path with signed tokens as the URLs. Each message is timed on its own with performance.now()
 * after a warm-up (median and p99 over all messages); process.cpuUsage() over the same loop gives
 * the mean CPU time (user + system), which stays honest on a shared machine. Target: median
 * ≤ 0.3 ms for decode + rewrite + re-encode. Two reference lines put the figures in proportion:
 * htmlparser2's tokenizer alone with no-op callbacks (the floor of any htmlparser2-based rewrite),
 * and a plain byte-copy loop over the same HTML (how fast the machine runs JavaScript right now).
 *
 * Environment: TRACKING_BENCH_ITERATIONS (messages per case, 4000), TRACKING_BENCH_WARMUP (1500).
 */
import { existsSync, readFileSync } from 'node:fs'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { Tokenizer, type TokenizerCallbacks } from 'htmlparser2'
import { encodeQuotedPrintable, type LinkInfo, rewriteHtml, rewriteMimePart, signToken } from '../src/reporting/tracking/index.js'

const ITERATIONS = Number(process.env.TRACKING_BENCH_ITERATIONS ?? 4000)
const WARMUP = Number(process.env.TRACKING_BENCH_WARMUP ?? 1500)
const DIR = fileURLToPath(new URL('../../shared/corpus/reporting/html/', import.meta.url))
if (!existsSync(DIR)) throw new Error(`corpus missing: ${DIR}`)

// The corpus files between 19 and 23 KB: 01 Cerberus fluid, 20/24/25 sendwithus surveys, 36 Postmark welcome.
const FILES = [
  '01-cerberus-fluid.html',
  '20-sendwithus-skyline-survey.html',
  '24-sendwithus-cleave-survey.html',
  '25-sendwithus-go-survey.html',
  '36-postmark-welcome-rendered.html',
]
const html = FILES.map((f) => Buffer.from(readFileSync(`${DIR}${f}`, 'utf8').replace(/\r?\n/g, '\r\n')))
const qp = html.map((b) => Buffer.concat([encodeQuotedPrintable(b), Buffer.from('\r\n')]))
const b64 = html.map((b) => Buffer.from(`${b.toString('base64').replace(/.{76}/g, '$&\r\n')}\r\n`))
const text = html.map((b) => b.toString('utf8'))

const short = (link: LinkInfo) => `https://t.example.com/c/${link.index}`
const keys = [{ id: 'k1', secret: Buffer.alloc(32, 1) }]
const signed = (link: LinkInfo) =>
  `https://t.example.com/c/${signToken({ messageId: '<bench@relay.example>', recipient: 'r-1842', link: link.index, url: link.url }, keys)}`
const PIXEL = 'https://t.example.com/o/t1.k1.eyJ4IjoxfQ.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'

interface Case {
  readonly name: string
  readonly run: (i: number) => unknown
}

const CASES: Case[] = [
  {
    name: 'QP part: decode + rewrite + re-encode',
    run: (i) => rewriteMimePart(qp[i]!, { transferEncoding: 'quoted-printable', charset: 'utf-8' }, { rewrite: short, pixel: PIXEL }),
  },
  {
    name: 'base64 part: decode + rewrite + re-encode',
    run: (i) => rewriteMimePart(b64[i]!, { transferEncoding: 'base64', charset: 'utf-8' }, { rewrite: short, pixel: PIXEL }),
  },
  { name: 'rewriteHtml alone (string in, string out)', run: (i) => rewriteHtml(text[i]!, { rewrite: short, pixel: PIXEL }) },
  {
    name: 'QP part with HMAC-signed token URLs',
    run: (i) => rewriteMimePart(qp[i]!, { transferEncoding: 'quoted-printable', charset: 'utf-8' }, { rewrite: signed, pixel: PIXEL }),
  },
]

function measure(c: Case): { median: number; p99: number; cpu: number } {
  for (let i = 0; i < WARMUP; i++) c.run(i % FILES.length)
  const times = new Float64Array(ITERATIONS)
  const cpu = process.cpuUsage()
  for (let i = 0; i < ITERATIONS; i++) {
    const started = performance.now()
    c.run(i % FILES.length)
    times[i] = performance.now() - started
  }
  const used = process.cpuUsage(cpu)
  times.sort()
  return {
    median: times[Math.floor(ITERATIONS / 2)]!,
    p99: times[Math.floor(ITERATIONS * 0.99)]!,
    cpu: (used.user + used.system) / 1000 / ITERATIONS,
  }
}

/** A plain byte-copy loop over the same bytes: how fast this machine runs JavaScript right now. */
function copyLoop(i: number): Uint8Array {
  const input = html[i]!
  const out = new Uint8Array(input.length)
  for (let k = 0; k < input.length; k++) out[k] = input[k]!
  return out
}
const noop = () => {}
const silent: TokenizerCallbacks = {
  onattribdata: noop,
  onattribentity: noop,
  onattribend: noop,
  onattribname: noop,
  oncdata: noop,
  onclosetag: noop,
  oncomment: noop,
  ondeclaration: noop,
  onend: noop,
  onopentagend: noop,
  onopentagname: noop,
  onprocessinginstruction: noop,
  onselfclosingtag: noop,
  ontext: noop,
  ontextentity: noop,
}
/** htmlparser2's tokenizer alone, as configured here, with callbacks that do nothing: the floor. */
function tokenizeOnly(i: number): void {
  const tokenizer = new Tokenizer({ decodeEntities: false }, silent)
  tokenizer.write(text[i]!)
  tokenizer.end()
}
CASES.push({ name: 'reference: htmlparser2 tokenizer, no-op callbacks', run: tokenizeOnly })
CASES.push({ name: 'calibration: byte-copy loop over the same HTML', run: copyLoop })

const sizes = html.map((b) => b.length)
console.log(
  `tracking CPU per message: ${FILES.length} corpus e-mails of ${Math.min(...sizes)}–${Math.max(...sizes)} bytes (mean ${Math.round(sizes.reduce((a, b) => a + b) / sizes.length)}), ${ITERATIONS} messages per case after ${WARMUP} warm-up, Node ${process.version}`,
)
console.log('case'.padEnd(52), 'median ms'.padStart(10), 'p99 ms'.padStart(10), 'CPU ms/msg'.padStart(11))
for (const c of CASES) {
  const r = measure(c)
  console.log(c.name.padEnd(52), r.median.toFixed(3).padStart(10), r.p99.toFixed(3).padStart(10), r.cpu.toFixed(3).padStart(11))
}
