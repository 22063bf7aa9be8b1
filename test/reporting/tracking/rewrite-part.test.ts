/**
 * rewriteMimePart: transfer encodings kept (or switched to quoted-printable, and said so),
 * charsets decoded right and bytes outside the new values kept, parts left alone when they cannot
 * be handled; plain-text link tracking; the quoted-printable and base64 codecs themselves.
 */
import iconv from 'iconv-lite'
import libqp from 'libqp'
import { describe, expect, it } from 'vitest'
import {
  decodeBase64,
  decodeQuotedPrintable,
  encodeBase64,
  encodeQuotedPrintable,
  type LinkInfo,
  rewriteMimePart,
  rewriteText,
} from '../../../src/reporting/tracking/index.js'

const T = (link: LinkInfo) => `https://t.example/c/${link.index}`
const html = (body: string) => `<html>\r\n<body>\r\n${body}\r\n</body>\r\n</html>\r\n`

describe('rewriteMimePart', () => {
  it('keeps 7bit when the rewritten part is still 7-bit clean with short lines', () => {
    const body = Buffer.from(html('<a href="https://shop.example/">Shop</a>'))
    const result = rewriteMimePart(body, { transferEncoding: '7bit', charset: 'us-ascii' }, { rewrite: T })
    expect(result).toMatchObject({ transferEncoding: '7bit', encodingChanged: false, changed: true, notes: [] })
    expect(result.body.toString()).toBe(html('<a href="https://t.example/c/0">Shop</a>'))
  })

  it('switches 7bit to quoted-printable when a new URL pushes a line past 998 octets, and says so', () => {
    const body = Buffer.from(html(`<a href="https://shop.example/">${'x'.repeat(960)}</a>`))
    const result = rewriteMimePart(body, { transferEncoding: '7bit' }, { rewrite: (l) => `https://t.example/c/${l.index}/${'t'.repeat(60)}` })
    expect(result).toMatchObject({ transferEncoding: 'quoted-printable', encodingChanged: true })
    expect(result.notes.join()).toMatch(/7bit cannot carry a line of \d+ octets: re-encoded as quoted-printable/)
    expect(libqp.decode(result.body.toString('latin1')).toString()).toContain(`href="https://t.example/c/0/${'t'.repeat(60)}"`)
    for (const line of result.body.toString().split('\r\n')) expect(line.length).toBeLessThanOrEqual(76)
  })

  it('re-encodes only the quoted-printable lines that changed and keeps the sender’s other lines', () => {
    // A sender's encoding with choices of its own: lower-case hex, short soft-broken lines.
    const lines = [
      '<html><body>=',
      '<p>caf=c3=a9</p>',
      '<p>intro =',
      'text</p>',
      '<a href=3D"https://shop.example/?a=3D1&amp;b=3D2">Shop</a>',
      '<p>=E2=82=AC tail</p>',
      '</body></html>',
    ]
    const body = Buffer.from(`${lines.join('\r\n')}\r\n`)
    const result = rewriteMimePart(body, { transferEncoding: 'quoted-printable', charset: 'utf-8' }, { rewrite: T, pixel: 'https://t.example/o/1' })
    expect(result.links.map((l) => l.url)).toEqual(['https://shop.example/?a=1&b=2'])
    const out = result.body.toString('latin1').split('\r\n')
    expect(out.slice(0, 4)).toEqual(lines.slice(0, 4))
    expect(out[4]).toBe('<a href=3D"https://t.example/c/0">Shop</a>')
    expect(out[5]).toBe(lines[5])
    expect(libqp.decode(result.body.toString('latin1')).toString()).toBe(
      `<html><body><p>café</p>\r\n<p>intro text</p>\r\n<a href="https://t.example/c/0">Shop</a>\r\n<p>€ tail</p>\r\n<img src="https://t.example/o/1" width="1" height="1" alt="" border="0" style="display:block;width:1px;height:1px;border:0;margin:0;padding:0"></body></html>\r\n`,
    )
    for (const line of out) expect(line.length).toBeLessThanOrEqual(76)
  })

  it('switches 7bit to quoted-printable when a new URL brings 8-bit octets', () => {
    const result = rewriteMimePart(
      Buffer.from(html('<a href="https://shop.example/">x</a>')),
      { transferEncoding: '7bit', charset: 'utf-8' },
      { rewrite: () => 'https://t.example/café' },
    )
    expect(result.transferEncoding).toBe('quoted-printable')
    expect(result.notes.join()).toMatch(/8-bit octets/)
    expect(result.body.toString()).toContain('https://t.example/caf=C3=A9')
  })

  it('keeps 8bit UTF-8 bytes outside the new value, invalid sequences included', () => {
    const body = Buffer.concat([
      Buffer.from('<p>caf\u00e9 \xff\xfe</p>'.replace(/\u00e9/, 'é'), 'utf8'),
      Buffer.from([0xc3, 0x28]),
      Buffer.from('<a href="https://a.example/é">x</a>\r\n'),
    ])
    const result = rewriteMimePart(body, { transferEncoding: '8bit', charset: 'utf-8' }, { rewrite: T })
    expect(result.links[0]!.url).toBe('https://a.example/é')
    const tail = Buffer.from('<a href="https://t.example/c/0">x</a>\r\n')
    expect(result.body.equals(Buffer.concat([body.subarray(0, body.indexOf('<a href')), tail]))).toBe(true)
  })

  it('decodes an ISO-8859-1 href for rewrite and keeps every Latin-1 byte', () => {
    const body = iconv.encode(
      html('<p>Soldes d\u2019été</p><a href="http://boutique.example/café?q=été">Café</a>').replace('\u2019', "'"),
      'iso-8859-1',
    )
    const result = rewriteMimePart(body, { transferEncoding: '8bit', charset: 'ISO-8859-1' }, { rewrite: T })
    expect(result.links.map((l) => [l.url, l.text])).toEqual([['http://boutique.example/café?q=été', 'Café']])
    expect(iconv.decode(result.body, 'iso-8859-1')).toBe(
      iconv.decode(body, 'iso-8859-1').replace('http://boutique.example/café?q=été', 'https://t.example/c/0'),
    )
  })

  it('writes characters the charset lacks as character references, and notes it', () => {
    const body = iconv.encode(html('<a href="http://a.example/">x</a>'), 'iso-8859-1')
    const result = rewriteMimePart(body, { transferEncoding: '8bit', charset: 'iso-8859-1' }, { rewrite: () => 'https://t.example/€/é' })
    expect(result.body.toString('latin1')).toContain('href="https://t.example/&#x20ac;/&#xe9;"')
    expect(result.notes.join()).toMatch(/lacks characters .* character references/)
  })

  it('keeps base64 with 76-character lines and the final line break', () => {
    const content = Buffer.from(html(`${'<p>filler</p>'.repeat(40)}<a href="https://a.example/">x</a>`))
    const body = Buffer.from(`${content.toString('base64').replace(/.{72}/g, '$&\r\n')}\r\n`)
    const result = rewriteMimePart(body, { transferEncoding: 'BASE64', charset: 'utf-8' }, { rewrite: T })
    expect(result.transferEncoding).toBe('base64')
    expect(decodeBase64(result.body).toString()).toBe(content.toString().replace('https://a.example/', 'https://t.example/c/0'))
    const lines = result.body.toString().split('\r\n')
    expect(lines.at(-1)).toBe('')
    expect(lines.slice(0, -2).every((l) => l.length === 76)).toBe(true)
  })

  it('rewrites a UTF-16 part by decoding it whole, and encodes it back', () => {
    const body = iconv.encode(html('<a href="https://a.example/">ü</a>'), 'utf-16le')
    const result = rewriteMimePart(body, { transferEncoding: 'binary', charset: 'utf-16le' }, { rewrite: T })
    expect(iconv.decode(result.body, 'utf-16le')).toBe(html('<a href="https://t.example/c/0">ü</a>'))
  })

  it('returns the same bytes when nothing is rewritten, and leaves parts it cannot handle with a note', () => {
    const body = Buffer.from(html('<a href="mailto:a@example.com">m</a>'))
    expect(rewriteMimePart(body, { transferEncoding: 'quoted-printable' }, { rewrite: T })).toMatchObject({ body, changed: false, notes: [] })
    const uu = rewriteMimePart(body, { transferEncoding: 'x-uuencode' }, { rewrite: T })
    expect(uu).toMatchObject({ body, changed: false })
    expect(uu.notes.join()).toMatch(/x-uuencode is not supported/)
    expect(rewriteMimePart(body, { charset: 'x-klingon' }, { rewrite: T }).notes.join()).toMatch(/x-klingon is unknown/)
  })

  it('adds the pixel and tracks text/plain URLs with the same re-encoding rules', () => {
    const withPixel = rewriteMimePart(Buffer.from(html('<p>x</p>')), { transferEncoding: '7bit' }, { rewrite: T, pixel: 'https://t.example/o/1' })
    expect(withPixel.pixel).toBe(true)
    expect(withPixel.body.toString()).toMatch(/<img src="https:\/\/t\.example\/o\/1"[^>]*>\r?\n?<\/body>/)
    const text = Buffer.from(libqp.wrap(libqp.encode(Buffer.from('See https://shop.example/sale?a=1&b=2.\r\nMail me: mailto:a@example.com\r\n')), 76))
    const result = rewriteMimePart(
      text,
      { contentType: 'text/plain', transferEncoding: 'quoted-printable', charset: 'utf-8' },
      { rewrite: T, pixel: 'https://t.example/o/1' },
    )
    expect(result.pixel).toBe(false)
    expect(libqp.decode(result.body.toString()).toString()).toBe('See https://t.example/c/0.\r\nMail me: mailto:a@example.com\r\n')
  })
})

describe('rewriteText', () => {
  it('finds http(s) URLs and leaves sentence punctuation, brackets and non-URLs alone', () => {
    const text =
      'Visit https://a.example/x. Or (https://b.example/y_(z)), <https://c.example/q?x=1&y=2>, "http://d.example/";\r\nftp://e.example/ www.f.example'
    const result = rewriteText(text, { rewrite: T })
    expect(result.links.map((l) => l.url)).toEqual([
      'https://a.example/x',
      'https://b.example/y_(z)',
      'https://c.example/q?x=1&y=2',
      'http://d.example/',
    ])
    expect(result.text).toBe(
      'Visit https://t.example/c/0. Or (https://t.example/c/1), <https://t.example/c/2>, "https://t.example/c/3";\r\nftp://e.example/ www.f.example',
    )
  })

  it('leaves a URL that runs into non-ASCII text, where its end is uncertain', () => {
    expect(rewriteText('Lien: https://a.example/café ici', { rewrite: T }).links).toEqual([])
  })
})

describe('transfer encodings', () => {
  it('round-trips any bytes through quoted-printable in lines of at most 76, and through base64', () => {
    for (let n = 0; n < 300; n++) {
      const bytes = Buffer.from(
        Array.from({ length: n * 3 }, (_v, i) => [0x20, 0x09, 0x0d, 0x0a, 0x3d, 0x41, 0xc3, 0x00, (i * 37 + n) & 0xff][(i * 7 + n) % 9]!),
      )
      const qp = encodeQuotedPrintable(bytes)
      expect(decodeQuotedPrintable(qp).equals(bytes)).toBe(true)
      expect(libqp.decode(qp.toString('latin1')).equals(bytes)).toBe(true)
      for (const line of qp.toString('latin1').split('\r\n')) {
        expect(line.length).toBeLessThanOrEqual(76)
        expect(line).not.toMatch(/[ \t\r\n]$/)
      }
      expect(decodeBase64(encodeBase64(bytes)).equals(bytes)).toBe(true)
    }
  })

  it('decodes quoted-printable leniently: bare-LF soft breaks, lower-case hex, stray =, transport padding', () => {
    expect(decodeQuotedPrintable(Buffer.from('a=\nb=c3=a9 =3 x  \r\ny=  \r\nz')).toString()).toBe('abé =3 x\r\nyz')
  })
})
