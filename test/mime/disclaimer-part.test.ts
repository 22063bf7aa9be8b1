import iconv from 'iconv-lite'
import { describe, expect, it } from 'vitest'
import { HOLD_LIMIT, HtmlEditor, type PartEditor, planPart, prepareDisclaimer, TextEditor } from '../../src/mime/disclaimer-part.js'

/** Runs an editor over chunks; returns the output as a string. */
function run(editor: PartEditor, chunks: readonly string[]): string {
  return Buffer.concat([...chunks.map((c) => editor.write(Buffer.from(c))), editor.end()]).toString()
}

const html = (final = false) => new HtmlEditor(Buffer.from('<p>D</p>'), final)

describe('HtmlEditor', () => {
  it('finds </body> split across chunks, in any case', () => {
    expect(run(html(), ['<html><body>Hi</Bo', 'DY></html>'])).toBe('<html><body>Hi\r\n<p>D</p>\r\n</BoDY></html>')
  })

  it('inserts before the last </body>, else before </html>, else at the end', () => {
    expect(run(html(), ['<p>a</body>quoted</body>x'])).toBe('<p>a</body>quoted\r\n<p>D</p>\r\n</body>x')
    expect(run(html(), ['<html><p>a</p></html>'])).toBe('<html><p>a</p>\r\n<p>D</p>\r\n</html>')
    expect(run(html(true), ['<p>a</p>'])).toBe('<p>a</p>\r\n<p>D</p>\r\n')
  })

  it('gives up a </body> followed by more than HOLD_LIMIT bytes, holding no more than that', () => {
    const editor = html()
    let held = 0
    const chunks = ['<p>x</body>', ...Array(10).fill('y'.repeat(HOLD_LIMIT / 4))]
    const out = chunks.map((c) => {
      const o = editor.write(Buffer.from(c))
      held += c.length - o.length
      expect(held).toBeLessThanOrEqual(HOLD_LIMIT + HOLD_LIMIT / 4)
      return o.toString()
    })
    expect(out.join('') + editor.end().toString()).toBe(`${chunks.join('')}\r\n<p>D</p>`)
  })

  it('follows LF-only line breaks of decoded content', () => {
    expect(run(new HtmlEditor(Buffer.from('<p>\r\nD</p>'), true), ['<p>a</p>\n<p>b</p>'])).toBe('<p>a</p>\n<p>b</p>\n<p>\nD</p>\n')
  })
})

describe('TextEditor', () => {
  const tail = Buffer.from('\r\nFooter.')

  it('appends on a line of its own', () => {
    expect(run(new TextEditor(tail, false), ['Hello'])).toBe('Hello\r\n\r\nFooter.')
    expect(run(new TextEditor(tail, true), ['Hello\r\n'])).toBe('Hello\r\n\r\nFooter.\r\n')
  })

  it('leaves inline PGP untouched', () => {
    const signed = '-----BEGIN PGP SIGNED MESSAGE-----\r\nHash: SHA256\r\n\r\nHi\r\n-----BEGIN PGP SIGNATURE-----\r\n'
    expect(run(new TextEditor(tail, true), [signed])).toBe(signed)
  })
})

describe('planPart', () => {
  const d = prepareDisclaimer('Société – Example', undefined)
  const ascii = prepareDisclaimer('Example Ltd', undefined)

  it('appends bytes only when the charset and the transfer encoding can hold them', () => {
    expect(planPart({ html: false, charset: 'us-ascii', encoding: '7bit' }, ascii, iconv).kind).toBe('raw')
    expect(planPart({ html: false, charset: 'utf-8', encoding: '8bit' }, d, iconv).kind).toBe('raw')
    expect(planPart({ html: false, charset: 'windows-1252', encoding: 'quoted-printable' }, d, iconv).kind).toBe('raw')
    expect(planPart({ html: true, charset: 'iso-8859-1', encoding: '8bit' }, d, iconv).kind).toBe('raw')
  })

  it('re-encodes 7bit text that gets non-ASCII, and transcodes a charset that cannot hold the disclaimer', () => {
    expect(planPart({ html: false, charset: 'utf-8', encoding: '7bit' }, d, iconv)).toMatchObject({
      kind: 'codec',
      encoding: 'quoted-printable',
      toUtf8: false,
    })
    expect(planPart({ html: false, charset: 'iso-8859-1', encoding: 'base64' }, d, iconv)).toMatchObject({
      kind: 'codec',
      encoding: 'base64',
      toUtf8: true,
      transcode: 'iso-8859-1',
    })
    expect(planPart({ html: false, charset: false, encoding: false }, d, iconv)).toMatchObject({ kind: 'codec', toUtf8: true, transcode: undefined })
    expect(planPart({ html: true, charset: 'utf-16', encoding: 'base64' }, d, iconv)).toMatchObject({
      kind: 'codec',
      toUtf8: true,
      transcode: 'utf-16',
    })
  })

  it('skips parts it cannot edit safely', () => {
    expect(planPart({ html: false, charset: 'x-unknown', encoding: '7bit' }, d, iconv)).toMatchObject({ kind: 'skip' })
    expect(planPart({ html: false, charset: 'utf-8', encoding: 'x-uuencode' }, d, iconv)).toMatchObject({ kind: 'skip' })
  })
})
