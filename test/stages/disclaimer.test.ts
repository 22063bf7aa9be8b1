import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { simpleParser } from 'mailparser'
import { createTransport } from 'nodemailer'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createPipeline, SmtpError, type Stage, smtpTransport } from '../../src/index.js'
import { type DisclaimerOptions, disclaimer } from '../../src/stages/disclaimer.js'
import { memoryTransport, runStage, startSink, testMessage } from '../../src/testing/index.js'
import { fixture, hasBareLineEnding, longestLine, type ParsedPart, PYTHON, parseMime } from '../helpers/mime.js'
import { havePeer } from '../helpers/peers.js'
import { RawSmtp } from '../helpers/raw-smtp.js'
import { allowAll, relayError, startRelay } from '../helpers/relay.js'

const TEXT = 'Confidential – Société Example GmbH.\n<Do not forward> & keep it safe.'
/** TEXT as a decoder shows it. */
const PLAIN = TEXT
const HTML = '<div class="disclaimer">Confidential &#8211; Soci&#233;t&#233; Example GmbH.<br>\n&lt;Do not forward&gt; &amp; keep it safe.</div>'

async function apply(options: DisclaimerOptions, eml: Buffer | string, from: string | null = 'ann@example.com'): Promise<Buffer> {
  const transport = memoryTransport()
  await runStage(disclaimer(options), await testMessage({ from, eml }), transport)
  return transport.messages[0]!.raw
}

const python = havePeer(PYTHON, 'apt-get install -y python3')

/** For each fixture: the paths of the body text parts that must end with the disclaimer. */
const CORPUS: Record<string, string[]> = {
  'plain-ascii.eml': ['1'],
  'thunderbird-alternative.eml': ['1.1', '1.2'],
  'outlook-related.eml': ['1.1.1.1', '1.1.1.2'],
  'gmail-mixed.eml': ['1.1.1', '1.1.2'],
  'latin1-qp.eml': ['1'],
  'base64-text.eml': ['1'],
  'html-fragment.eml': ['1'],
  'apple-inline.eml': ['1.1', '1.3'],
  'forwarded-rfc822.eml': ['1.1'],
  'attachment-only.eml': ['1.2'],
  'pdf-single.eml': ['1.2'],
}

describe.runIf(python)('disclaimer on a corpus of real-world MIME shapes (checked with Python email)', () => {
  const before: Record<string, ParsedPart[]> = {}
  const after: Record<string, ParsedPart[]> = {}
  const raw: Record<string, Buffer> = {}

  beforeAll(async () => {
    const inputs = Object.fromEntries(Object.keys(CORPUS).map((name) => [name, fixture(name)]))
    for (const name of Object.keys(CORPUS)) raw[name] = await apply({ text: TEXT }, inputs[name]!)
    Object.assign(before, parseMime(inputs))
    Object.assign(after, parseMime(raw))
  })

  it.each(Object.keys(CORPUS))('%s: body text parts end with the disclaimer, everything else decodes to the same bytes', (name) => {
    const out = after[name]!
    expect(out.flatMap((p) => p.defects)).toEqual([])
    for (const part of out) {
      if (CORPUS[name]!.includes(part.path)) {
        const original = before[name]!.find((p) => p.path === part.path && p.type === part.type)
        const text = part.text!
        const was = original?.text ?? ''
        if (part.type === 'text/html') {
          // Before </body> on lines of its own, or appended.
          const without = text.includes(`\n${HTML}\n`) ? text.replace(`\n${HTML}\n`, '') : text.replace(HTML, '')
          expect(without.replace(/\n+$/, '')).toBe(was.replace(/\n+$/, ''))
        } else {
          const lines = was.endsWith('\n') ? was : `${was}\n`
          expect(text.replace(/\n$/, '')).toBe(original ? `${lines}\n${PLAIN}` : PLAIN)
        }
      } else if (part.sha256) {
        // Attachments, inline images, the forwarded message: decoded bytes unchanged.
        const original = before[name]!.find((p) => p.sha256 === part.sha256)
        expect(original, `${name} ${part.path} ${part.type} changed`).toBeDefined()
      }
    }
    expect(hasBareLineEnding(raw[name]!)).toBe(false)
    expect(longestLine(raw[name]!)).toBeLessThanOrEqual(998)
    expect(raw[name]!.toString('latin1')).toMatch(/^X-Disclaimer: added\r\n/)
  })

  it('keeps attachments byte for byte in the raw message, not only decoded', () => {
    for (const name of ['outlook-related.eml', 'gmail-mixed.eml', 'apple-inline.eml', 'attachment-only.eml']) {
      const blocks = fixture(name)
        .toString('latin1')
        .match(/(?:^[A-Za-z0-9+/=]{60,}\r\n)+/gm)!
      expect(blocks.length).toBeGreaterThan(0)
      for (const block of blocks) expect(raw[name]!.toString('latin1')).toContain(block)
    }
  })

  it("keeps each part's transfer encoding, and its charset where it can hold the text", () => {
    const cte = (name: string, path: string) => after[name]!.find((p) => p.path === path)
    expect(cte('gmail-mixed.eml', '1.1.2')).toMatchObject({ cte: 'base64', charset: 'utf-8' })
    expect(cte('base64-text.eml', '1')).toMatchObject({ cte: 'base64', charset: 'utf-8' })
    expect(cte('html-fragment.eml', '1')).toMatchObject({ cte: '8bit', charset: 'iso-8859-1' })
    expect(cte('thunderbird-alternative.eml', '1.1')).toMatchObject({ cte: '8bit', charset: 'utf-8' })
    // Latin-1 cannot hold the en dash: the part becomes UTF-8, still quoted-printable.
    expect(cte('latin1-qp.eml', '1')).toMatchObject({ cte: 'quoted-printable', charset: 'utf-8' })
    expect(after['latin1-qp.eml']![0]!.text).toContain('le café est prêt. À bientôt !')
  })

  it('leaves an attached message/rfc822 untouched', () => {
    const inner = after['forwarded-rfc822.eml']!.find((p) => p.path === '1.2.1')!
    expect(inner.text).toBe('The original text.\n')
  })

  it('wraps a single non-text part into multipart/mixed with a text part of its own', () => {
    expect(after['pdf-single.eml']!.map((p) => p.type)).toEqual(['multipart/mixed', 'application/pdf', 'text/plain'])
    expect(after['pdf-single.eml']![1]!.filename).toBe('scan.pdf')
    expect(after['attachment-only.eml']!.map((p) => p.type)).toEqual(['multipart/mixed', 'application/pdf', 'text/plain'])
  })
})

describe('disclaimer', () => {
  it('appends to a latin-1 quoted-printable part in latin-1 when it can, keeping the encoded lines as they were', async () => {
    const input = fixture('latin1-qp.eml')
    const out = (await apply({ text: 'Société Example' }, input)).toString('latin1')
    const body = input.toString('latin1').split('\r\n\r\n').slice(1).join('\r\n\r\n')
    expect(out).toContain(`Content-Type: text/plain; charset=ISO-8859-1\r\n`)
    expect(out.endsWith(`${body}\r\nSoci=E9t=E9 Example\r\n`)).toBe(true)
  })

  it('appends plain ASCII to a 7bit part without re-encoding anything', async () => {
    const input = fixture('plain-ascii.eml')
    const out = await apply({ text: 'Sent via Example.' }, input)
    expect(out.toString()).toBe(`X-Disclaimer: added\r\n${input.toString()}\r\nSent via Example.\r\n`)
  })

  it('is idempotent: a message relayed twice gets one disclaimer', async () => {
    const once = await apply({ text: TEXT }, fixture('gmail-mixed.eml'))
    const twice = await apply({ text: TEXT }, once)
    expect(twice.equals(once)).toBe(true)
  })

  it('never touches a signed or an encrypted message', async () => {
    for (const name of ['smime-signed.eml', 'smime-encrypted.eml']) {
      const input = fixture(name)
      expect((await apply({ text: TEXT }, input)).equals(input)).toBe(true)
    }
  })

  it('leaves a signed part inside multipart/mixed byte for byte, and edits the text beside it', async () => {
    const signed = fixture('smime-signed.eml').toString('latin1')
    const entity = signed.slice(signed.indexOf('Content-Type: multipart/signed'))
    const eml = `Content-Type: multipart/mixed; boundary="outer"\r\n\r\n--outer\r\nContent-Type: text/plain\r\n\r\nSee the signed part.\r\n--outer\r\n${entity}\r\n--outer--\r\n`
    const out = (await apply({ text: 'Footer.' }, Buffer.from(eml, 'latin1'))).toString('latin1')
    expect(out).toContain(`See the signed part.\r\n\r\nFooter.\r\n--outer\r\n${entity}\r\n--outer--\r\n`)
  })

  it.runIf(havePeer('openssl', 'apt-get install -y openssl'))('leaves an S/MIME signature that openssl still verifies', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'relaychain-smime-'))
    try {
      writeFileSync(join(dir, 'out.eml'), await apply({ text: TEXT }, fixture('smime-signed.eml')))
      const run = spawnSync('openssl', ['smime', '-verify', '-noverify', '-in', join(dir, 'out.eml'), '-out', '/dev/null'], { encoding: 'utf8' })
      expect(run.stderr.trim()).toBe('Verification successful')
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it("chooses the disclaimer by the envelope sender's domain", async () => {
    const options: DisclaimerOptions = { text: 'Default footer.', domains: { 'sub.example': { text: 'Sub footer.' }, 'quiet.example': false } }
    const eml = fixture('plain-ascii.eml')
    expect((await apply(options, eml, 'ann@SUB.example')).toString()).toMatch(/\r\n\r\nSub footer\.\r\n$/)
    expect((await apply(options, eml, 'ann@example.com')).toString()).toMatch(/\r\n\r\nDefault footer\.\r\n$/)
    expect((await apply(options, eml, 'ann@quiet.example')).equals(eml)).toBe(true)
    expect((await apply(options, eml, null)).equals(eml)).toBe(true)
    expect((await apply({ domains: { 'sub.example': { text: 'Sub footer.' } } }, eml, 'ann@example.com')).equals(eml)).toBe(true)
  })

  it('chooses the disclaimer with select() when given', async () => {
    const stage = disclaimer({ select: (msg) => (msg.session.user === 'ann' ? { text: "Ann's footer." } : undefined) })
    for (const user of ['ann', 'bob']) {
      const transport = memoryTransport()
      await runStage(stage, await testMessage({ eml: fixture('plain-ascii.eml'), session: { user } }), transport)
      expect(transport.messages[0]!.raw.toString().endsWith("\r\n\r\nAnn's footer.\r\n")).toBe(user === 'ann')
    }
  })

  it('inserts HTML given as is before </body>, case-insensitively', async () => {
    const eml = 'Content-Type: text/html; charset=utf-8\r\n\r\n<html><BODY><p>Hi</p></Body></html>\r\n'
    const out = await apply({ text: 'x', html: '<p style="color:grey">Ünternehmen</p>' }, eml)
    expect(out.toString()).toBe(
      'X-Disclaimer: added\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><BODY><p>Hi</p>\r\n<p style="color:grey">&#220;nternehmen</p>\r\n</Body></html>\r\n',
    )
  })

  it('refuses with 554 5.6.0 a message whose MIME structure exceeds the parser limits', async () => {
    const eml = `Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nX-Long: ${'a'.repeat(1100 * 1024)}\r\n\r\nx\r\n--b--\r\n`
    const err = (await apply({ text: TEXT }, eml).catch((e: unknown) => e)) as SmtpError
    expect(err).toBeInstanceOf(SmtpError)
    expect(err.toReply()).toBe('554 5.6.0 Message structure not supported')
  })

  it('throws ERR_RELAY_INVALID_OPTION when built without a disclaimer text', () => {
    for (const options of [{}, { text: '  ' }, { domains: { 'a.example': { text: '' } } }] as DisclaimerOptions[]) {
      expect(() => disclaimer(options)).toThrow(expect.objectContaining({ code: 'ERR_RELAY_INVALID_OPTION' }))
    }
  })

  it('is refused after a signer by the pipeline order lint (ERR_RELAY_UNSAFE_ORDER)', () => {
    const dkim: Stage = { name: 'dkim-sign', seals: 'message' }
    expect(relayError(() => createPipeline({ stages: [dkim, disclaimer({ text: TEXT })], transport: memoryTransport() })).code).toBe(
      'ERR_RELAY_UNSAFE_ORDER',
    )
  })
})

describe('disclaimer in a relay', () => {
  let sink: Awaited<ReturnType<typeof startSink>>
  let relay: Awaited<ReturnType<typeof startRelay>>
  beforeAll(async () => {
    sink = await startSink()
    relay = await startRelay({ stages: [allowAll, disclaimer({ text: TEXT })], transport: smtpTransport({ host: sink.host, port: sink.port }) })
  })
  afterAll(async () => {
    await relay.close()
    await sink.close()
  })

  it('relays a nodemailer message with a 3 MB attachment: text and HTML get the disclaimer, the attachment is identical', async () => {
    const attachment = createHash('sha512').update('seed').digest().toString('hex').repeat(24_000)
    const info = await relay.client().sendMail({
      from: 'ann@example.com',
      to: 'bob@example.org',
      subject: 'Quarterly figures',
      text: 'Figures attached.',
      html: '<html><body><p>Figures attached.</p></body></html>',
      attachments: [{ filename: 'figures.bin', content: Buffer.from(attachment, 'hex') }],
    })
    expect(info.response).toMatch(/^250 2\.0\.0 /)
    const [message] = await sink.waitForMessages(1)
    const parsed = await simpleParser(message!.raw)
    expect(parsed.text).toBe(`Figures attached.\n\n${PLAIN}`)
    expect(String(parsed.html).replace(/\r\n/g, '\n')).toBe(`<html><body><p>Figures attached.</p>\n${HTML}\n</body></html>`)
    expect(createHash('sha256').update(parsed.attachments[0]!.content).digest('hex')).toBe(
      createHash('sha256').update(Buffer.from(attachment, 'hex')).digest('hex'),
    )
    expect(hasBareLineEnding(message!.raw)).toBe(false)
  })

  it('abandons a multipart message whose client disconnects mid-attachment, and delivers nothing', async () => {
    const t = await startRelay({ stages: [allowAll, disclaimer({ text: TEXT })], transport: smtpTransport({ host: sink.host, port: sink.port }) })
    const { client } = await RawSmtp.connect(t.port)
    expect(await client.startMessage('ann@example.com', ['bob@example.org'])).toMatch(/^354/)
    const eml = fixture('gmail-mixed.eml')
    client.write(eml.subarray(0, eml.length - 2000))
    client.write(`${'QUFBQUFB'.repeat(9)}AAAA\r\n`.repeat(20_000))
    client.close()
    const before = sink.messages.length
    const started = performance.now()
    await t.close()
    expect(performance.now() - started).toBeLessThan(2000)
    expect(sink.messages.length).toBe(before)
  })

  it('passes a client message it cannot change through unchanged (createTransport over the relay)', async () => {
    const client = createTransport({ host: '127.0.0.1', port: relay.port, ignoreTLS: true })
    try {
      const raw = fixture('smime-signed.eml')
      await client.sendMail({ envelope: { from: 'ann@example.com', to: ['bob@example.org'] }, raw })
      const messages = await sink.waitForMessages(2)
      expect(messages[1]!.raw.toString('latin1').replace(/^Received: [^\r]*\r\n(?:\t[^\r]*\r\n)*/, '')).toBe(raw.toString('latin1'))
    } finally {
      client.close()
    }
  })
})
