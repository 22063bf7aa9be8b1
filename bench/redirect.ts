/**
 * The click redirector under load: trackingHandler() on its own node:http server on loopback,
 * an event store behind it (every click is an appended event), autocannon as the load generator
 * (10 connections, 10 s). Baseline in the same run: a node:http server that answers a fixed 302.
 * Run: `npx tsx bench/redirect.ts [seconds]`.
 */
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer, type RequestListener } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import autocannon from 'autocannon'
import { trackingHandler } from '../src/reporting/http/handler.js'
import { createReporting } from '../src/reporting/reporting.js'
import { openEventStore } from '../src/reporting/store/file-store.js'
import { signToken } from '../src/reporting/tracking/token.js'

const seconds = Number(process.argv[2] ?? 10)
const keys = [{ id: 'k1', secret: 'a-tracking-secret-of-at-least-32-bytes!!' }]
const dir = await mkdtemp(join(tmpdir(), 'relaychain-redirect-bench-'))
const store = await openEventStore({ dir })
const reporting = createReporting({ store })

async function run(label: string, handler: RequestListener, path: string): Promise<void> {
  const server = createServer(handler)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}${path}`
  const result = await autocannon({
    url,
    connections: 10,
    duration: seconds,
    headers: { 'user-agent': 'Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0' },
  })
  console.log(
    `${label}: ${Math.round(result.requests.average)} req/s, p50 ${result.latency.p50} ms, p99 ${result.latency.p99} ms, non-2xx/3xx ${result.non2xx - result.requests.total + result['3xx'] >= 0 ? 0 : result.non2xx}, errors ${result.errors}`,
  )
  server.close()
}

await run('baseline (fixed 302)', (_req, res) => res.writeHead(302, { location: 'https://shop.example/sale', 'content-length': 0 }).end(), '/')
const token = signToken({ messageId: 'Q1', recipient: 'ann@example.org', link: 0, url: 'https://shop.example/sale?a=1&b=2' }, keys)
await run('trackingHandler click redirect', trackingHandler({ reporting, keys }) as RequestListener, `/c/${token}`)
console.log(`clicks recorded: ${store.stats({ by: 'day' })[0]?.clicks ?? 0}`)
await store.close()
await rm(dir, { recursive: true, force: true })
