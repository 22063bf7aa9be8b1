import { describe, expect, it } from 'vitest'
import { RelayError, routeTransport } from '../../src/index.js'
import { memoryTransport, testMessage } from '../../src/testing/index.js'

const EML = 'Subject: routed\r\n\r\nbody\r\n'

describe('routeTransport', () => {
  it('splits the envelope by recipient domain and sends each transport an identical copy', async () => {
    const corp = memoryTransport()
    const rest = memoryTransport()
    const transport = routeTransport({ routes: [{ domains: ['corp.example', '.corp.example'], transport: corp }], fallback: rest })
    const report = await transport.send(await testMessage({ to: ['a@corp.example', 'b@eu.corp.example', 'c@else.example'], eml: EML }))
    expect(report.accepted.map((a) => a.address).sort()).toEqual(['a@corp.example', 'b@eu.corp.example', 'c@else.example'])
    expect(corp.messages[0]!.envelope.rcptTo.map((r) => r.address)).toEqual(['a@corp.example', 'b@eu.corp.example'])
    expect(rest.messages[0]!.envelope.rcptTo.map((r) => r.address)).toEqual(['c@else.example'])
    expect(corp.messages[0]!.raw.toString()).toBe(EML)
    expect(rest.messages[0]!.raw.toString()).toBe(EML)
  })

  it('routes by sender and by a match function, first match wins', async () => {
    const bulk = memoryTransport()
    const vip = memoryTransport()
    const transport = routeTransport({
      routes: [
        { match: (rcpt) => rcpt.address.startsWith('ceo@'), transport: vip },
        { senders: ['@newsletter.example'], transport: bulk },
      ],
    })
    await transport.send(await testMessage({ from: 'news@newsletter.example', to: ['ceo@x.example', 'someone@x.example'], eml: EML }))
    expect(vip.messages[0]!.envelope.rcptTo.map((r) => r.address)).toEqual(['ceo@x.example'])
    expect(bulk.messages[0]!.envelope.rcptTo.map((r) => r.address)).toEqual(['someone@x.example'])
  })

  it('refuses recipients no route matches with 550 5.4.4 and delivers the others', async () => {
    const corp = memoryTransport()
    const report = await routeTransport({ routes: [{ domains: ['corp.example'], transport: corp }] }).send(
      await testMessage({ to: ['a@corp.example', 'b@else.example'], eml: EML }),
    )
    expect(report.accepted.map((a) => a.address)).toEqual(['a@corp.example'])
    expect(report.rejected.map((r) => [r.rcpt.address, r.error.toReply()])).toEqual([
      ['b@else.example', '550 5.4.4 Unable to route to this recipient'],
    ])
  })

  it('reports a failing destination per recipient and still delivers to the others', async () => {
    const ok = memoryTransport()
    const down = memoryTransport({
      fail: () => {
        throw new Error('connection refused')
      },
    })
    const report = await routeTransport({ routes: [{ domains: ['down.example'], transport: down }], fallback: ok }).send(
      await testMessage({ to: ['a@down.example', 'b@up.example'], eml: EML }),
    )
    expect(report.accepted.map((a) => a.address)).toEqual(['b@up.example'])
    expect(report.rejected[0]!.error.toReply()).toBe('451 4.3.0 Temporary local problem, please try again later')
  })

  it('refuses a route without exactly one rule', () => {
    expect(() => routeTransport({ routes: [{ transport: memoryTransport() }] })).toThrow(RelayError)
  })
})
