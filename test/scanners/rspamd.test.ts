import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { rspamd } from '../../src/index.js'
import { havePeer } from '../helpers/peers.js'
import { type Daemon, disposeScanInputs, freePort, GTUBE, RSPAMD_READY_WITHIN, scanInput, startRspamd } from '../helpers/scanners.js'

const HAM =
  'From: Ann <ann@example.com>\r\nTo: Bob <bob@example.org>\r\nSubject: minutes\r\nDate: Sat, 28 Nov 2026 10:00:00 +0000\r\nMessage-ID: <m1@example.com>\r\n\r\nHi Bob, the minutes of today are below.\r\n'

describe.skipIf(!havePeer('rspamd', 'apt-get install -y rspamd'))('rspamd() against a real rspamd', () => {
  let daemon: Daemon
  beforeAll(async () => {
    daemon = await startRspamd()
  }, RSPAMD_READY_WITHIN + 10_000)
  afterAll(async () => {
    await disposeScanInputs()
    await daemon?.stop()
  })

  it("maps rspamd's reject action for GTUBE to reject, with its symbols", async () => {
    const verdict = await rspamd({ port: daemon.port })(await scanInput(`From: ann@example.com\r\nSubject: offer\r\n\r\n${GTUBE}\r\n`))
    expect(verdict.action).toBe('reject')
    expect(verdict.symbols).toHaveProperty('GTUBE')
    expect(verdict.scanner).toBe('rspamd')
  })

  it('accepts an ordinary message ("no action")', async () => {
    const verdict = await rspamd({ port: daemon.port })(await scanInput(HAM))
    expect(verdict.action).toBe('accept')
    expect(verdict.score).toBeLessThan(5)
  })

  it('passes the envelope: rspamd compares it with From and To', async () => {
    const scan = rspamd({ port: daemon.port })
    const matching = await scan(await scanInput(HAM, { from: 'ann@example.com', to: ['bob@example.org'] }))
    expect(matching.symbols).not.toHaveProperty('FROM_NEQ_ENVFROM')
    expect(matching.symbols).toHaveProperty('TO_MATCH_ENVRCPT_ALL')
    const other = await scan(await scanInput(HAM, { from: 'bounces@lists.example.net', to: ['carol@example.org'] }))
    expect(other.symbols).toHaveProperty('FROM_NEQ_ENVFROM')
    expect(other.symbols).not.toHaveProperty('TO_MATCH_ENVRCPT_ALL')
  })

  it('rejects with ECONNREFUSED when nothing listens', async () => {
    const port = await freePort()
    await expect(rspamd({ port })(await scanInput(HAM))).rejects.toMatchObject({ code: 'ECONNREFUSED' })
  })
})
