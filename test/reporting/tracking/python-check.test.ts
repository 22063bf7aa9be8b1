/**
 * An independent reading of the rewritten documents: Python's own `html.parser` (stdlib, not
 * htmlparser2) lists the hrefs of `<a>` and `<area>` in the input and in the output of a handful
 * of corpus files. The lists must have the same length; each entry must be either unchanged or
 * https://t.example/c/<n> with n counting up in document order; and exactly the links we report as
 * rewritten must be the changed ones, with the URL Python decodes for them.
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { rewriteHtml } from '../../../src/reporting/tracking/index.js'
import { CORPUS, tracked } from './corpus.js'

const PYTHON = '/usr/bin/python3'
// Python 3.11 parses <title> and <textarea> content as markup; browsers (and we) do not.
const SCRIPT = `
import json, sys
from html.parser import HTMLParser
class Links(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.hrefs, self.raw = [], None
    def handle_starttag(self, tag, attrs):
        if self.raw: return
        if tag in ('title', 'textarea'):
            self.raw = tag
            return
        first = {}
        for name, value in attrs: first.setdefault(name, value)
        if tag in ('a', 'area') and first.get('href') is not None: self.hrefs.append(first['href'])
    def handle_endtag(self, tag):
        if tag == self.raw: self.raw = None
out = {}
for path, encoding in json.loads(sys.argv[1]):
    parser = Links()
    parser.feed(open(path, encoding=encoding).read())
    parser.close()
    out[path] = parser.hrefs
print(json.dumps(out))
`
const FILES = ['20-', '36-', '42-', '43-', '44-', '45-', '46-', '47-', '48-', '49-']
const dir = mkdtempSync(join(tmpdir(), 'relaychain-tracking-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('rewritten documents read by Python’s html.parser', () => {
  const chosen = CORPUS.filter((f) => FILES.some((p) => f.file.startsWith(p)))
  const jobs = chosen.map((file) => {
    const text = file.bytes.toString(file.encoding)
    const result = rewriteHtml(text, { rewrite: tracked })
    const input = join(dir, `in-${file.file}`)
    const output = join(dir, `out-${file.file}`)
    writeFileSync(input, file.bytes)
    writeFileSync(output, Buffer.from(result.html, file.encoding))
    return { file, result, input, output, python: file.encoding === 'latin1' ? 'latin-1' : 'utf-8' }
  })
  const parsed = JSON.parse(
    execFileSync(
      PYTHON,
      [
        '-c',
        SCRIPT,
        JSON.stringify(
          jobs.flatMap((j) => [
            [j.input, j.python],
            [j.output, j.python],
          ]),
        ),
      ],
      { encoding: 'utf8' },
    ),
  ) as Record<string, string[]>

  it('reads all the chosen files', () => {
    expect(jobs.length).toBe(FILES.length)
  })

  it.each(jobs.map((j) => [j.file.file, j] as const))('%s: only the reported links changed, to the expected targets', (_name, job) => {
    const before = parsed[job.input]!
    const after = parsed[job.output]!
    expect(after.length).toBe(before.length)
    const changed = before.flatMap((href, i) => (href === after[i] ? [] : [i]))
    expect(changed.length).toBe(job.result.links.length)
    changed.forEach((position, n) => {
      expect(after[position]).toBe(`https://t.example/c/${n}`)
      const link = job.result.links[n]!
      // Python decodes legacy entities such as &copy= inside attributes, which HTML does not.
      if (!link.original.includes('&copy')) {
        const href = before[position]!.trim()
        if (/^https?:/i.test(href)) expect(link.url).toBe(href)
        else expect(link.url).toBe(new URL(href, 'https://shop.example.com/mail/').href)
      }
    })
  })
})
