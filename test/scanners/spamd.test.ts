import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { spamd } from '../../src/index.js'
import { parseSpamdReply } from '../../src/scanners/spamd.js'
import { havePeer } from '../helpers/peers.js'
import { type Daemon, disposeScanInputs, freePort, GTUBE, scanInput, startSpamd } from '../helpers/scanners.js'

const HAM =
  'From: Ann <ann@example.com>\r\nTo: Bob <bob@example.org>\r\nSubject: minutes\r\nDate: Sat, 28 Nov 2026 10:00:00 +0000\r\nMessage-ID: <m1@example.com>\r\n\r\nHi Bob, the minutes of today are below.\r\n'
const SPAM = `From: ann@example.com\r\nTo: bob@example.org\r\nSubject: offer\r\n\r\n${GTUBE}\r\n`

describe.skipIf(!havePeer('spamd', 'apt-get install -y spamassassin spamd'))('spamd() against a real spamd', () => {
  let daemon: Daemon
  beforeAll(async () => {
    daemon = await startSpamd()
  })
  afterAll(async () => {
    await disposeScanInputs()
    await daemon?.stop()
  })

  it('scores GTUBE far above the required 5.0, names the rule and recommends tagging', async () => {
    const verdict = await spamd({ port: daemon.port })(await scanInput(SPAM))
    // GTUBE's rule scores 1000; other rules move the total (Debian's 4.0.1: 999.0 with ALL_TRUSTED).
    expect(verdict.score).toBeGreaterThan(100)
    expect(verdict.threshold).toBe(5)
    expect(verdict.action).toBe('tag')
    expect(verdict.symbols?.GTUBE).toBeGreaterThan(100)
    expect(verdict.scanner).toBe('spamd')
  })

  it('scores an ordinary message below the threshold and recommends accepting it', async () => {
    const verdict = await spamd({ port: daemon.port })(await scanInput(HAM))
    expect(verdict.score).toBeLessThan(5)
    expect(verdict.action).toBe('accept')
    expect(verdict.symbols).not.toHaveProperty('GTUBE')
  })

  it('streams a message spooled to disk with the exact Content-length (GTUBE after 1.5 MB of text)', async () => {
    const filler = 'Lorem ipsum dolor sit amet, consectetur adipiscing elit.\r\n'.repeat(27_000)
    const input = await scanInput(`From: ann@example.com\r\nSubject: long\r\n\r\n${GTUBE}\r\n${filler}`)
    expect(input.size).toBeGreaterThan(1024 * 1024)
    const verdict = await spamd({ port: daemon.port })(input)
    expect(verdict.symbols?.GTUBE).toBeGreaterThan(100)
  })

  it('rejects with the abort reason when the signal aborts, without waiting for spamd', async () => {
    const controller = new AbortController()
    const scan = spamd({ port: daemon.port })(await scanInput(SPAM, { signal: controller.signal }))
    controller.abort(new Error('deadline'))
    await expect(scan).rejects.toThrow('deadline')
  })

  it('rejects with ECONNREFUSED when nothing listens', async () => {
    const port = await freePort()
    await expect(spamd({ port })(await scanInput(HAM))).rejects.toMatchObject({ code: 'ECONNREFUSED' })
  })
})

describe('parseSpamdReply', () => {
  it('throws on an error status instead of reading it as a verdict', () => {
    expect(() => parseSpamdReply('SPAMD/1.0 76 Bad header line: Content-length\r\n\r\n')).toThrow('spamd: 76 Bad header line')
  })

  it('throws on a reply without a Spam header', () => {
    expect(() => parseSpamdReply('SPAMD/1.1 0 EX_OK\r\n\r\n')).toThrow('no Spam header')
  })

  it('reads score, threshold and the rules of the report table, ignoring wrapped descriptions', () => {
    const reply = [
      'SPAMD/1.1 0 EX_OK',
      'Spam: False ; 2.1 / 5.0',
      '',
      'Content analysis details:   (2.1 points, 5.0 required)',
      '',
      ' pts rule name              description',
      '---- ---------------------- --------------------------------------------------',
      ' 1.5 URIBL_TEST             Contains an URL listed in a test list',
      '                            [URIs: example.com]',
      ' 0.6 MISSING_MID            Missing Message-Id: header',
      '-0.0 NO_RELAYS              Informational: not relayed',
      '',
    ].join('\r\n')
    expect(parseSpamdReply(reply)).toEqual({
      score: 2.1,
      threshold: 5,
      action: 'accept',
      scanner: 'spamd',
      symbols: { URIBL_TEST: 1.5, MISSING_MID: 0.6, NO_RELAYS: -0 },
    })
  })
})
