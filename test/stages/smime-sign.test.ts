import { describe, expect, it } from 'vitest'
import type { Stage } from '../../src/index.js'
import { type SmimeSignOptions, smimeSign } from '../../src/stages/smime-sign.js'
import { memoryTransport, runStage, testMessage } from '../../src/testing/index.js'
import { relayToSink } from '../helpers/after-test.js'
import { havePeer } from '../helpers/peers.js'
import { allowAll, refusal, relayError } from '../helpers/relay.js'
import { credentials, fixture, headerOf, verify } from '../helpers/smime.js'
import { appending } from '../helpers/stages.js'

const haveOpenssl = havePeer('openssl', 'apt-get install -y openssl')

const ENTITY = 'Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nHello Bob,\r\n\r\nthe report is attached.\r\n'
const RAW =
  'From: Alice <alice@example.com>\r\nTo: Bob <bob@example.org>\r\nSubject: Report\r\nDate: Sat, 28 Nov 2026 10:00:00 +0000\r\n' +
  `Message-ID: <report-1@example.com>\r\nMIME-Version: 1.0\r\n${ENTITY}`
const ALICE: SmimeSignOptions = { certificates: { 'alice@example.com': credentials('alice') } }

/** A relay with `stages` in front of a sink; sends `raw` and returns what the sink received. */
async function relayed(
  stages: Stage[],
  raw: string | Buffer,
  envelope: Record<string, unknown> = { from: 'alice@example.com', to: ['bob@example.org'] },
) {
  const { sink, t } = await relayToSink([allowAll, ...stages])
  await t.client().sendMail({ envelope: envelope as never, raw })
  return (await sink.waitForMessages(1))[0]!.raw
}

/** Signs `eml` with one stage run, no relay. */
async function signed(options: SmimeSignOptions, eml: string | Buffer): Promise<Buffer> {
  const transport = memoryTransport()
  await runStage(smimeSign(options), await testMessage({ eml }), transport)
  return transport.messages[0]!.raw
}

describe.skipIf(!haveOpenssl)('smime-sign, verified by openssl cms', () => {
  it('relays a multipart/signed message that openssl verifies with only the root CA, signing the original entity', async () => {
    const raw = await relayed([smimeSign(ALICE)], RAW)
    const head = headerOf(raw)
    expect(head).toMatch(/^Received: from /)
    expect(head).toContain(
      'From: Alice <alice@example.com>\r\nTo: Bob <bob@example.org>\r\nSubject: Report\r\nDate: Sat, 28 Nov 2026 10:00:00 +0000\r\nMessage-ID: <report-1@example.com>\r\nMIME-Version: 1.0\r\n',
    )
    expect(head).toMatch(
      /\r\nContent-Type: multipart\/signed; protocol="application\/pkcs7-signature"; micalg=sha-256;\r\n\tboundary="=_smime_[0-9a-f]{24}"\r\n$/,
    )
    expect(head).not.toContain('Content-Transfer-Encoding')
    const result = verify(raw)
    expect(result.stderr).toBe('CMS Verification successful\n')
    expect(result.stdout.toString()).toBe(ENTITY)
  })

  it('signs with an EC P-256 key (ECDSA with SHA-256)', async () => {
    const result = verify(await signed({ certificates: { 'erin@example.com': credentials('erin') } }, RAW.replace('alice@', 'erin@')))
    expect(result.stderr).toBe('CMS Verification successful\n')
    expect(result.stdout.toString()).toBe(ENTITY)
  })

  it('fails verification when one byte of the signed part changes after signing', async () => {
    const raw = await signed(ALICE, RAW)
    const tampered = Buffer.from(raw.toString('latin1').replace('the report is attached', 'the report is attacked'), 'latin1')
    expect(tampered.equals(raw)).toBe(false)
    const result = verify(tampered)
    expect(result.ok).toBe(false)
    expect(result.stderr).toContain('Verification failure')
  })

  it('signs an 8-bit body relayed with BODY=8BITMIME, byte for byte', async () => {
    const entity = Buffer.concat([
      Buffer.from('Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: 8bit\r\n\r\n'),
      Buffer.from([0x43, 0x61, 0x66, 0xe9, 0x20, 0xe0, 0x20, 0xff, 0x0d, 0x0a]),
    ])
    const raw = Buffer.concat([Buffer.from('From: alice@example.com\r\nTo: bob@example.org\r\nSubject: caf\xe9\r\n', 'latin1'), entity])
    const out = await relayed([smimeSign(ALICE)], raw, { from: 'alice@example.com', to: ['bob@example.org'], use8BitMime: true })
    const result = verify(out)
    expect(result.stderr).toBe('CMS Verification successful\n')
    expect(result.stdout.equals(entity)).toBe(true)
  })

  it('signs an SMTPUTF8 message for a sender whose domain has the certificate', async () => {
    const raw = Buffer.from(
      'From: Jörg <jörg@bücher.example>\r\nTo: <δοκιμή@παράδειγμα.example>\r\nSubject: Grüße\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHallo, schöne Grüße.\r\n',
    )
    const out = await relayed([smimeSign({ certificates: { 'bücher.example': credentials('alice') } })], raw, {
      from: 'jörg@bücher.example',
      to: ['δοκιμή@παράδειγμα.example'],
    })
    expect(headerOf(out)).toContain('From: Jörg <jörg@bücher.example>\r\nTo: <δοκιμή@παράδειγμα.example>\r\nSubject: Grüße\r\n')
    const result = verify(out)
    expect(result.stderr).toBe('CMS Verification successful\n')
    expect(result.stdout.toString()).toBe('Content-Type: text/plain; charset=utf-8\r\n\r\nHallo, schöne Grüße.\r\n')
  })

  it('signs a message with bare-minimum headers: the entity has no header field, MIME-Version is added outside', async () => {
    const raw = await signed(ALICE, 'From: alice@example.com\r\n\r\nhi\r\n')
    expect(headerOf(raw)).toMatch(/^From: alice@example.com\r\nMIME-Version: 1\.0\r\nContent-Type: multipart\/signed;/)
    const result = verify(raw)
    expect(result.stderr).toBe('CMS Verification successful\n')
    expect(result.stdout.toString()).toBe('\r\nhi\r\n')
  })

  it('signs what earlier stages made of the message (a body footer, a header rewrite)', async () => {
    const footer = appending('footer', '-- \r\nExample Ltd, registered in Testland\r\n')
    const rewrite: Stage = {
      name: 'rewrite',
      modifies: 'headers',
      async data(msg, next) {
        msg.headers.set('Subject', '[external] Report')
        msg.headers.set('Content-Type', 'text/plain; charset=us-ascii')
        return next()
      },
    }
    const raw = await relayed([footer, rewrite, smimeSign(ALICE)], RAW)
    expect(headerOf(raw)).toContain('Subject: [external] Report\r\n')
    const result = verify(raw)
    expect(result.stderr).toBe('CMS Verification successful\n')
    expect(result.stdout.toString()).toBe(
      'Content-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 8bit\r\n\r\nHello Bob,\r\n\r\nthe report is attached.\r\n-- \r\nExample Ltd, registered in Testland\r\n',
    )
  })
})

describe('smime-sign policy for senders without a certificate', () => {
  it('passes a message from a sender without a certificate on unchanged by default', async () => {
    const raw = await signed(ALICE, RAW.replace('alice@', 'mallory@'))
    expect(raw.toString()).toBe(RAW.replace('alice@', 'mallory@'))
  })

  it('refuses it with 550 5.7.1 when withoutCertificate is reject', async () => {
    const { sink, t } = await relayToSink([allowAll, smimeSign({ ...ALICE, withoutCertificate: 'reject' })])
    const err = await refusal(
      t.client().sendMail({ envelope: { from: 'mallory@example.com', to: ['bob@example.org'] }, raw: RAW.replace('alice@', 'mallory@') }),
    )
    expect(err.response).toBe('550 5.7.1 Message rejected due to local policy')
    expect(sink.messages).toHaveLength(0)
  })
})

describe('smime-sign configuration, checked when the chain is built', () => {
  it('refuses a key that does not belong to the certificate', () => {
    const err = relayError(() => smimeSign({ certificates: { 'alice@example.com': { cert: fixture('alice.pem'), key: fixture('bob.key') } } }))
    expect(err.code).toBe('ERR_RELAY_INVALID_OPTION')
    expect(err.message).toBe('smime-sign certificate for alice@example.com: the key does not belong to the (first) certificate')
  })

  it('refuses what is not a certificate or not a key, without quoting it', () => {
    const notCert = relayError(() => smimeSign({ certificates: { 'example.com': { cert: 'hello', key: fixture('alice.key') } } }))
    expect(notCert.message).toBe('smime-sign certificate for example.com: not a certificate (PEM or DER)')
    const notKey = relayError(() =>
      smimeSign({
        certificates: { 'example.com': { cert: fixture('alice.pem'), key: '-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n' } },
      }),
    )
    expect(notKey.message).toBe('smime-sign certificate for example.com: not a private key, or a wrong passphrase')
  })

  it('refuses an expired certificate and a chain out of order', () => {
    expect(relayError(() => smimeSign({ certificates: { 'example.com': credentials('expired') } })).message).toMatch(
      /certificate is not valid now \(Jan {2}1 00:00:00 2000 GMT to Jan {2}1 00:00:00 2001 GMT\)$/,
    )
    const outOfOrder = Buffer.concat([
      fixture('alice.pem').subarray(0, fixture('alice.pem').indexOf('-----END CERTIFICATE-----') + 26),
      fixture('root.pem'),
    ])
    expect(relayError(() => smimeSign({ certificates: { 'example.com': { cert: outOfOrder, key: fixture('alice.key') } } })).message).toBe(
      'smime-sign certificate for example.com: certificate 2 did not issue certificate 1',
    )
  })

  it('refuses an empty certificate map and an unknown policy', () => {
    expect(relayError(() => smimeSign({ certificates: {} })).message).toBe('smime-sign needs at least one certificate')
    expect(relayError(() => smimeSign({ ...ALICE, withoutCertificate: 'sometimes' as never })).code).toBe('ERR_RELAY_INVALID_OPTION')
  })
})
