import { createHash } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createTransport } from 'nodemailer'
import { describe, expect, it } from 'vitest'
import { createPipeline, type SmtpError, type Stage } from '../../src/index.js'
import { type SmimeEncryptOptions, smimeEncrypt } from '../../src/stages/smime-encrypt.js'
import { smimeSign } from '../../src/stages/smime-sign.js'
import { memoryTransport, runStage, startSink, testMessage } from '../../src/testing/index.js'
import { afterTest, relayToSink } from '../helpers/after-test.js'
import { BIG_MESSAGE_TIMEOUT, bigMessage, startMeasuredRelay } from '../helpers/memory.js'
import { havePeer } from '../helpers/peers.js'
import { allowAll, refusal, relayError } from '../helpers/relay.js'
import { credentials, decrypt, FIXTURES, fixture, headerOf, openssl, verify } from '../helpers/smime.js'

const haveOpenssl = havePeer('openssl', 'apt-get install -y openssl')

const ENTITY = 'Content-Type: text/plain; charset=utf-8\r\n\r\nThe diagnosis is attached.\r\n'
const RAW = `From: Alice <alice@example.com>\r\nTo: bob@example.org, carol@example.org, dave@example.org\r\nSubject: Results\r\nMIME-Version: 1.0\r\n${ENTITY}`
const CERTIFICATES = { 'bob@example.org': fixture('bob.pem'), 'carol@example.org': fixture('carol.pem') }

const setup = (stages: Stage[]) => relayToSink([allowAll, ...stages])

function send(t: Awaited<ReturnType<typeof setup>>['t'], to: string[], raw = RAW) {
  return t.client().sendMail({ envelope: { from: 'alice@example.com', to }, raw })
}

/** Counts the RecipientInfos of an enveloped message and names its algorithms. */
function structure(message: Buffer): { recipients: number; keyTransport: string[]; content: string[] } {
  const printed = openssl(['cms', '-cmsout', '-print'], message).stdout.toString()
  return {
    recipients: printed.match(/d\.ktri:/g)?.length ?? 0,
    keyTransport: [...new Set([...printed.matchAll(/keyEncryptionAlgorithm: \n\s+algorithm: (\w+)/g)].map((m) => m[1]!))],
    content: [...printed.matchAll(/contentEncryptionAlgorithm: \n\s+algorithm: ([\w-]+)/g)].map((m) => m[1]!),
  }
}

describe.skipIf(!haveOpenssl)('smime-encrypt, decrypted by openssl cms', () => {
  it('encrypts once for two recipients, one RecipientInfo each, and each decrypts the original entity', async () => {
    const { sink, t } = await setup([smimeEncrypt({ certificates: CERTIFICATES })])
    await send(t, ['bob@example.org', 'carol@example.org'])
    const [message] = await sink.waitForMessages(1)
    expect(message!.rcptTo).toEqual(['bob@example.org', 'carol@example.org'])
    expect(headerOf(message!.raw)).toMatch(
      /\r\nFrom: Alice <alice@example.com>\r\nTo: bob@example.org, carol@example.org, dave@example.org\r\nSubject: Results\r\nMIME-Version: 1.0\r\nContent-Type: application\/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename="smime.p7m"\r\n$/,
    )
    expect(message!.raw.toString()).not.toContain('diagnosis')
    expect(structure(message!.raw)).toEqual({ recipients: 2, keyTransport: ['rsaesOaep'], content: ['aes-256-cbc'] })
    for (const who of ['bob', 'carol']) {
      const result = decrypt(message!.raw, who)
      expect(result.stderr).toBe('')
      expect(result.stdout.toString()).toBe(ENTITY)
    }
    expect(decrypt(message!.raw, 'alice').ok).toBe(false)
  })

  it('uses RSA PKCS#1 v1.5 key transport when asked', async () => {
    const transport = memoryTransport()
    await runStage(
      smimeEncrypt({ certificates: CERTIFICATES, keyTransport: 'rsa-pkcs1' }),
      await testMessage({ eml: RAW, to: ['bob@example.org'] }),
      transport,
    )
    const raw = transport.messages[0]!.raw
    expect(structure(raw)).toEqual({ recipients: 1, keyTransport: ['rsaEncryption'], content: ['aes-256-cbc'] })
    expect(decrypt(raw, 'bob').stdout.toString()).toBe(ENTITY)
  })

  it('signs, then encrypts: the decrypted entity is a signature openssl verifies', async () => {
    const { sink, t } = await setup([
      smimeSign({ certificates: { 'alice@example.com': credentials('alice') } }),
      smimeEncrypt({ certificates: CERTIFICATES }),
    ])
    await send(t, ['bob@example.org'])
    const [message] = await sink.waitForMessages(1)
    const inner = decrypt(message!.raw, 'bob').stdout
    expect(inner.toString()).toMatch(/^Content-Type: multipart\/signed; protocol="application\/pkcs7-signature"; micalg=sha-256;\r\n\tboundary=/)
    const result = verify(inner)
    expect(result.stderr).toBe('CMS Verification successful\n')
    expect(result.stdout.toString()).toBe(ENTITY)
  })

  it("'reject': refuses a recipient without a certificate at RCPT with 554 5.7.1 and encrypts for the others", async () => {
    const { sink, t } = await setup([smimeEncrypt({ certificates: CERTIFICATES })])
    const info = await send(t, ['bob@example.org', 'dave@example.org'])
    expect(info.rejected).toEqual(['dave@example.org'])
    expect((info.rejectedErrors as Array<{ response: string }>)[0]!.response).toBe('554 5.7.1 Cannot encrypt for this recipient')
    const [message] = await sink.waitForMessages(1)
    expect(message!.rcptTo).toEqual(['bob@example.org'])
    expect(decrypt(message!.raw, 'bob').stdout.toString()).toBe(ENTITY)
  })

  it("'reject': refuses the message at DATA with 554 5.7.1 when the lookup could only answer then", async () => {
    let asked = 0
    const lookup: SmimeEncryptOptions['certificates'] = (address) => {
      if (address === 'dave@example.org' && asked++ === 0) throw new Error('directory busy')
      return CERTIFICATES[address as keyof typeof CERTIFICATES] ?? null
    }
    const { sink, t } = await setup([smimeEncrypt({ certificates: lookup })])
    const err = await refusal(send(t, ['bob@example.org', 'dave@example.org']))
    expect(err.response).toBe('554 5.7.1 Cannot encrypt for every recipient')
    expect(asked).toBe(2)
    expect(sink.messages).toHaveLength(0)
  })

  it('answers 451 4.3.0 when the lookup fails at DATA', async () => {
    const failing = smimeEncrypt({ certificates: () => Promise.reject(new Error('LDAP down')) })
    const { sink, t } = await setup([failing])
    const err = await refusal(send(t, ['bob@example.org']))
    expect(err.response).toBe('451 4.3.0 Temporary local problem, please try again later')
    expect(sink.messages).toHaveLength(0)
  })

  it("'skip': encrypts for the recipients with a certificate and reports the other to the sender (250, then a DSN)", async () => {
    const { sink, t } = await setup([smimeEncrypt({ certificates: CERTIFICATES, withoutCertificate: 'skip' })])
    const info = await send(t, ['bob@example.org', 'dave@example.org'])
    expect(info.response).toMatch(/^250 2\.0\.0 /)
    expect(info.accepted).toEqual(['bob@example.org', 'dave@example.org'])
    const [encrypted, dsn] = await sink.waitForMessages(2)
    expect(encrypted!.rcptTo).toEqual(['bob@example.org'])
    expect(decrypt(encrypted!.raw, 'bob').stdout.toString()).toBe(ENTITY)
    expect(dsn!.mailFrom).toBe('')
    expect(dsn!.rcptTo).toEqual(['alice@example.com'])
    expect(dsn!.raw.toString()).toContain('Final-Recipient: rfc822; dave@example.org\r\nAction: failed\r\nStatus: 5.7.1\r\n')
    expect(dsn!.raw.toString()).toContain('Diagnostic-Code: smtp; 554 5.7.1 Cannot encrypt for this recipient')
  })

  it("'send-unencrypted': sends the recipient without a certificate its own copy in clear", async () => {
    const { sink, t } = await setup([smimeEncrypt({ certificates: CERTIFICATES, withoutCertificate: 'send-unencrypted' })])
    await send(t, ['bob@example.org', 'dave@example.org', 'carol@example.org'])
    const [encrypted, clear] = await sink.waitForMessages(2)
    expect(encrypted!.rcptTo).toEqual(['bob@example.org', 'carol@example.org'])
    expect(structure(encrypted!.raw).recipients).toBe(2)
    expect(decrypt(encrypted!.raw, 'carol').stdout.toString()).toBe(ENTITY)
    expect(clear!.rcptTo).toEqual(['dave@example.org'])
    expect(clear!.raw.toString()).toMatch(
      /\r\nSubject: Results\r\nMIME-Version: 1.0\r\nContent-Type: text\/plain; charset=utf-8\r\n\r\nThe diagnosis is attached.\r\n$/,
    )
  })

  it(
    'signs and encrypts a 50 MB message holding under 64 MB more memory, and openssl decrypts and verifies it',
    async () => {
      const MiB = 1024 * 1024
      const head = 'From: alice@example.com\r\nTo: bob@example.org\r\nSubject: big\r\nContent-Type: text/plain\r\n\r\n'
      const expected = createHash('sha256').update('Content-Type: text/plain\r\n\r\n')
      let skip = head.length
      for await (const chunk of bigMessage(50 * MiB, head)) {
        expected.update(chunk.subarray(skip))
        skip = Math.max(0, skip - chunk.length)
      }
      const sink = await startSink()
      const relay = await startMeasuredRelay(sink.port, 'smime')
      const dir = await mkdtemp(join(tmpdir(), 'relaychain-smime-'))
      afterTest(
        () => sink.close(),
        () => relay.stop(),
        () => rm(dir, { recursive: true, force: true }),
      )
      const client = createTransport({ host: '127.0.0.1', port: relay.port, ignoreTLS: true })
      const envelope = { from: 'alice@example.com', to: ['bob@example.org'] }
      await client.sendMail({ envelope, raw: `${head}warm-up\r\n` })
      await relay.mark()
      await client.sendMail({ envelope, raw: bigMessage(50 * MiB, head) })
      const growth = await relay.growth()
      client.close()
      const [, big] = await sink.waitForMessages(2)
      console.log(
        `S/MIME relay live memory growth ${growth.live.toFixed(1)} MiB, peak RSS growth ${growth.rss.toFixed(1)} MiB for a 50 MiB message (${(big!.size / MiB).toFixed(1)} MiB out)`,
      )
      expect(growth.live).toBeLessThan(64)
      await writeFile(join(dir, 'message.eml'), big!.raw)
      const decrypted = openssl([
        'cms',
        '-decrypt',
        '-in',
        join(dir, 'message.eml'),
        '-recip',
        `${FIXTURES}bob.pem`,
        '-inkey',
        `${FIXTURES}bob.key`,
        '-out',
        join(dir, 'signed.eml'),
      ])
      expect(decrypted.stderr).toBe('')
      const verified = openssl(['cms', '-verify', '-in', join(dir, 'signed.eml'), '-CAfile', `${FIXTURES}root.pem`, '-out', join(dir, 'content')])
      expect(verified.stderr).toBe('CMS Verification successful\n')
      expect(
        createHash('sha256')
          .update(await readFile(join(dir, 'content')))
          .digest('hex'),
      ).toBe(expected.digest('hex'))
    },
    BIG_MESSAGE_TIMEOUT,
  )
})

describe('smime-encrypt without a relay', () => {
  it('treats a certificate from the lookup that has expired as none: 554 5.7.1 at DATA', async () => {
    const stage = smimeEncrypt({ certificates: () => fixture('expired.pem') })
    const err = await runStage(stage, await testMessage({ eml: RAW, to: ['bob@example.org'] })).catch((e: unknown) => e)
    expect((err as SmtpError).toReply()).toBe('554 5.7.1 Cannot encrypt for every recipient')
    expect((err as SmtpError).reason).toBe('no usable S/MIME certificate for bob@example.org')
  })

  it('answers 451 4.3.0 when the lookup returns something that is not an RSA certificate', async () => {
    const err = await runStage(smimeEncrypt({ certificates: () => fixture('erin.pem') }), await testMessage({ to: ['erin@example.com'] })).catch(
      (e: unknown) => e,
    )
    expect((err as SmtpError).toReply()).toBe('451 4.3.0 Temporary local problem, please try again later')
    expect((err as SmtpError).reason).toBe('S/MIME certificate lookup failed for erin@example.com')
  })
})

describe('smime-encrypt configuration, checked when the chain is built', () => {
  const build = (options: SmimeEncryptOptions) => {
    const err = relayError(() => smimeEncrypt(options))
    return `${err.code}: ${err.message}`
  }

  it('refuses a map entry that is not a current RSA certificate, and unknown options', () => {
    expect(build({ certificates: { 'bob@example.org': 'bob' } })).toBe(
      'ERR_RELAY_INVALID_OPTION: smime-encrypt certificate for bob@example.org: not a certificate (PEM or DER)',
    )
    expect(build({ certificates: { 'erin@example.com': fixture('erin.pem') } })).toBe(
      'ERR_RELAY_INVALID_OPTION: smime-encrypt certificate for erin@example.com: only RSA certificates can be encrypted for',
    )
    expect(build({ certificates: { 'example.com': fixture('expired.pem') } })).toMatch(
      /^ERR_RELAY_INVALID_OPTION: smime-encrypt certificate for example.com: certificate is not valid now/,
    )
    expect(build({ certificates: { 'not an address': fixture('bob.pem') } })).toBe(
      'ERR_RELAY_INVALID_OPTION: "not an address" is neither an address nor a domain',
    )
    expect(build({ certificates: CERTIFICATES, withoutCertificate: 'maybe' as never })).toMatch(/^ERR_RELAY_INVALID_OPTION: /)
    expect(build({ certificates: CERTIFICATES, keyTransport: 'rsa-pss' as never })).toMatch(/^ERR_RELAY_INVALID_OPTION: /)
    expect(() => smimeEncrypt({ certificates: CERTIFICATES })).not.toThrow()
  })
})

describe('S/MIME stages in the chain order lint', () => {
  const ALICE = { certificates: { 'alice@example.com': credentials('alice') } }
  const dkim: Stage = { name: 'dkim', modifies: 'trace', seals: 'message', data: (_m, next) => next() }
  const footer: Stage = { name: 'footer', modifies: 'body', data: (_m, next) => next() }
  const encrypt = () => smimeEncrypt({ certificates: { 'bob@example.org': fixture('bob.pem') } })

  it('accepts sign, then encrypt, then DKIM', () => {
    expect(() => createPipeline({ stages: [footer, smimeSign(ALICE), encrypt(), dkim], transport: memoryTransport() })).not.toThrow()
  })

  it('refuses a body change after S/MIME signing, and S/MIME after DKIM', () => {
    expect(relayError(() => createPipeline({ stages: [smimeSign(ALICE), footer], transport: memoryTransport() })).message).toBe(
      '"footer" modifies the message (body) after "smime-sign" sealed its body; move it before "smime-sign"',
    )
    expect(relayError(() => createPipeline({ stages: [dkim, smimeSign(ALICE)], transport: memoryTransport() })).code).toBe('ERR_RELAY_UNSAFE_ORDER')
    expect(relayError(() => createPipeline({ stages: [smimeSign(ALICE), dkim, encrypt()], transport: memoryTransport() })).message).toBe(
      '"smime-encrypt" modifies the message (body) after "dkim" sealed its message; move it before "dkim"',
    )
  })
})
