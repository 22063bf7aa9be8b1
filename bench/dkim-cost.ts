/**
 * CPU cost of the dkimSign stage alone (RSA-2048, relaxed/relaxed), measured in process with
 * process.cpuUsage: 4 KB messages go through a pipeline ending at a transport that reads the
 * whole message, once without and once with the signer, in interleaved rounds; the median
 * difference per message is the stage's cost. For scale it also prints the cost of the RSA
 * signature alone. Target: under 500 µs per message.
 *
 *   npx tsx bench/dkim-cost.ts
 *
 * Environment: DKIM_COST_MESSAGES (per round, default 1000), DKIM_COST_ROUNDS (default 5),
 * DKIM_COST_SIZE (bytes, default 4096).
 */
import { generateKeyPairSync, sign } from 'node:crypto'
import { Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { createPipeline, type Stage, type Transport } from '../src/index.js'
import { dkimSign } from '../src/stages/dkim-sign.js'
import { testMessage } from '../src/testing/index.js'

const MESSAGES = Number(process.env.DKIM_COST_MESSAGES ?? 1000)
const ROUNDS = Number(process.env.DKIM_COST_ROUNDS ?? 5)
const SIZE = Number(process.env.DKIM_COST_SIZE ?? 4096)

const head =
  'From: Ann Example <ann@example.com>\r\nTo: Bob <bob@example.org>\r\nSubject: Quarterly report\r\n' +
  'Date: Sat, 28 Nov 2026 10:00:00 +0000\r\nMessage-ID: <bench@example.com>\r\nMIME-Version: 1.0\r\n' +
  'Content-Type: text/plain; charset=utf-8\r\n\r\n'
const line = 'The quick brown fox jumps over the lazy dog, again and again and again.\r\n'
const eml = head + line.repeat(Math.ceil((SIZE - head.length) / line.length))

const discard: Transport = {
  name: 'discard',
  async send(msg) {
    await pipeline(msg.stream(), new Writable({ write: (_chunk, _encoding, callback) => callback() }))
    return { accepted: msg.envelope.rcptTo, rejected: [] }
  },
}

const privateKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey
const signer = dkimSign({ keys: { 'example.com': { selector: 'bench', privateKey } } })

/** CPU microseconds per message through a pipeline of `stages`. */
async function cpuPerMessage(stages: Stage[]): Promise<number> {
  const chain = createPipeline({ stages, transport: discard })
  const messages = await Promise.all(Array.from({ length: MESSAGES }, () => testMessage({ eml })))
  const start = process.cpuUsage()
  for (const msg of messages) await chain.deliver(msg)
  const { user, system } = process.cpuUsage(start)
  return (user + system) / MESSAGES
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!

await cpuPerMessage([signer]) // warm-up: loads mailauth, JIT
const differences: number[] = []
for (let round = 0; round < ROUNDS; round++) {
  const without = await cpuPerMessage([])
  const withSigner = await cpuPerMessage([signer])
  differences.push(withSigner - without)
}
const data = Buffer.alloc(700, 'x')
const start = process.cpuUsage()
for (let i = 0; i < MESSAGES; i++) sign('sha256', data, privateKey)
const { user, system } = process.cpuUsage(start)

console.log(`message size ${eml.length} bytes, ${ROUNDS} rounds of ${MESSAGES} messages, node ${process.version}`)
console.log(`dkimSign (RSA-2048) CPU per message: ${median(differences).toFixed(0)} µs (rounds: ${differences.map((d) => d.toFixed(0)).join(', ')})`)
console.log(`of which the RSA-2048 signature alone: ${((user + system) / MESSAGES).toFixed(0)} µs`)
