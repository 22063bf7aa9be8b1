/**
 * Event store bench: appends N message lifecycles (accepted, delivered or bounced, opens, clicks)
 * spread over 30 days, 20 tags, 50 recipient domains, then times the queries a sender asks and
 * a reopen (index rebuild). Run: `npx tsx bench/event-store.ts [messages]` (default 100 000).
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import type { ReportEvent } from '../src/reporting/events/types.js'
import { openEventStore } from '../src/reporting/store/file-store.js'

const messages = Number(process.argv[2] ?? 100_000)
const dir = await mkdtemp(join(tmpdir(), 'relaychain-store-bench-'))
const T0 = Date.UTC(2026, 10, 1)
const store = await openEventStore({ dir, ...(process.env.SYNC_MS ? { syncInterval: Number(process.env.SYNC_MS) } : {}) })
let count = 0
const started = performance.now()
for (let n = 0; n < messages; n++) {
  const time = T0 + Math.floor((n / messages) * 30 * 86_400_000)
  const base = { queueId: `Q${n}`, messageId: `<m${n}@shop.example>`, sender: `news@brand${n % 5}.example`, tags: [`campaign-${n % 20}`] }
  const recipient = `user${n}@domain${n % 50}.test`
  const events: ReportEvent[] = [{ ...base, id: `a${n}`, time, type: 'accepted', recipients: [recipient], size: 20_000 }]
  if (n % 50 === 0)
    events.push({
      ...base,
      id: `b${n}`,
      time: time + 1,
      type: 'bounced',
      recipient,
      bounceType: 'hard',
      category: 'user-unknown',
      status: '5.1.1',
      diagnostic: '550 5.1.1 no such user',
      source: 'relay',
    })
  else events.push({ ...base, id: `d${n}`, time: time + 1, type: 'delivered', recipient, response: '250 2.0.0 ok', remoteMta: 'mx.test' })
  if (n % 4 === 0) events.push({ ...base, id: `o${n}`, time: time + 2, type: 'opened', recipient, machine: n % 8 === 0 })
  if (n % 10 === 0)
    events.push({ ...base, id: `c${n}`, time: time + 3, type: 'clicked', recipient, machine: false, url: 'https://shop.example/sale', link: 1 })
  for (const e of events) store.append(e)
  count += events.length
}
const appendMs = performance.now() - started
// Calibration on this (shared, noisy) machine: the same events through JSON.stringify + JSON.parse only.
{
  const t = performance.now()
  for (let n = 0; n < messages; n++) {
    const e = {
      queueId: `Q${n}`,
      messageId: `<m${n}@shop.example>`,
      sender: 'news@brand1.example',
      tags: ['campaign-1'],
      id: `d${n}`,
      time: T0 + n,
      type: 'delivered',
      recipient: `user${n}@domain1.test`,
      response: '250 2.0.0 ok',
    }
    for (let k = 0; k < count / messages; k++) JSON.parse(JSON.stringify(e))
  }
  console.log(`calibration: JSON round trip of as many events: ${(performance.now() - t).toFixed(0)} ms`)
}
await store.flush()
function time<T>(label: string, f: () => T, runs = 20): T {
  let result: T | undefined
  const t = performance.now()
  for (let i = 0; i < runs; i++) result = f()
  console.log(`${label}: ${((performance.now() - t) / runs).toFixed(2)} ms`)
  return result!
}
console.log(
  `${count} events of ${messages} messages appended in ${appendMs.toFixed(0)} ms (${Math.round(count / (appendMs / 1000))} events/s, a write() each)`,
)
time('stats by day (30 rows)', () => store.stats({ by: 'day' }))
time('stats by tag (20 rows)', () => store.stats({ by: 'tag' }))
time('stats by tag, one week', () => store.stats({ by: 'tag', since: '2026-11-08', until: '2026-11-14' }))
time('stats by recipient domain (50 rows)', () => store.stats({ by: 'recipientDomain' }))
time('stats by sender domain (5 rows)', () => store.stats({ by: 'senderDomain' }))
const t = performance.now()
for (let i = 0; i < 1000; i++) await store.eventsOf(`Q${(i * 7919) % messages}`)
console.log(`eventsOf (one message, by queue id): ${((performance.now() - t) / 1000).toFixed(3)} ms`)
await store.close()
const r = performance.now()
const again = await openEventStore({ dir })
console.log(
  `reopen (index rebuild of ${count} events): ${(performance.now() - r).toFixed(0)} ms; RSS ${Math.round(process.memoryUsage().rss / 1e6)} MB`,
)
await again.close()
await rm(dir, { recursive: true, force: true })
