/**
 * One domain list, one meaning: `example.com` is that domain, `.corp.example` its subdomains,
 * an internationalised name matches in any of its forms, case and a trailing dot do not matter.
 * The same list goes through every option that takes domains.
 */
import { generateKeyPairSync } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { disclaimer, dkimSign, domainMatcher, domainTable, relayPolicy, routeTransport } from '../src/index.js'
import { memoryTransport, runRcptTo, runStage, testMessage } from '../src/testing/index.js'

const LIST = ['example.com', '.corp.example', 'bücher.example']
const CASES: ReadonlyArray<readonly [string, boolean]> = [
  ['example.com', true],
  ['EXAMPLE.com.', true],
  ['mail.example.com', false],
  ['corp.example', false],
  ['eu.corp.example', true],
  ['a.b.corp.example', true],
  ['notcorp.example', false],
  ['bücher.example', true],
  ['BÜCHER.example', true],
  ['xn--bcher-kva.example', true],
  ['elsewhere.test', false],
]

describe.each(CASES)('a recipient or sender at %s', (domain, ours) => {
  it(`${ours ? 'matches' : 'does not match'} the list in domainMatcher and domainTable`, () => {
    expect(domainMatcher(LIST, 'test')(domain)).toBe(ours)
    expect(
      domainTable(
        LIST.map((d) => [d, d] as const),
        'test',
      ).get(domain) !== undefined,
    ).toBe(ours)
  })

  it(`${ours ? 'is' : 'is not'} granted relaying by relayPolicy({ domains })`, async () => {
    const { relay } = await runRcptTo(relayPolicy({ authenticated: false, domains: LIST }), `bob@${domain}`)
    expect(relay).toBe(ours)
  })

  it(`${ours ? 'takes' : 'does not take'} the route of routeTransport({ domains })`, async () => {
    const routed = memoryTransport()
    const other = memoryTransport()
    await routeTransport({ routes: [{ domains: LIST, transport: routed }], fallback: other }).send(await testMessage({ to: [`bob@${domain}`] }))
    expect(routed.messages.length).toBe(ours ? 1 : 0)
  })

  it(`${ours ? 'gets' : 'does not get'} the disclaimer of disclaimer({ domains })`, async () => {
    const stage = disclaimer({ domains: Object.fromEntries(LIST.map((d) => [d, { text: 'Ours.' }])) })
    const transport = memoryTransport()
    await runStage(stage, await testMessage({ from: `ann@${domain}`, eml: 'Subject: s\r\nContent-Type: text/plain\r\n\r\nbody\r\n' }), transport)
    expect(transport.messages[0]!.raw.toString().includes('Ours.')).toBe(ours)
  })

  it(`${ours ? 'is' : 'is not'} signed with the keys of dkimSign({ keys })`, async () => {
    const privateKey = generateKeyPairSync('ed25519').privateKey
    const stage = dkimSign({ keys: Object.fromEntries(LIST.map((d) => [d, { selector: 's1', privateKey }])) })
    const transport = memoryTransport()
    await runStage(stage, await testMessage({ eml: `From: ann@${domain}\r\nSubject: s\r\n\r\nbody\r\n` }), transport)
    expect(transport.messages[0]!.raw.toString().startsWith('DKIM-Signature:')).toBe(ours)
  })
})

describe('invalid entries', () => {
  it('are refused with the option named, whatever takes the list', () => {
    for (const bad of ['.com', '', 'exa mple.com', '[192.0.2.1]']) {
      expect(() => domainMatcher([bad], 'relayPolicy domains')).toThrow(/relayPolicy domains: invalid or too wide domain/)
      expect(() => routeTransport({ routes: [{ domains: [bad], transport: memoryTransport() }] })).toThrow(/routeTransport domains/)
    }
  })
})
