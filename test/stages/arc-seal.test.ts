import { generateKeyPairSync, type KeyObject } from 'node:crypto'
import { beforeAll, describe, expect, it } from 'vitest'
import { dkimDnsRecord } from '../../src/dkim/keys.js'
import { createPipeline, type Stage, smtpTransport } from '../../src/index.js'
import { type ArcSealOptions, arcSeal } from '../../src/stages/arc-seal.js'
import { dkimSign } from '../../src/stages/dkim-sign.js'
import { memoryTransport, type Sink, startSink, testMessage } from '../../src/testing/index.js'
import { afterTest } from '../helpers/after-test.js'
import { haveDkimpy, verifyMessage } from '../helpers/dkim-verify.js'
import { allowAll, relayError, startRelay } from '../helpers/relay.js'

const dkimpy = haveDkimpy()

let originKey: KeyObject
let arcKey: KeyObject
let secondArcKey: KeyObject
let records: Record<string, string>
beforeAll(() => {
  originKey = generateKeyPairSync('ed25519').privateKey
  arcKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey
  secondArcKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey
  records = Object.fromEntries(
    [
      dkimDnsRecord({ domain: 'origin.test', selector: 'sel', privateKey: originKey }),
      dkimDnsRecord({ domain: 'forwarder.test', selector: 'arc', privateKey: arcKey }),
      dkimDnsRecord({ domain: 'second.test', selector: 'arc', privateKey: secondArcKey }),
    ].map((r) => [r.name, r.value]),
  )
  // The forwarders see the client 127.0.0.1: origin.test allows it to send, strict.test does not.
  records['origin.test'] = 'v=spf1 ip4:127.0.0.1 -all'
  records['strict.test'] = 'v=spf1 ip4:192.0.2.1 -all'
  records['_dmarc.origin.test'] = 'v=DMARC1; p=reject'
})

/** DNS answered from `records` only: nothing is resolved for real. */
async function resolver(name: string, rrtype: string): Promise<string[][]> {
  const value = rrtype === 'TXT' ? records[name.toLowerCase()] : undefined
  if (value === undefined) throw Object.assign(new Error(`no ${rrtype} record for ${name}`), { code: 'ENOTFOUND' })
  return [[value]]
}

const ORIGINAL =
  'From: Alice <alice@origin.test>\r\nTo: bob@forwarded.test\r\nSubject: minutes\r\nDate: Sat, 28 Nov 2026 10:00:00 +0000\r\nMessage-ID: <m1@origin.test>\r\n\r\nThe minutes are attached.\r\n'

/** The message as origin.test sends it: DKIM-signed with its key. */
async function fromOrigin(eml = ORIGINAL): Promise<Buffer> {
  const transport = memoryTransport()
  const signer = dkimSign({ keys: { 'origin.test': { selector: 'sel', privateKey: originKey } } })
  await createPipeline({ stages: [signer], transport }).deliver(await testMessage({ eml }))
  return transport.messages[0]!.raw
}

function sealer(options: Partial<ArcSealOptions> = {}): Stage {
  return arcSeal({ domain: 'forwarder.test', selector: 'arc', privateKey: arcKey, authservId: 'mx.forwarder.test', resolver, ...options })
}

/** A forwarding relay with `stages` in front of `upstream` (a sink, or another relay's port). */
async function forwarder(stages: Stage[], upstream: { host?: string; port: number }) {
  const t = await startRelay({ stages: [allowAll, ...stages], transport: smtpTransport({ host: upstream.host ?? '127.0.0.1', port: upstream.port }) })
  afterTest(() => t.close())
  return t
}

async function sink(): Promise<Sink> {
  const s = await startSink()
  afterTest(() => s.close())
  return s
}

function field(raw: Buffer, name: string): string | undefined {
  const match = new RegExp(`^${name}: ((?:[^\\r]*\\r\\n[ \\t])*[^\\r]*)\\r\\n`, 'mi').exec(raw.toString())
  return match?.[1]?.replace(/\r\n[ \t]+/g, ' ')
}

const envelope = { from: 'alice@origin.test', to: ['bob@forwarded.test'] }

describe.skipIf(!dkimpy)('arcSeal, verified by dkimpy', () => {
  it('seals a forwarded message with the SPF, DKIM and DMARC results it determined; dkimpy gives cv=pass', async () => {
    const upstream = await sink()
    const t = await forwarder([sealer()], upstream)
    await t.client().sendMail({ envelope, raw: await fromOrigin() })
    const [message] = await upstream.waitForMessages(1)
    const raw = message!.raw
    expect(raw.toString().split('\r\n')[0]).toMatch(/^ARC-Seal: i=1; a=rsa-sha256; t=\d+; cv=none; d=forwarder\.test;$/)
    const results = field(raw, 'ARC-Authentication-Results')!
    expect(results).toMatch(
      /^i=1; mx\.forwarder\.test; dkim=pass header\.i=@origin\.test header\.s=sel header\.a=ed25519-sha256 header\.b=\S+; spf=pass \(.*\) smtp\.mailfrom=alice@origin\.test .*; dmarc=pass \(p=REJECT arc=none\) header\.from=origin\.test header\.d=origin\.test$/,
    )
    const result = await verifyMessage(raw, records)
    expect(result.arc).toEqual({ cv: 'pass', comment: 'success', instances: 1 })
    expect(result.signatures.map((s) => [s.tags.d, s.ok])).toEqual([['origin.test', true]])
    expect(result.bareLineEndings).toBe(false)
  })

  it('continues the chain at a second forwarder: i=2 with cv=pass, and dkimpy verifies both sets', async () => {
    const upstream = await sink()
    const second = await forwarder([sealer({ domain: 'second.test', privateKey: secondArcKey, authservId: 'mx.second.test' })], upstream)
    const first = await forwarder([sealer()], { port: second.port })
    await first.client().sendMail({ envelope, raw: await fromOrigin() })
    const [message] = await upstream.waitForMessages(1)
    expect(field(message!.raw, 'ARC-Seal')).toMatch(/^i=2; a=rsa-sha256; t=\d+; cv=pass; d=second\.test; s=arc;/)
    expect(field(message!.raw, 'ARC-Authentication-Results')).toMatch(
      /^i=2; mx\.second\.test; dkim=pass .*; arc=pass \(i=1 spf=pass dkim=pass dkdomain=origin\.test dmarc=pass fromdomain=origin\.test\)/,
    )
    expect((await verifyMessage(message!.raw, records)).arc).toEqual({ cv: 'pass', comment: 'success', instances: 2 })
  })

  it('records spf=fail for a client the sender domain does not allow, and still seals', async () => {
    const upstream = await sink()
    const t = await forwarder([sealer()], upstream)
    const eml = ORIGINAL.replace('alice@origin.test', 'carol@strict.test')
    await t.client().sendMail({ envelope: { from: 'carol@strict.test', to: ['bob@forwarded.test'] }, raw: eml })
    const [message] = await upstream.waitForMessages(1)
    expect(field(message!.raw, 'ARC-Authentication-Results')).toMatch(
      /^i=1; mx\.forwarder\.test; dkim=none .*; spf=fail \(.*\) smtp\.mailfrom=carol@strict\.test/,
    )
    expect((await verifyMessage(message!.raw, records)).arc.cv).toBe('pass')
  })

  it('fails ARC verification after the body or a signed field is changed', async () => {
    const upstream = await sink()
    const t = await forwarder([sealer()], upstream)
    await t.client().sendMail({ envelope, raw: await fromOrigin() })
    const raw = (await upstream.waitForMessages(1))[0]!.raw.toString()
    const body = await verifyMessage(Buffer.from(raw.replace('The minutes are attached.', 'The minutes are attached!')), records)
    const subject = await verifyMessage(Buffer.from(raw.replace('Subject: minutes', 'Subject: invoice')), records)
    expect([body.arc.cv, subject.arc.cv]).toEqual(['fail', 'fail'])
  })

  it('with dkimSign after it: the forwarder DKIM-signs as its own domain, ARC records only what arrived', async () => {
    const upstream = await sink()
    const own = { selector: 'fwd', privateKey: generateKeyPairSync('ed25519').privateKey, domain: 'forwarder.test' }
    const published = dkimDnsRecord(own)
    records[published.name] = published.value
    const t = await forwarder([sealer(), dkimSign({ keys: () => own })], upstream)
    await t.client().sendMail({ envelope, raw: await fromOrigin() })
    const [message] = await upstream.waitForMessages(1)
    const result = await verifyMessage(message!.raw, records)
    expect(result.signatures.map((s) => [s.tags.d, s.ok])).toEqual([
      ['forwarder.test', true],
      ['origin.test', true],
    ])
    expect(result.arc.cv).toBe('pass')
    expect(field(message!.raw, 'ARC-Authentication-Results')).not.toContain('forwarder.test header.s=fwd')
  })
})

describe('arcSeal, refused', () => {
  it('refuses a key that is not RSA, or not a key, with RelayError ERR_RELAY_INVALID_OPTION', () => {
    const ed25519 = relayError(() => sealer({ privateKey: originKey }))
    expect([ed25519.code, ed25519.message]).toEqual([
      'ERR_RELAY_INVALID_OPTION',
      'arcSeal: the key must be RSA (RFC 8617 defines rsa-sha256 only), got ed25519',
    ])
    const unreadable = relayError(() => sealer({ privateKey: 'not a key' }))
    expect([unreadable.code, unreadable.message]).toEqual([
      'ERR_RELAY_INVALID_OPTION',
      'ARC key arc._domainkey.forwarder.test: not a readable private key (PEM)',
    ])
  })

  it('is refused by the pipeline before a stage that changes the body', () => {
    const footer: Stage = { name: 'footer', modifies: 'body' }
    expect(() => createPipeline({ stages: [sealer(), footer], transport: memoryTransport() })).toThrow(
      expect.objectContaining({
        code: 'ERR_RELAY_UNSAFE_ORDER',
        message: '"footer" modifies the message (body) after "arc-seal" sealed its message; move it before "arc-seal"',
      }),
    )
  })
})
