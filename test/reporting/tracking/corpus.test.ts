/**
 * Every real-world e-mail of the shared corpus, rewritten with link n → https://t.example/c/<n>:
 * the output must equal the input byte for byte once the original values are spliced back at the
 * recorded offsets, the number of rewritten links must be what INDEX.tsv implies, no span may lie
 * in a comment or raw-text element, and the same file sent as a quoted-printable and as a base64
 * MIME part must decode to exactly what rewriteHtml produced, in lines of at most 76 characters.
 */
import libqp from 'libqp'
import { describe, expect, it } from 'vitest'
import { pixelTag, type RewrittenLink, rewriteHtml, rewriteMimePart } from '../../../src/reporting/tracking/index.js'
import { CORPUS, LEFT_ALONE, protectedRanges, tracked } from './corpus.js'

const PIXEL = 'https://t.example/o/pixel?m=1&r=2'
const CRLF = Buffer.from('\r\n')

/** `output` with every replacement swapped back for the original value. */
function restore(output: string, links: readonly RewrittenLink[]): string {
  const parts: string[] = []
  let delta = 0
  let cursor = 0
  for (const link of links) {
    const at = link.start + delta
    expect(output.slice(at, at + link.replacement.length)).toBe(link.replacement)
    parts.push(output.slice(cursor, at), link.original)
    cursor = at + link.replacement.length
    delta += link.replacement.length - (link.end - link.start)
  }
  parts.push(output.slice(cursor))
  return parts.join('')
}

function encodedLines(body: Buffer): string[] {
  return body.toString('latin1').replace(/\r\n$/, '').split('\r\n')
}

describe('tracking over the shared corpus', () => {
  it('covers all 49 files of INDEX.tsv, and the left-alone table names only files that exist', () => {
    expect(CORPUS).toHaveLength(49)
    for (const number of Object.keys(LEFT_ALONE)) expect(CORPUS.some((f) => f.file.startsWith(`${number}-`))).toBe(true)
  })

  describe.each(CORPUS.map((f) => [f.file, f] as const))('%s', (_name, file) => {
    const text = file.bytes.toString(file.encoding)
    const result = rewriteHtml(text, { rewrite: tracked })

    it('decodes and encodes back to the same bytes (the premise of the comparison)', () => {
      expect(Buffer.from(text, file.encoding).equals(file.bytes)).toBe(true)
    })

    it(`rewrites the number of links INDEX.tsv implies (http_or_relative ${file.index.http_or_relative} − left alone ${LEFT_ALONE[file.file.slice(0, 2)]?.count ?? 0})`, () => {
      expect(result.links.length).toBe(file.expected)
      expect(result.links.map((l) => l.index)).toEqual(result.links.map((_l, i) => i))
      for (const link of result.links) {
        const quote = link.original.startsWith("'") ? "'" : '"'
        expect(link.replacement).toBe(`${quote}https://t.example/c/${link.index}${quote}`)
        expect(link.url).toMatch(/^https?:\/\//i)
        expect(link.url).not.toContain('&amp;')
      }
    })

    it('changes no byte outside the rewritten href values', () => {
      const restored = restore(result.html, result.links)
      expect(Buffer.from(restored, file.encoding).equals(file.bytes)).toBe(true)
    })

    it('rewrites only href values of <a> and <area>, never inside comments, style, script, title or textarea', () => {
      const ranges = protectedRanges(text)
      for (const link of result.links) {
        expect(text.slice(0, link.start)).toMatch(/\shref\s*=\s*$/i)
        const tag = text.slice(text.lastIndexOf('<', link.start), link.start)
        expect(tag).toMatch(/^<(a|area)\s/i)
        expect(ranges.some(([from, to]) => link.start < to && link.end > from)).toBe(false)
      }
    })

    it('inserts the open pixel just before </body> and changes nothing else', () => {
      const withPixel = rewriteHtml(text, { rewrite: tracked, pixel: PIXEL })
      expect(withPixel.pixel).toBe(true)
      const tag = pixelTag(PIXEL)
      const at = withPixel.html.indexOf(tag)
      expect(withPixel.html.indexOf(tag, at + 1)).toBe(-1)
      expect(withPixel.html.slice(0, at) + withPixel.html.slice(at + tag.length)).toBe(result.html)
      expect(withPixel.html.slice(at + tag.length, at + tag.length + 6).toLowerCase()).toBe('</body')
      expect(
        withPixel.html
          .slice(at + tag.length)
          .toLowerCase()
          .lastIndexOf('</body'),
      ).toBe(0)
    })

    // The wire form of a text part has CRLF line breaks.
    const crlf = Buffer.from(text.replace(/\r?\n/g, '\r\n'), file.encoding)
    const expected = Buffer.from(rewriteHtml(crlf.toString(file.encoding), { rewrite: tracked }).html, file.encoding)

    it('as a quoted-printable part: decodes to rewriteHtml’s output, lines ≤ 76', () => {
      const body = Buffer.from(`${libqp.wrap(libqp.encode(crlf), 76)}\r\n`)
      const part = rewriteMimePart(
        body,
        { contentType: 'text/html', transferEncoding: 'quoted-printable', charset: file.charset },
        { rewrite: tracked },
      )
      expect(part.transferEncoding).toBe('quoted-printable')
      expect(part.links.length).toBe(file.expected)
      // The CRLF that ends the part body (before the boundary) decodes as one more line break.
      if (file.expected) expect(libqp.decode(part.body.toString('latin1')).equals(Buffer.concat([expected, CRLF]))).toBe(true)
      else expect(part.body).toBe(body)
      for (const line of encodedLines(part.body)) expect(line.length).toBeLessThanOrEqual(76)
    })

    it('as a base64 part: decodes to rewriteHtml’s output of the original bytes, lines of 76', () => {
      const body = Buffer.from(`${file.bytes.toString('base64').replace(/.{76}/g, '$&\r\n')}\r\n`)
      const part = rewriteMimePart(body, { contentType: 'text/html', transferEncoding: 'base64', charset: file.charset }, { rewrite: tracked })
      expect(part.transferEncoding).toBe('base64')
      expect(Buffer.from(part.body.toString('latin1'), 'base64').equals(Buffer.from(result.html, file.encoding))).toBe(true)
      expect(part.body.subarray(-2).toString()).toBe('\r\n')
      const lines = encodedLines(part.body)
      for (const line of lines.slice(0, -1)) expect(line.length).toBe(76)
      expect(lines.at(-1)!.length).toBeLessThanOrEqual(76)
    })

    it('as an 8bit part: the bytes of rewriteHtml’s output, or quoted-printable where a line exceeds 998 octets', () => {
      const part = rewriteMimePart(crlf, { contentType: 'text/html', transferEncoding: '8bit', charset: file.charset }, { rewrite: tracked })
      if (!file.expected) expect(part.body).toBe(crlf)
      else if (part.transferEncoding === '8bit') expect(part.body.equals(expected)).toBe(true)
      else {
        expect(file.maxLine).toBeGreaterThan(998) // only the one-line file needs it
        expect(part.notes.join()).toMatch(/line of \d+ octets/)
        expect(libqp.decode(part.body.toString('latin1')).equals(expected)).toBe(true)
      }
    })
  })
})
