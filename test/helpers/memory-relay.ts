/**
 * A relay in its own process for the memory tests, in front of an SMTP upstream, with one of two
 * chains (argv[3]): `transform-and-spool` (a body-transforming stage and a spooling stage) or
 * `dkim-sign` (signing with the PEM key in DKIM_TEST_KEY for example.com, selector `big`).
 * Prints {"port"} when listening; on stdin, `mark` records the peak RSS so far and `report`
 * prints {"baseline","peak"} in KiB.
 */
import { createInterface } from 'node:readline'
import { Transform } from 'node:stream'
import { createRelay, smtpTransport, type Stage } from '../../src/index.js'
import { dkimSign } from '../../src/stages/dkim-sign.js'
import { allowAll } from './relay.js'

const upstreamPort = Number(process.argv[2])
const chain = process.argv[3] ?? 'transform-and-spool'

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

const relay = createRelay({
  stages:
    chain === 'dkim-sign'
      ? [allowAll, dkimSign({ keys: { 'example.com': { selector: 'big', privateKey: process.env.DKIM_TEST_KEY ?? '' } } })]
      : [allowAll, transformBody, spoolBody],
  transport: smtpTransport({ host: '127.0.0.1', port: upstreamPort }),
  listeners: [{ port: 0, mode: 'submission' }],
  limits: { messageSize: 256 * 1024 * 1024 },
})
const [bound] = await relay.listen()
let baseline = 0
console.log(JSON.stringify({ port: bound!.port }))
for await (const line of createInterface({ input: process.stdin })) {
  const peak = process.resourceUsage().maxRSS
  if (line === 'mark') baseline = peak
  if (line === 'report') console.log(JSON.stringify({ baseline, peak }))
  if (line === 'exit') break
  if (line === 'mark') console.log(JSON.stringify({ marked: baseline }))
}
await relay.close()
