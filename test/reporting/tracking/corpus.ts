/**
 * The shared corpus of real-world HTML e-mails (`../shared/corpus/reporting/html` beside the
 * repository; never copied into it) and its INDEX.tsv, plus what the tests expect of each file.
 * Missing corpus = a loud failure, not a skipped test.
 */
import { existsSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

export const CORPUS_DIR = fileURLToPath(new URL('../../../../shared/corpus/reporting/html/', import.meta.url))

if (!existsSync(`${CORPUS_DIR}INDEX.tsv`)) {
  throw new Error(`The reporting corpus is missing: expected ${CORPUS_DIR}INDEX.tsv (../shared/corpus/reporting/html from the repository root)`)
}

/** One row of INDEX.tsv (the columns the tests use). */
export interface CorpusFile {
  readonly file: string
  readonly bytes: Buffer
  /** The Node encoding that maps the file's bytes to text and back exactly. */
  readonly encoding: 'utf8' | 'latin1'
  readonly charset: 'utf-8' | 'iso-8859-1'
  readonly lineEndings: 'LF' | 'CRLF'
  readonly maxLine: number
  readonly index: Readonly<Record<string, string>>
  /** How many links the tests expect to be rewritten (see {@link LEFT_ALONE}). */
  readonly expected: number
}

/**
 * Links INDEX.tsv counts as `http_or_relative` that tracking leaves alone on purpose, by file
 * number. Everything else INDEX.tsv counts there is rewritten; mailto/tel/sms, fragments, empty
 * hrefs, `javascript:`/`data:` ("other") and `data-unsubscribe` links are counted in their own
 * columns and never rewritten.
 */
export const LEFT_ALONE: Readonly<Record<string, { readonly count: number; readonly why: string }>> = {
  '18': { count: 1, why: 'VML v:roundrect href inside <!--[if mso]>' },
  '19': { count: 1, why: 'VML v:roundrect href inside <!--[if mso]>' },
  '20': { count: 11, why: 'VML v:roundrect hrefs inside <!--[if mso]>' },
  '21': { count: 1, why: 'VML v:roundrect href inside <!--[if mso]>' },
  '24': { count: 10, why: 'VML v:roundrect hrefs inside <!--[if mso]>' },
  '25': { count: 11, why: 'VML v:roundrect hrefs inside <!--[if mso]>' },
  '33': { count: 5, why: 'MailChimp merge tags (*|ARCHIVE|* …): relative references, no <base>' },
  '34': { count: 2, why: 'MailChimp merge tags: relative references, no <base>' },
  '35': { count: 5, why: 'MailChimp merge tags: relative references, no <base>' },
  '46': { count: 2, why: '//example.com/protocol-relative and /relative/path with no <base>' },
  '47': { count: 2, why: 'the VML button and the <a> inside <!--[if mso]>' },
}

function loadIndex(): CorpusFile[] {
  const lines = readFileSync(`${CORPUS_DIR}INDEX.tsv`, 'utf8')
    .split('\n')
    .filter((l) => l && !l.startsWith('#'))
  const header = lines.shift()!.split('\t')
  return lines.map((line) => {
    const cells = line.split('\t')
    const index = Object.fromEntries(header.map((name, i) => [name, cells[i] ?? '']))
    const file = index.file!
    const path = `${CORPUS_DIR}${file}`
    if (!existsSync(path)) throw new Error(`corpus file missing: ${path}`)
    const latin1 = file.startsWith('49-')
    const left = LEFT_ALONE[file.slice(0, 2)]?.count ?? 0
    return {
      file,
      bytes: readFileSync(path),
      encoding: latin1 ? 'latin1' : 'utf8',
      charset: latin1 ? 'iso-8859-1' : 'utf-8',
      lineEndings: index.line_endings === 'CRLF' ? 'CRLF' : 'LF',
      maxLine: Number(index.max_line),
      index,
      expected: Number(index.http_or_relative) - left,
    }
  })
}

export const CORPUS: readonly CorpusFile[] = loadIndex()

/** The tests' rewrite: link n goes to `https://t.example/c/<n>`. */
export const tracked = ({ index }: { index: number }) => `https://t.example/c/${index}`

/** Regions of a document where no byte may change: comments, and the raw text elements. */
export function protectedRanges(html: string): Array<[number, number]> {
  const ranges: Array<[number, number]> = []
  for (const m of html.matchAll(/<!--[\s\S]*?-->|<(style|script|title|textarea)\b[\s\S]*?<\/\1\s*>/gi)) ranges.push([m.index, m.index + m[0].length])
  return ranges
}
