import { spawnSync } from 'node:child_process'
import { createRequire } from 'node:module'
import { describe, expect, it } from 'vitest'
import { relaxedBody, relaxedBodyHash } from '../../src/dkim/relaxed-body.js'
import { haveDkimpy, PYTHON } from '../helpers/dkim-verify.js'

const require = createRequire(import.meta.url)
const { dkimBody } = require('mailauth/lib/dkim/body/index.js') as typeof import('mailauth/lib/dkim/body/index.js')

const CRLF = Buffer.from('\r\n')
const latin1 = (s: string) => Buffer.from(s, 'latin1')

/** Bodies as they reach the hasher (CRLF line endings), the hostile ones included. */
const BODIES: Record<string, Buffer> = {
  empty: Buffer.alloc(0),
  'only line breaks': latin1('\r\n\r\n\r\n'),
  'only white space lines': latin1(' \r\n\t\r\n  \t \r\n'),
  plain: latin1('Hello Bob.\r\nSee you.\r\n'),
  'trailing empty lines': latin1('Hello\r\n\r\n\r\n\r\n'),
  'empty lines inside': latin1('a\r\n\r\n\r\nb\r\n\r\n'),
  'white space runs, tabs, trailing white space': latin1('  lead\r\nin  side\t\tx \t\r\ntrail   \r\n\t\r\nend\t\r\n'),
  'no final line break': latin1('first\r\nlast line'),
  'no final line break, trailing white space': latin1('first\r\nlast line \t '),
  '8-bit latin-1': Buffer.concat([latin1('caf'), Buffer.from([0xe9, 0x20, 0x20, 0xff, 0x0d, 0x0a, 0x80, 0x09, 0xa0, 0x0d, 0x0a])]),
  'NUL bytes': Buffer.from([0x61, 0x00, 0x20, 0x20, 0x00, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x20, 0x00, 0x09, 0x0d, 0x0a]),
  '998-octet lines': latin1(`${'x'.repeat(998)}\r\n${'y '.repeat(499)}\r\n${`${'z'.repeat(997)} `}\r\n`),
  'EAI (UTF-8)': Buffer.from('Grüße aus Köln,  Jörg \r\n\t— zoë@bücher.example\r\n'),
  'a 1 MB line': latin1(`${'ab  c\t'.repeat(180_000)}\r\n`),
  'dots and boundaries': latin1('.\r\n..\r\n--boundary\r\n --boundary-- \r\n.\r\n'),
  'a CRLF split': latin1('x\r\n \r\n'),
}

/** Every way of cutting `body` into chunks that matters: whole, byte by byte, and a few sizes in between. */
function chunkings(body: Buffer): Buffer[][] {
  const cut = (size: number) => Array.from({ length: Math.ceil(body.length / size) }, (_, i) => body.subarray(i * size, (i + 1) * size))
  const small = body.length <= 4096 ? [cut(1), cut(2), cut(3)] : []
  return [[body], ...small, cut(7), cut(64), cut(65_536)].filter((c) => c.length || !body.length)
}

/** The body as it goes on the wire: SMTP adds a line break to a body that does not end with one. */
const asSent = (body: Buffer) => (!body.length || body.subarray(-2).equals(CRLF) ? body : Buffer.concat([body, CRLF]))

function mailauthHash(chunks: Buffer[]): string {
  const hasher = dkimBody('relaxed', 'sha256', false)
  for (const chunk of chunks) hasher.update(chunk)
  return hasher.digest('base64')
}

describe('relaxed body canonicalisation', () => {
  it('hashes every body as mailauth does (the body as sent), however it is cut into chunks', () => {
    for (const [name, body] of Object.entries(BODIES)) {
      const expected = mailauthHash([asSent(body)])
      for (const chunks of chunkings(body)) {
        const hasher = relaxedBodyHash()
        for (const chunk of chunks) hasher.update(chunk)
        expect([name, chunks.length, hasher.digest('base64')]).toEqual([name, chunks.length, expected])
      }
    }
  })

  it('agrees with mailauth on random bodies cut at random places', () => {
    const pieces = [' ', '\t', 'a', 'b', '\r\n', '\r\n', '\r\n\r\n', '  ', ' \t ', '\x00', '\xe9', '.', 'x'.repeat(50)]
    let seed = 10
    const random = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff
    for (let n = 0; n < 3000; n++) {
      const body = latin1(Array.from({ length: Math.floor(random() * 30) }, () => pieces[Math.floor(random() * pieces.length)]).join(''))
      const chunks: Buffer[] = []
      for (let at = 0; at < body.length; ) {
        const size = 1 + Math.floor(random() * (n % 2 ? 6 : 120))
        chunks.push(body.subarray(at, at + size))
        at += size
      }
      const hasher = relaxedBodyHash()
      for (const chunk of chunks) hasher.update(chunk)
      expect([body.toString('latin1'), hasher.digest('base64')]).toEqual([body.toString('latin1'), mailauthHash([asSent(body)])])
    }
  })

  it.skipIf(!haveDkimpy())('produces exactly the bytes python3-dkim canonicalises each body to', () => {
    const script =
      'import sys, json, base64\nfrom dkim.canonicalization import Relaxed\n' +
      'print(json.dumps([base64.b64encode(Relaxed.canonicalize_body(base64.b64decode(b))).decode() for b in json.load(sys.stdin)]))'
    const names = Object.keys(BODIES)
    const input = JSON.stringify(names.map((name) => asSent(BODIES[name]!).toString('base64')))
    const run = spawnSync(PYTHON, ['-c', script], { input, maxBuffer: 64 * 1024 * 1024 })
    expect(run.status, String(run.stderr)).toBe(0)
    const expected = (JSON.parse(String(run.stdout)) as string[]).map((b) => Buffer.from(b, 'base64'))
    for (const [i, name] of names.entries()) {
      for (const chunks of chunkings(BODIES[name]!)) {
        const ours = relaxedBody(chunks)
        expect([name, chunks.length, ours.equals(expected[i]!)]).toEqual([name, chunks.length, true])
      }
    }
  })
})
