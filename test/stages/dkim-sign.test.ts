import { generateKeyPairSync, type KeyObject } from 'node:crypto'
import { createTransport } from 'nodemailer'
import { beforeAll, describe, expect, it } from 'vitest'
import { type DkimKey, dkimDnsRecord } from '../../src/dkim/keys.js'
import { addressRewrite, createPipeline, disclaimer, type Stage } from '../../src/index.js'
import { type DkimSignOptions, dkimSign } from '../../src/stages/dkim-sign.js'
import { smimeSign } from '../../src/stages/smime-sign.js'
import { memoryTransport, startSink, testMessage } from '../../src/testing/index.js'
import { afterTest, relayToSink } from '../helpers/after-test.js'
import { haveDkimpy, verifyMessage, verifyMessages } from '../helpers/dkim-verify.js'
import { BIG_MESSAGE_TIMEOUT, bigMessage, startMeasuredRelay } from '../helpers/memory.js'
import { havePeer } from '../helpers/peers.js'
import { allowAll, refusal, relayError } from '../helpers/relay.js'
import { credentials, verify as smimeVerify } from '../helpers/smime.js'
import { appending } from '../helpers/stages.js'

const dkimpy = haveDkimpy()
const openssl = havePeer('openssl', 'apt-get install -y openssl')
const MiB = 1024 * 1024

let rsa: KeyObject
let ed: KeyObject
beforeAll(() => {
  rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey
  ed = generateKeyPairSync('ed25519').privateKey
})

/** DNS TXT records for `keys` of `domain`, as the verifier's DNS answers them. */
function published(domain: string, keys: readonly DkimKey[]): Record<string, string> {
  return Object.fromEntries(keys.map((key) => dkimDnsRecord({ domain, ...key })).map((r) => [r.name, r.value]))
}

/** Signs `eml` with one stage run and returns the bytes the transport got. */
async function signed(options: DkimSignOptions, eml: string | Buffer): Promise<Buffer> {
  const transport = memoryTransport()
  await createPipeline({ stages: [dkimSign(options)], transport }).deliver(await testMessage({ eml }))
  return transport.messages[0]!.raw
}

/** Names of the header fields, top to bottom. */
function fieldNames(raw: Buffer): string[] {
  const head = raw.toString('latin1').split('\r\n\r\n')[0]!
  return head.split(/\r\n(?![ \t])/).map((f) => f.slice(0, f.indexOf(':')))
}

const relayWith = (stages: Stage[]) => relayToSink([allowAll, ...stages])

const PLAIN =
  'From: Ann Example <ann@example.com>\r\nTo: bob@example.org\r\nSubject: quarterly report\r\nDate: Sat, 28 Nov 2026 10:00:00 +0000\r\nMessage-ID: <q4@example.com>\r\n\r\nHello Bob.\r\n'

describe.skipIf(!dkimpy)('dkimSign, verified by dkimpy', () => {
  it('signs a relayed message with RSA and Ed25519, From/Subject/To/Date over-signed, no l= tag, CRLF only', async () => {
    const keys = [
      { selector: 'rsa2026', privateKey: rsa },
      { selector: 'ed2026', privateKey: ed },
    ]
    const { sink, t } = await relayWith([dkimSign({ keys: { 'example.com': keys } })])
    await t.client().sendMail({ envelope: { from: 'ann@example.com', to: ['bob@example.org'] }, raw: PLAIN })
    const [message] = await sink.waitForMessages(1)
    expect(fieldNames(message!.raw)).toEqual(['DKIM-Signature', 'DKIM-Signature', 'Received', 'From', 'To', 'Subject', 'Date', 'Message-ID'])
    const result = await verifyMessage(message!.raw, published('example.com', keys))
    expect(result.bareLineEndings).toBe(false)
    expect(result.signatures.map((s) => [s.ok, s.tags.a, s.tags.s, s.tags.d, s.tags.c])).toEqual([
      [true, 'rsa-sha256', 'rsa2026', 'example.com', 'relaxed/relaxed'],
      [true, 'ed25519-sha256', 'ed2026', 'example.com', 'relaxed/relaxed'],
    ])
    expect(result.signatures[0]!.tags.h).toBe('Message-ID:Date:Subject:To:From:From:Subject:To:Date')
    expect(result.signatures.every((s) => !('l' in s.tags))).toBe(true)
  })

  it('verifies with each canonicalisation and algorithm on a message with folding, tabs, trailing spaces and blank lines', async () => {
    const eml =
      'From: ann@example.com\r\nTo: bob@example.org\r\nSubject:  Folded\r\n  subject   with  spaces \r\nDate: Sat, 28 Nov 2026 10:00:00 +0000\r\n\r\nTrailing space \r\n\tTabbed  line\r\n\r\n\r\n'
    const keys = { rsa: { selector: 'r', privateKey: rsa }, ed: { selector: 'e', privateKey: ed } }
    const cases = (['relaxed/relaxed', 'relaxed/simple', 'simple/relaxed', 'simple/simple'] as const).flatMap(
      (c) =>
        [
          [c, keys.rsa],
          [c, keys.ed],
        ] as const,
    )
    const messages = await Promise.all(cases.map(([canonicalization, key]) => signed({ keys: { 'example.com': key }, canonicalization }, eml)))
    const results = await verifyMessages(messages, published('example.com', [keys.rsa, keys.ed]))
    expect(results.map((r) => [r.signatures[0]!.tags.c, r.signatures[0]!.tags.s, r.signatures[0]!.ok])).toEqual(
      cases.map(([c, key]) => [c, key.selector, true]),
    )
  })

  it('signs 8-bit (8BITMIME) and SMTPUTF8 messages, with an internationalised From domain as A-labels', async () => {
    const key = { selector: 'intl', privateKey: ed }
    const { sink, t } = await relayWith([dkimSign({ keys: { 'example.com': key, 'bücher.example': key } })])
    const latin1 = Buffer.concat([
      Buffer.from(
        'From: ann@example.com\r\nSubject: menu\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: 8bit\r\n\r\ncaf',
      ),
      Buffer.from([0xe9]),
      Buffer.from('\r\n'),
    ])
    await t.client().sendMail({ envelope: { from: 'ann@example.com', to: ['bob@example.org'], use8BitMime: true }, raw: latin1 })
    const utf8 =
      'From: Jörg <jörg@bücher.example>\r\nTo: zoë@example.org\r\nSubject: Grüße\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nGrüße aus Köln\r\n'
    await t.client().sendMail({ envelope: { from: 'jörg@bücher.example', to: ['zoë@example.org'] }, raw: utf8 })
    const [eight, intl] = await sink.waitForMessages(2)
    expect(intl!.mailArgs.SMTPUTF8).toBe(true)
    expect(eight!.raw.includes(Buffer.from([0x66, 0xe9, 0x0d, 0x0a]))).toBe(true)
    const results = await verifyMessages([eight!.raw, intl!.raw], {
      ...published('example.com', [key]),
      ...published('xn--bcher-kva.example', [key]),
    })
    expect(results.map((r) => [r.signatures[0]!.tags.d, r.signatures[0]!.ok])).toEqual([
      ['example.com', true],
      ['xn--bcher-kva.example', true],
    ])
  })

  it('signs a message with nothing but a From field and an empty body, over-signing the absent fields', async () => {
    const key = { selector: 'min', privateKey: rsa }
    const messages = await Promise.all(
      ['From: ann@example.com\r\n\r\nx\r\n', 'From: ann@example.com\r\n\r\n'].map((eml) => signed({ keys: { 'example.com': key } }, eml)),
    )
    const results = await verifyMessages(messages, published('example.com', [key]))
    expect(results.map((r) => [r.signatures[0]!.tags.h, r.signatures[0]!.ok])).toEqual([
      ['From:From:Subject:To:Date', true],
      ['From:From:Subject:To:Date', true],
    ])
  })

  it('signs what earlier stages made of the message: a footer appended to the body and an edited Subject', async () => {
    const footer = appending('footer', '-- \r\nSent through the example.com relay\r\n', (msg) => {
      msg.headers.set('Subject', `[external] ${msg.headers.get('subject')}`)
    })
    const key = { selector: 'foot', privateKey: rsa }
    const { sink, t } = await relayWith([footer, dkimSign({ keys: { 'example.com': key } })])
    await t.client().sendMail({ envelope: { from: 'ann@example.com', to: ['bob@example.org'] }, raw: PLAIN })
    const [message] = await sink.waitForMessages(1)
    const text = message!.raw.toString()
    expect(text).toContain('\r\nSubject: [external] quarterly report\r\n')
    expect(text.endsWith('Hello Bob.\r\n-- \r\nSent through the example.com relay\r\n')).toBe(true)
    expect((await verifyMessage(message!.raw, published('example.com', [key]))).signatures.map((s) => s.ok)).toEqual([true])
  })

  it('signs a multipart message after the real disclaimer and address-rewrite stages changed it', async () => {
    const rewrite = addressRewrite({ sender: { '@old.example': '@example.com' } })
    const footer = disclaimer({ text: 'Example Corp. This message is confidential.' })
    const keys = [
      { selector: 'rsa', privateKey: rsa },
      { selector: 'ed', privateKey: ed },
    ]
    const { sink, t } = await relayWith([rewrite, footer, dkimSign({ keys: { 'example.com': keys } })])
    await t.client().sendMail({
      from: 'Ann Example <ann@old.example>',
      to: 'bob@example.org',
      subject: 'Grüße',
      text: 'Hallo Bob, schöne Grüße.\n',
      html: '<html><body><p>Hallo Bob, schöne Grüße.</p></body></html>',
      attachments: [{ filename: 'data.bin', content: Buffer.alloc(3000, 7) }],
    })
    const [message] = await sink.waitForMessages(1)
    const text = message!.raw.toString()
    expect(message!.mailFrom).toBe('ann@example.com')
    expect(text).toMatch(/^From: Ann Example <ann@example\.com>\r$/m)
    expect(text).toContain('X-Disclaimer:')
    expect((await verifyMessage(message!.raw, published('example.com', keys))).signatures.map((s) => s.ok)).toEqual([true, true])
  })

  it('signs the body as it is sent, with CRLF, when an earlier stage leaves a bare LF in it', async () => {
    const strayLf = appending('stray-lf', 'footer\n')
    const key = { selector: 'lf', privateKey: ed }
    const { sink, t } = await relayWith([strayLf, dkimSign({ keys: { 'example.com': key } })])
    await t.client().sendMail({ envelope: { from: 'ann@example.com', to: ['bob@example.org'] }, raw: PLAIN })
    const [message] = await sink.waitForMessages(1)
    expect(message!.raw.toString().endsWith('Hello Bob.\r\nfooter\r\n')).toBe(true)
    const result = await verifyMessage(message!.raw, published('example.com', [key]))
    expect([result.bareLineEndings, result.signatures[0]!.ok]).toEqual([false, true])
  })

  it('signs hostile bodies that dkimpy verifies after the relay (8-bit, NUL, 998-octet lines, white space runs, EAI), with every canonicalisation', async () => {
    const head = (extra = '') => `From: ann@example.com\r\nTo: bob@example.org\r\nSubject: hostile\r\n${extra}\r\n`
    const bodies: Array<[string, Buffer, boolean]> = [
      [
        '8-bit latin-1',
        Buffer.concat([
          Buffer.from(head('Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: 8bit\r\n')),
          Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x20, 0x20, 0x09, 0xff, 0x0d, 0x0a, 0x80, 0x0d, 0x0a]),
        ]),
        true,
      ],
      ['NUL bytes', Buffer.concat([Buffer.from(head()), Buffer.from([0x61, 0x00, 0x20, 0x20, 0x00, 0x0d, 0x0a, 0x00, 0x09, 0x0d, 0x0a])]), true],
      ['998-octet lines', Buffer.from(`${head()}${'x'.repeat(998)}\r\n${'y '.repeat(499)}\r\n${'z'.repeat(997)} \r\n`), false],
      ['white space runs and trailing empty lines', Buffer.from(`${head()}  lead\r\nin  side\t\tx \t\r\n \r\n\t\r\n.\r\n..\r\n\r\n\r\n`), false],
      [
        'EAI (UTF-8)',
        Buffer.from(`From: Jörg <ann@example.com>\r\nTo: zoë@bücher.example\r\nSubject: Grüße\r\n\r\nGrüße  aus Köln \r\n\t— zoë@bücher.example\r\n`),
        true,
      ],
      ['a body of empty lines', Buffer.from(`${head()}\r\n\r\n\r\n`), false],
    ]
    const keys = [
      { selector: 'rsa', privateKey: rsa },
      { selector: 'ed', privateKey: ed },
    ]
    for (const canonicalization of ['relaxed/relaxed', 'simple/simple', 'relaxed/simple', 'simple/relaxed'] as const) {
      const { sink, t } = await relayWith([dkimSign({ keys: { 'example.com': keys }, canonicalization })])
      for (const [, raw, eightBit] of bodies) {
        await t.client().sendMail({ envelope: { from: 'ann@example.com', to: ['bob@example.org'], ...(eightBit ? { use8BitMime: true } : {}) }, raw })
      }
      const received = await sink.waitForMessages(bodies.length)
      const results = await verifyMessages(
        received.map((m) => m.raw),
        published('example.com', keys),
      )
      expect(results.map((r, i) => [bodies[i]![0], canonicalization, r.bareLineEndings, ...r.signatures.map((s) => s.ok)])).toEqual(
        bodies.map(([name]) => [name, canonicalization, false, true, true]),
      )
    }
  })

  it('signs a body that a stage leaves without a final line break and with trailing white space, as SMTP then sends it', async () => {
    const key = { selector: 'tail', privateKey: rsa }
    for (const canonicalization of ['relaxed/relaxed', 'simple/simple'] as const) {
      const { sink, t } = await relayWith([appending('unterminated', '-- \r\nfooter '), dkimSign({ keys: { 'example.com': key }, canonicalization })])
      await t.client().sendMail({ envelope: { from: 'ann@example.com', to: ['bob@example.org'] }, raw: PLAIN })
      const [message] = await sink.waitForMessages(1)
      expect(message!.raw.toString().endsWith('Hello Bob.\r\n-- \r\nfooter \r\n')).toBe(true)
      const result = await verifyMessage(message!.raw, published('example.com', [key]))
      expect([canonicalization, result.signatures[0]!.ok]).toEqual([canonicalization, true])
    }
  })

  it('signs a message whose body an earlier stage spooled already, hashing that spool (no second copy)', async () => {
    let spooled: unknown
    const reader: Stage = {
      name: 'reader',
      async data(msg, next) {
        spooled = await msg.body.spool()
        return next()
      },
    }
    let again: unknown
    const after: Stage = {
      name: 'after',
      modifies: 'trace',
      async data(msg, next) {
        again = await msg.body.spool()
        return next()
      },
    }
    const key = { selector: 'shared', privateKey: ed }
    const { sink, t } = await relayWith([reader, dkimSign({ keys: { 'example.com': key } }), after])
    await t.client().sendMail({ envelope: { from: 'ann@example.com', to: ['bob@example.org'] }, raw: PLAIN })
    const [message] = await sink.waitForMessages(1)
    expect(again).toBe(spooled)
    expect((await verifyMessage(message!.raw, published('example.com', [key]))).signatures.map((s) => s.ok)).toEqual([true])
  })

  it.skipIf(!openssl)('DKIM-signs S/MIME-signed mail: dkimpy verifies the DKIM signature, openssl the S/MIME one', async () => {
    const key = { selector: 'smime', privateKey: rsa }
    const eml = PLAIN.replace('ann@example.com', 'alice@example.com')
    const { sink, t } = await relayWith([
      smimeSign({ certificates: { 'alice@example.com': credentials('alice') } }),
      dkimSign({ keys: { 'example.com': key } }),
    ])
    await t.client().sendMail({ envelope: { from: 'alice@example.com', to: ['bob@example.org'] }, raw: eml })
    const [message] = await sink.waitForMessages(1)
    expect(message!.raw.toString()).toMatch(/\r\nContent-Type: multipart\/signed; /)
    expect((await verifyMessage(message!.raw, published('example.com', [key]))).signatures.map((s) => s.ok)).toEqual([true])
    expect(smimeVerify(message!.raw).stderr).toBe('CMS Verification successful\n')
  })

  it('fails verification after tampering with the body or a signed field, or adding an over-signed field; a new trace field is fine', async () => {
    const key = { selector: 'tamper', privateKey: rsa }
    const raw = (await signed({ keys: { 'example.com': key } }, PLAIN)).toString('latin1')
    const variants = [
      raw.replace('Hello Bob.', 'Hello Bob!'),
      raw.replace('Subject: quarterly report', 'Subject: quarterly rep0rt'),
      `From: mallory@evil.test\r\n${raw}`,
      `Subject: urgent: new bank details\r\n${raw}`,
      raw.replace('\r\n\r\n', '\r\nTo: eve@evil.test\r\n\r\n'),
      `Received: from relay.example.org by mx.example.org; Sat, 28 Nov 2026 10:00:05 +0000\r\n${raw}`,
    ]
    const results = await verifyMessages(
      variants.map((v) => Buffer.from(v, 'latin1')),
      published('example.com', [key]),
    )
    expect(results.map((r) => r.signatures[0]!.ok)).toEqual([false, false, false, false, false, true])
  })

  it('rotates keys: the resolver picks the selector by domain and signing date', async () => {
    const old = { selector: 's2025', privateKey: rsa }
    const next = { selector: 's2026', privateKey: ed }
    const cutover = new Date('2026-01-01T00:00:00Z')
    let now = new Date('2025-12-31T23:59:59Z')
    const options: DkimSignOptions = {
      keys: (domain, { date }) => (domain === 'example.com' ? (date < cutover ? old : next) : undefined),
      clock: () => now,
    }
    const before = await signed(options, PLAIN)
    now = cutover
    const after = await signed(options, PLAIN)
    const other = await signed(options, PLAIN.replace('ann@example.com', 'ann@example.net'))
    const results = await verifyMessages([before, after], published('example.com', [old, next]))
    expect(results.map((r) => [r.signatures[0]!.tags.s, r.signatures[0]!.tags.t, r.signatures[0]!.ok])).toEqual([
      ['s2025', String(Date.parse('2025-12-31T23:59:59Z') / 1000), true],
      ['s2026', String(cutover.getTime() / 1000), true],
    ])
    expect(fieldNames(other)).not.toContain('DKIM-Signature')
  })

  it('signs with the key a map gives for the From domain, as another domain when the key says so', async () => {
    const parent = { selector: 'p', privateKey: ed, domain: 'example.com' }
    const own = { selector: 'o', privateKey: rsa }
    const options = { keys: { 'news.example.com': parent, 'example.net': own } }
    const messages = await Promise.all([
      signed(options, PLAIN.replace('ann@example.com', 'ann@news.example.com')),
      signed(options, PLAIN.replace('ann@example.com', 'ann@EXAMPLE.net')),
    ])
    const results = await verifyMessages(messages, { ...published('example.com', [parent]), ...published('example.net', [own]) })
    expect(results.map((r) => [r.signatures[0]!.tags.d, r.signatures[0]!.tags.s, r.signatures[0]!.ok])).toEqual([
      ['example.com', 'p', true],
      ['example.net', 'o', true],
    ])
  })

  it(
    'signs a 50 MB message holding under 64 MB more memory, and the signature verifies',
    async () => {
      const key = { selector: 'big', privateKey: rsa }
      const sink = await startSink()
      const relay = await startMeasuredRelay(sink.port, 'dkim', { DKIM_TEST_KEY: rsa.export({ type: 'pkcs8', format: 'pem' }) as string })
      afterTest(
        () => sink.close(),
        () => relay.stop(),
      )
      const client = createTransport({ host: '127.0.0.1', port: relay.port, ignoreTLS: true })
      const envelope = { from: 'ann@example.com', to: ['bob@example.org'] }
      const head = 'From: ann@example.com\r\nTo: bob@example.org\r\nSubject: big\r\n\r\n'
      await client.sendMail({ envelope, raw: `${head}warm-up\r\n` })
      await relay.mark()
      await client.sendMail({ envelope, raw: bigMessage(50 * MiB, head) })
      const growth = await relay.growth()
      client.close()
      console.log(`signing relay live memory growth ${growth.live.toFixed(1)} MiB, peak RSS growth ${growth.rss.toFixed(1)} MiB for a 50 MiB message`)
      const [, big] = await sink.waitForMessages(2)
      expect(big!.size).toBeGreaterThan(50 * MiB)
      expect(growth.live).toBeLessThan(64)
      const result = await verifyMessage(big!.raw, published('example.com', [key]))
      expect(result.signatures.map((s) => s.ok)).toEqual([true])
    },
    BIG_MESSAGE_TIMEOUT,
  )
})

describe('dkimSign, unsigned and refused', () => {
  it('passes a message unchanged when its From domain has no key, or it has no From', async () => {
    const options = { keys: { 'example.com': { selector: 'x', privateKey: ed } } }
    const foreign = PLAIN.replace('ann@example.com', 'ann@elsewhere.test')
    expect((await signed(options, foreign)).toString()).toBe(foreign)
    expect((await signed(options, 'Subject: no sender\r\n\r\nbody\r\n')).toString()).toBe('Subject: no sender\r\n\r\nbody\r\n')
  })

  it('looks keys up for the domain of the first mailbox in From, whatever shape the field has', async () => {
    const asked: string[] = []
    const options: DkimSignOptions = { keys: (domain) => void asked.push(domain) }
    const froms = [
      'Ann <ann@Example.COM>',
      'ann@example.net',
      '"Doe, Jane" <jane@quoted.example>',
      'a@first.example, b@second.example',
      'Jörg <jörg@bücher.example>',
      'ann@comment.example (Ann)',
      'undisclosed-recipients:;',
    ]
    for (const from of froms) await signed(options, `From: ${from}\r\n\r\nx\r\n`)
    expect(asked).toEqual(['example.com', 'example.net', 'quoted.example', 'first.example', 'xn--bcher-kva.example', 'comment.example'])
  })

  it('answers 451 4.3.0 and delivers nothing when a resolver returns an unreadable key', async () => {
    const broken = { selector: 'broken', privateKey: '-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n' }
    const { sink, t } = await relayWith([dkimSign({ keys: () => broken })])
    const err = await refusal(t.client().sendMail({ envelope: { from: 'ann@example.com', to: ['bob@example.org'] }, raw: PLAIN }))
    expect(err.response).toBe('451 4.3.0 Temporary local problem, please try again later')
    expect(sink.messages).toHaveLength(0)
  })

  it('refuses bad keys and options with RelayError ERR_RELAY_INVALID_OPTION when the chain is built, never quoting the key', () => {
    const garbage = '-----BEGIN PRIVATE KEY-----\nc2VjcmV0IGtleSBtYXRlcmlhbA==\n-----END PRIVATE KEY-----\n'
    const cases: Array<[DkimSignOptions, RegExp]> = [
      [{ keys: { 'example.com': { selector: 's', privateKey: garbage } } }, /^DKIM key s\._domainkey\.example\.com: not a readable private key/],
      [
        { keys: { 'example.com': { selector: 's', privateKey: generateKeyPairSync('ed25519').publicKey } } },
        /a private key is needed, got a public key/,
      ],
      [
        { keys: { 'example.com': { selector: 's', privateKey: generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey } } },
        /must be RSA or Ed25519, got ec/,
      ],
      [
        { keys: { 'example.com': { selector: 's', privateKey: generateKeyPairSync('rsa', { modulusLength: 512 }).privateKey } } },
        /at least 1024 bits \(RFC 8301\), got 512/,
      ],
      [
        { keys: { 'example.com': { selector: 's', privateKey: ed, algorithm: 'rsa-sha256' } } },
        /algorithm rsa-sha256 does not match the key \(ed25519-sha256\)/,
      ],
      [{ keys: { 'example.com': { selector: 'not a selector', privateKey: ed } } }, /invalid DKIM selector "not a selector"/],
      [{ keys: { 'Example.com': { selector: 'a', privateKey: ed }, 'example.com': { selector: 'b', privateKey: ed } } }, /names example\.com twice/],
      [{ keys: {}, headers: ['Subject', 'To'], oversign: [] }, /the From field must be signed/],
      [{ keys: {}, canonicalization: 'relaxed' as never }, /canonicalization must be one of/],
    ]
    for (const [options, message] of cases) {
      const err = relayError(() => dkimSign(options))
      expect(err.code).toBe('ERR_RELAY_INVALID_OPTION')
      expect(err.message).toMatch(message)
      expect(err.message).not.toContain('c2VjcmV0')
    }
  })

  it('is refused by the pipeline before a stage that edits headers, accepted before a trace stage', () => {
    const signer = dkimSign({ keys: { 'example.com': { selector: 's', privateKey: ed } } })
    const edit: Stage = { name: 'late-edit', modifies: 'headers' }
    const trace: Stage = { name: 'late-trace', modifies: 'trace' }
    const transport = memoryTransport()
    expect(() => createPipeline({ stages: [signer, edit], transport })).toThrow(
      expect.objectContaining({
        code: 'ERR_RELAY_UNSAFE_ORDER',
        message: '"late-edit" modifies the message (headers) after "dkim-sign" sealed its message; move it before "dkim-sign"',
      }),
    )
    expect(createPipeline({ stages: [edit, signer, trace], transport }).describe()).toContain(
      'dkim-sign            [data] modifies trace seals message',
    )
  })

  it('is refused by the pipeline before S/MIME signing, accepted after it', () => {
    const signer = dkimSign({ keys: { 'example.com': { selector: 's', privateKey: ed } } })
    const smime = smimeSign({ certificates: { 'alice@example.com': credentials('alice') } })
    const transport = memoryTransport()
    expect(() => createPipeline({ stages: [signer, smime], transport })).toThrow(
      expect.objectContaining({
        code: 'ERR_RELAY_UNSAFE_ORDER',
        message: '"smime-sign" modifies the message (body) after "dkim-sign" sealed its message; move it before "dkim-sign"',
      }),
    )
    expect(createPipeline({ stages: [smime, signer], transport }).stages.map((s) => s.name)).toEqual(['smime-sign', 'dkim-sign'])
  })
})
