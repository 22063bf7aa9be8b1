import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { clamd } from '../../src/index.js'
import { parseClamdReply } from '../../src/scanners/clamd.js'
import { havePeer } from '../helpers/peers.js'
import { type Daemon, disposeScanInputs, EICAR, freePort, scanInput, startClamd, withAttachment } from '../helpers/scanners.js'

describe.skipIf(!havePeer('clamd', 'apt-get install -y clamav-daemon'))('clamd() against a real clamd', () => {
  let daemon: Daemon
  beforeAll(async () => {
    daemon = await startClamd({ streamMaxLength: '1M' })
  })
  afterAll(async () => {
    await disposeScanInputs()
    await daemon?.stop()
  })

  it('finds EICAR in a plain text body', async () => {
    const verdict = await clamd({ port: daemon.port })(await scanInput(`Subject: test\r\n\r\n${EICAR}\r\n`))
    expect(verdict).toEqual({ status: 'infected', viruses: ['Test.EICAR.UNOFFICIAL'] })
  })

  it('finds EICAR inside a base64-encoded attachment', async () => {
    const eml = await withAttachment(EICAR, 'eicar.com')
    expect(eml.toString()).not.toContain(EICAR)
    const verdict = await clamd({ port: daemon.port, chunkSize: 100 })(await scanInput(eml))
    expect(verdict).toEqual({ status: 'infected', viruses: ['Test.EICAR.UNOFFICIAL'] })
  })

  it('finds a clean message clean', async () => {
    const verdict = await clamd({ port: daemon.port })(await scanInput(await withAttachment(Buffer.alloc(50_000, 7))))
    expect(verdict).toEqual({ status: 'clean' })
  })

  it('scans a message of exactly maxSize (= StreamMaxLength) and reports a larger one too-large without sending it', async () => {
    const scan = clamd({ port: daemon.port, maxSize: 1024 * 1024 })
    const head = 'Subject: big\r\n\r\n'
    const exact = `${head}${'b'.repeat(1024 * 1024 - head.length - 2)}\r\n`
    expect(Buffer.byteLength(exact)).toBe(1024 * 1024)
    expect(await scan(await scanInput(exact))).toEqual({ status: 'clean' })
    const unreachable = clamd({ port: await freePort(), maxSize: 1024 * 1024 }) // nothing listens: not sent
    expect(await unreachable(await scanInput(`${exact}x`))).toEqual({ status: 'too-large' })
  })

  it('rejects with the abort reason when the signal aborts', async () => {
    const controller = new AbortController()
    controller.abort(new Error('deadline'))
    await expect(clamd({ port: daemon.port })(await scanInput('Subject: x\r\n\r\nx\r\n', { signal: controller.signal }))).rejects.toThrow('deadline')
  })

  it('rejects with ECONNREFUSED when nothing listens', async () => {
    const port = await freePort()
    await expect(clamd({ port })(await scanInput('Subject: x\r\n\r\nx\r\n'))).rejects.toMatchObject({ code: 'ECONNREFUSED' })
  })
})

describe('parseClamdReply', () => {
  it('reads clean, infected, size limit and AlertExceedsMax replies, and throws on errors', () => {
    expect(parseClamdReply('stream: OK\0')).toEqual({ status: 'clean' })
    expect(parseClamdReply('stream: Win.Test.EICAR_HDB-1 FOUND\0')).toEqual({ status: 'infected', viruses: ['Win.Test.EICAR_HDB-1'] })
    expect(parseClamdReply('INSTREAM size limit exceeded. ERROR\0')).toEqual({ status: 'too-large' })
    expect(parseClamdReply('stream: Heuristics.Limits.Exceeded.MaxFileSize FOUND\0')).toEqual({ status: 'too-large' })
    expect(() => parseClamdReply('stream: lstat() failed: No such file. ERROR\0')).toThrow('clamd: stream: lstat() failed')
  })
})
