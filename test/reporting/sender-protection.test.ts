import { afterEach, describe, expect, it } from 'vitest'
import type { Reporting } from '../../src/reporting/reporting.js'
import { relayTag } from '../../src/stages/relay-tag.js'
import { senderProtection } from '../../src/stages/sender-protection.js'
import { allowAll, type ReportingHarness, startReporting } from './harness.js'

let h: ReportingHarness | undefined
afterEach(async () => {
  await h?.close()
  h = undefined
})

const DAY = 86_400_000

/** History for a sender (and tag): `sent` recipients delivered, of which `bounced` hard-bounced and `complained` complained. */
function history(reporting: Reporting, queueId: string, sender: string, tags: string[], sent: number, bounced: number, complained = 0): void {
  const recipients = Array.from({ length: sent }, (_, i) => `r${i}@customers.example`)
  reporting.record({ type: 'accepted', queueId, sender, recipients, size: 1000, tags })
  for (const r of recipients) reporting.record({ type: 'delivered', queueId, recipient: r, response: '250 ok' })
  for (const r of recipients.slice(0, bounced))
    reporting.record({
      type: 'bounced',
      queueId,
      recipient: r,
      bounceType: 'hard',
      category: 'user-unknown',
      status: '5.1.1',
      diagnostic: '550 5.1.1 unknown',
      source: 'dsn',
    })
  for (const r of recipients.slice(bounced, bounced + complained))
    reporting.record({ type: 'complained', queueId, recipient: r, feedbackType: 'abuse', format: 'arf' })
}

async function replyOf(sending: Promise<unknown>): Promise<string> {
  return sending.then(
    (i) => (i as { response: string }).response,
    (e: { response?: string; message: string }) => e.response ?? e.message,
  )
}

describe('senderProtection()', () => {
  it('tempfails a sender domain over the bounce-rate threshold at MAIL with 451 4.7.1 and a rejected event; other domains still send', async () => {
    let guard: ReturnType<typeof senderProtection> | undefined
    h = await startReporting({
      stages: (reporting) => [allowAll, (guard = senderProtection({ reporting, clock: () => h!.clock() })), relayTag({ reporting })],
    })
    history(h.reporting, 'Q1', 'news@shop.example', [], 200, 12)
    history(h.reporting, 'Q2', 'billing@other.example', [], 200, 2)
    const reply = await replyOf(h.send({ from: 'news@shop.example', to: ['a@customers.example'] }))
    expect(reply).toBe('451 4.7.1 Sending paused for shop.example: bounce rate 6.0% over the last 7 days is at or above 5.0%; try again later')
    expect(h.of('rejected').at(-1)).toMatchObject({ phase: 'mail', stage: 'sender-protection', sender: 'news@shop.example', reply })
    expect(await replyOf(h.send({ from: 'billing@other.example', to: ['a@customers.example'] }))).toMatch(/^250 /)
    expect(guard!.paused()).toEqual([{ by: 'senderDomain', key: 'shop.example', reason: 'bounce-rate', rate: 0.06, threshold: 0.05 }])
  })

  it('tempfails mail of a tag over the complaint-rate threshold at DATA, the event carrying the tag; other tags of the same sender go', async () => {
    h = await startReporting({ stages: (reporting) => [allowAll, senderProtection({ reporting, clock: () => h!.clock() }), relayTag({ reporting })] })
    history(h.reporting, 'Q1', 'news@shop.example', ['promo'], 1000, 0, 2)
    // The sender domain as a whole stays under the threshold: 2 of 4 000.
    history(h.reporting, 'Q2', 'news@shop.example', ['receipts'], 3000, 0, 0)
    const reply = await replyOf(h.send({ to: ['a@customers.example'], headers: { 'X-Relay-Tag': 'promo' } }))
    expect(reply).toMatch(/^451 4\.7\.1 Sending paused for tag promo: complaint rate 0\.20% over the last 7 days is at or above 0\.10%/)
    expect(h.of('rejected').at(-1)).toMatchObject({ phase: 'data', stage: 'sender-protection', tags: ['promo'] })
    expect(await replyOf(h.send({ to: ['a@customers.example'], headers: { 'X-Relay-Tag': 'receipts' } }))).toMatch(/^250 /)
    // An unauthenticated client cannot name a tag, so none of its mail is judged by one.
    expect(await replyOf(h.send({ to: ['a@customers.example'], headers: { 'X-Relay-Tag': 'promo' }, auth: false }))).toMatch(/^250 /)
    await h.drain()
    expect(h.sink.messages.length).toBe(2)
  })

  it('does not judge below the minimum volume, and resumes once the bad days leave the window', async () => {
    h = await startReporting({
      stages: (reporting) => [allowAll, senderProtection({ reporting, days: 2, clock: () => h!.clock() }), relayTag({ reporting })],
    })
    history(h.reporting, 'Q1', 'news@small.example', [], 50, 25)
    expect(await replyOf(h.send({ from: 'news@small.example', to: ['a@customers.example'] }))).toMatch(/^250 /)
    history(h.reporting, 'Q2', 'news@shop.example', [], 100, 50)
    h.clock.advance(11_000)
    expect(await replyOf(h.send({ from: 'news@shop.example', to: ['a@customers.example'] }))).toMatch(/^451 4\.7\.1 /)
    h.clock.advance(DAY)
    expect(await replyOf(h.send({ from: 'news@shop.example', to: ['a@customers.example'] }))).toMatch(/^451 4\.7\.1 /)
    h.clock.advance(DAY)
    expect(await replyOf(h.send({ from: 'news@shop.example', to: ['a@customers.example'] }))).toMatch(/^250 /)
  })

  it('refuses thresholds outside (0, 1]', () => {
    h = undefined
    const reporting = { store: {} as Reporting['store'], note: () => {} }
    expect(() => senderProtection({ reporting, bounceRate: 5 })).toThrow(/bounceRate/)
    expect(() => senderProtection({ reporting, complaintRate: 0 })).toThrow(/complaintRate/)
  })
})
