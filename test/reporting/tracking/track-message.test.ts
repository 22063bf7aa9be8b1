/**
 * trackMessage over whole messages: body text parts are tracked (indices run on across parts,
 * one pixel), everything else comes out byte for byte, and mailparser (an independent MIME
 * parser) reads the result.
 */

import libqp from 'libqp'
import { simpleParser } from 'mailparser'
import { describe, expect, it } from 'vitest'
import { type MimePartResult, trackMessage } from '../../../src/reporting/tracking/index.js'

const T = ({ index }: { index: number }) => `https://t.example/c/${index}`
const PIXEL = 'https://t.example/o/1'

async function run(eml: string | Buffer, options: Parameters<typeof trackMessage>[0]): Promise<Buffer> {
  const chunks: Buffer[] = []
  const input = Buffer.from(eml)
  // Small chunks, so that parts and boundaries straddle them.
  async function* source() {
    for (let at = 0; at < input.length; at += 97) yield input.subarray(at, at + 97)
  }
  for await (const chunk of trackMessage(options)(source())) chunks.push(chunk)
  return Buffer.concat(chunks)
}

const pdf = Buffer.from('%PDF-1.4 https://inside.example/not-a-link '.repeat(20)).toString('base64').replace(/.{76}/g, '$&\r\n')
const html = '<html><body><p>Hi</p><a href="https://shop.example/a?x=1&amp;y=2">Shop</a> <a href="mailto:a@example.com">m</a></body></html>'
const MIXED = [
  'From: a@example.com',
  'To: b@example.org',
  'Subject: t',
  'MIME-Version: 1.0',
  'Content-Type: multipart/mixed; boundary="m"',
  '',
  'preamble',
  '--m',
  'Content-Type: multipart/alternative; boundary="a"',
  '',
  '--a',
  'Content-Type: text/plain; charset=utf-8',
  'Content-Transfer-Encoding: quoted-printable',
  '',
  'See https://shop.example/a?x=3D1.',
  '',
  '--a',
  'Content-Type: text/html; charset=utf-8',
  'Content-Transfer-Encoding: quoted-printable',
  '',
  libqp.wrap(libqp.encode(Buffer.from(html)), 76),
  '--a--',
  '',
  '--m',
  'Content-Type: application/pdf; name="x.pdf"',
  'Content-Disposition: attachment; filename="x.pdf"',
  'Content-Transfer-Encoding: base64',
  '',
  pdf,
  '--m--',
  'epilogue',
  '',
].join('\r\n')

describe('trackMessage', () => {
  it('tracks the text and HTML parts with message-wide indices and one pixel, and leaves the rest byte for byte', async () => {
    const parts: MimePartResult[] = []
    const out = await run(MIXED, { rewrite: T, pixel: PIXEL, text: true, onPart: (p) => parts.push(p) })
    expect(parts.map((p) => p.links.map((l) => [l.index, l.url]))).toEqual([
      [[0, 'https://shop.example/a?x=1']],
      [[1, 'https://shop.example/a?x=1&y=2']],
    ])
    const text = out.toString('latin1')
    expect(text.slice(0, text.indexOf('See '))).toBe(MIXED.slice(0, MIXED.indexOf('See ')))
    expect(text.slice(text.indexOf('\r\n--a--'))).toBe(MIXED.slice(MIXED.indexOf('\r\n--a--')))
    const mail = await simpleParser(out)
    expect(mail.text?.trim()).toBe('See https://t.example/c/0.')
    expect(mail.html).toContain('<a href="https://t.example/c/1">Shop</a> <a href="mailto:a@example.com">m</a>')
    expect((mail.html as string).match(/t\.example\/o\/1/g)).toHaveLength(1)
    expect(mail.attachments[0]!.content.toString()).toContain('https://inside.example/not-a-link')
  })

  it('leaves text/plain alone unless asked, and signed messages entirely', async () => {
    const out = await run(MIXED, { rewrite: T })
    expect(out.toString('latin1')).toContain('See https://shop.example/a?x=3D1.')
    const signed = MIXED.replace('multipart/mixed; boundary="m"', 'multipart/signed; protocol="application/pgp-signature"; boundary="m"')
    expect((await run(signed, { rewrite: T, pixel: PIXEL, text: true })).equals(Buffer.from(signed))).toBe(true)
  })

  it('switches a single-part 7bit message to quoted-printable in the message header when a line grows past 998', async () => {
    const eml = `Subject: t\r\nContent-Type: text/html\r\n\r\n<p>${'x'.repeat(980)}<a href="https://a.example/">x</a></p>\r\n`
    const out = (await run(eml, { rewrite: (l) => `https://t.example/c/${l.index}/${'t'.repeat(40)}` })).toString('latin1')
    const head = out.slice(0, out.indexOf('\r\n\r\n') + 2)
    expect(head.split('\r\n').filter(Boolean).sort()).toEqual([
      'Content-Transfer-Encoding: quoted-printable',
      'Content-Type: text/html',
      'Subject: t',
    ])
    const mail = await simpleParser(out)
    expect(mail.html).toContain(`href="https://t.example/c/0/${'t'.repeat(40)}"`)
  })

  it('passes a part larger than maxPartSize through untouched', async () => {
    expect((await run(MIXED, { rewrite: T, maxPartSize: 100 })).equals(Buffer.from(MIXED))).toBe(true)
  })
})
