/**
 * Webhook throughput: N events recorded, delivered to a node:http receiver on loopback that
 * verifies every signature with the standardwebhooks package, one by one and in batches of 100.
 * Run: `npx tsx bench/webhooks.ts [events]` (default 5 000).
 */
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { Webhook } from 'standardwebhooks'
import { createReporting } from '../src/reporting/reporting.js'
import { openEventStore } from '../src/reporting/store/file-store.js'
import { newWebhookSecret } from '../src/reporting/webhooks/sign.js'
import { startWebhooks } from '../src/reporting/webhooks/webhooks.js'

const total = Number(process.argv[2] ?? 5000)
const secret = newWebhookSecret()
const verifier = new Webhook(secret)
let verified = 0
const server = createServer(async (req, res) => {
  const chunks: Buffer[] = []
  for await (const c of req) chunks.push(c as Buffer)
  const body = verifier.verify(Buffer.concat(chunks).toString(), req.headers as Record<string, string>) as { events?: unknown[] }
  verified += body.events ? body.events.length : 1
  res.writeHead(204).end()
})
server.listen(0, '127.0.0.1')
await once(server, 'listening')
const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`
for (const batch of [1, 100]) {
  const dir = await mkdtemp(join(tmpdir(), 'relaychain-webhook-bench-'))
  const store = await openEventStore({ dir: join(dir, 'events') })
  const reporting = createReporting({ store })
  for (let i = 0; i < total; i++)
    reporting.record({ type: 'delivered', queueId: `Q${i}`, recipient: `r${i}@example.org`, response: '250 2.0.0 ok', sender: 'news@shop.example' })
  verified = 0
  const started = performance.now()
  const webhooks = await startWebhooks({ store, dir: join(dir, 'webhooks'), endpoints: [{ name: 'bench', url, secret, batch }] })
  await webhooks.idle(600_000)
  const ms = performance.now() - started
  console.log(
    `batch ${batch}: ${verified} events in ${ms.toFixed(0)} ms = ${Math.round(verified / (ms / 1000))} events/s (state fsync'd after every request)`,
  )
  await webhooks.close()
  await store.close()
  await rm(dir, { recursive: true, force: true })
}
server.close()
