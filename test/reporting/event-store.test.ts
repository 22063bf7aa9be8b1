import { mkdtemp, readdir, rm, stat, truncate } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import type { ReportEvent } from '../../src/reporting/events/types.js'
import { openEventStore } from '../../src/reporting/store/file-store.js'

const DAY = 86_400_000
const T0 = Date.UTC(2026, 11, 1, 9)
let dir: string | undefined
afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true })
  dir = undefined
})

function lifecycle(n: number, time: number, tag: string): ReportEvent[] {
  const q = `Q${n}`
  const base = { queueId: q, messageId: `<m${n}@shop.example>`, sender: 'news@shop.example', tags: [tag] }
  const rcpt = `user${n}@${n % 2 ? 'gmail.test' : 'yahoo.test'}`
  const events: ReportEvent[] = [
    { ...base, id: `a${n}`, time, type: 'accepted', recipients: [rcpt], size: 100 },
    { ...base, id: `d${n}`, time: time + 1000, type: 'delivered', recipient: rcpt, response: '250 ok' },
  ]
  if (n % 10 === 0)
    events[1] = {
      ...base,
      id: `b${n}`,
      time: time + 1000,
      type: 'bounced',
      recipient: rcpt,
      bounceType: 'hard',
      category: 'user-unknown',
      status: '5.1.1',
      diagnostic: '550 5.1.1',
      source: 'relay',
    }
  if (n % 3 === 0) {
    events.push({ ...base, id: `o${n}`, time: time + 5000, type: 'opened', recipient: rcpt, machine: false })
    events.push({ ...base, id: `o2${n}`, time: time + 6000, type: 'opened', recipient: rcpt, machine: false })
  }
  if (n % 7 === 0) events.push({ ...base, id: `m${n}`, time: time + 500, type: 'opened', recipient: rcpt, machine: true })
  return events
}

describe('the embedded event store', () => {
  it('answers counts and rates per day, tag, sender and recipient domain, and the events of one message, after a reopen too', async () => {
    dir = await mkdtemp(join(tmpdir(), 'relaychain-store-'))
    const store = await openEventStore({ dir, segmentSize: 4096 })
    for (let n = 1; n <= 60; n++) for (const e of lifecycle(n, T0 + (n > 30 ? DAY : 0), n % 2 ? 'spring' : 'summer')) store.append(e)
    const check = async (s: typeof store) => {
      const days = s.stats({ by: 'day' })
      expect(days.map((d) => d.key)).toEqual(['2026-12-01', '2026-12-02'])
      expect(days[0]).toMatchObject({
        accepted: 30,
        sent: 30,
        delivered: 27,
        hardBounced: 3,
        bounceRate: 0.1,
        opens: 20,
        uniqueOpens: 10,
        machineOpens: 4,
      })
      const tags = Object.fromEntries(s.stats({ by: 'tag' }).map((r) => [r.key, r]))
      expect(tags.spring!.accepted + tags.summer!.accepted).toBe(60)
      expect(s.stats({ by: 'senderDomain' })).toMatchObject([{ key: 'shop.example', accepted: 60, hardBounced: 6 }])
      expect(s.stats({ by: 'recipientDomain', since: '2026-12-02' }).map((r) => [r.key, r.sent])).toEqual([
        ['gmail.test', 15],
        ['yahoo.test', 15],
      ])
      expect((await s.eventsOf('Q21')).map((e) => e.type)).toEqual(['accepted', 'delivered', 'opened', 'opened', 'opened'])
      expect((await s.eventsOf('<m21@shop.example>')).length).toBe(5)
      expect(s.contextOf('Q21')).toEqual({ messageId: '<m21@shop.example>', sender: 'news@shop.example', tags: ['spring'] })
    }
    await check(store)
    expect((await readdir(dir)).length).toBeGreaterThan(3)
    await store.close()
    const again = await openEventStore({ dir, segmentSize: 4096 })
    await check(again)
    const all = await again.read(0, 10_000)
    expect(all.events.length).toBe(60 * 2 + 20 * 2 + 8)
    expect(all.next).toBe(again.end)
    await again.close()
  })

  it('cuts a torn last line (a write cut short by a crash) and keeps every complete event', async () => {
    dir = await mkdtemp(join(tmpdir(), 'relaychain-store-'))
    const store = await openEventStore({ dir })
    for (const e of lifecycle(1, T0, 'x')) store.append(e)
    await store.close()
    const [file] = await readdir(dir)
    const size = (await stat(join(dir, file!))).size
    await truncate(join(dir, file!), size - 5)
    const again = await openEventStore({ dir })
    expect((await again.eventsOf('Q1')).map((e) => e.type)).toEqual(['accepted'])
    again.append(lifecycle(1, T0, 'x')[1]!)
    expect((await again.eventsOf('Q1')).map((e) => e.type)).toEqual(['accepted', 'delivered'])
    await again.close()
  })
})
