import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { clamd, type SmtpError, type Stage, smtpTransport, type VirusScanner, virusScan } from '../../src/index.js'
import type { VirusScanResult } from '../../src/stages/virus-scan.js'
import { memoryTransport, runStage, type Sink, startSink, testMessage } from '../../src/testing/index.js'
import { havePeer } from '../helpers/peers.js'
import { allowAll, refusal, startRelay, type TestRelay } from '../helpers/relay.js'
import { type Daemon, EICAR, startClamd, withAttachment } from '../helpers/scanners.js'

const envelope = { from: 'ann@example.com', to: ['bob@example.org'] }
const PLAIN_EICAR = `From: ann@example.com\r\nTo: bob@example.org\r\nSubject: test\r\n\r\n${EICAR}\r\n`

describe('virus-scan with a scanner function', () => {
  it('refuses invalid options with ERR_RELAY_INVALID_OPTION when the chain is built', () => {
    const scanner: VirusScanner = () => ({ status: 'clean' })
    const bad = [
      { scanner: undefined as unknown as VirusScanner },
      { scanner, onInfected: 'quarantine' as const },
      { scanner, onTooLarge: 'ignore' as 'accept' },
      { scanner, onError: 'reject' as 'accept' },
      { scanner, timeout: -1 },
    ]
    for (const options of bad) expect(() => virusScan(options)).toThrow(expect.objectContaining({ code: 'ERR_RELAY_INVALID_OPTION' }))
    expect(virusScan({ scanner }).modifies).toBeUndefined()
  })

  it('answers 451 4.7.1 when the scanner fails, or passes the message unscanned with onError: accept', async () => {
    const broken: VirusScanner = () => Promise.reject(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }))
    const err = await runStage(virusScan({ scanner: broken }), await testMessage()).catch((e: SmtpError) => e)
    expect((err as SmtpError).toReply()).toBe('451 4.7.1 Message could not be checked, please try again later')
    expect((err as SmtpError).reason).toBe('virus scanner failed: ECONNREFUSED connect ECONNREFUSED')
    const msg = await testMessage()
    const transport = memoryTransport()
    await runStage(virusScan({ scanner: broken, onError: 'accept' }), msg, transport)
    expect(msg.state.virus).toEqual({ status: 'unscanned' })
    expect(transport.messages).toHaveLength(1)
  })
})

describe('virus-scan with a scanner that answers nonsense', () => {
  it('treats an answer that is not a verdict as a failed scan: 451 4.7.1', async () => {
    const confused = (() => ({ status: 'infected' })) as unknown as VirusScanner
    const err = await runStage(virusScan({ scanner: confused }), await testMessage()).catch((e: SmtpError) => e)
    expect((err as SmtpError).toReply()).toBe('451 4.7.1 Message could not be checked, please try again later')
    expect((err as SmtpError).reason).toBe('virus scanner failed: the scanner answered {"status":"infected"}')
  })
})

describe.skipIf(!havePeer('clamd', 'apt-get install -y clamav-daemon'))('virus-scan with a real clamd, end to end', () => {
  let daemon: Daemon
  let sink: Sink
  const relays: TestRelay[] = []
  const seen: VirusScanResult[] = []
  // Placed before the scan, it sees the verdict of refused messages too.
  const record: Stage = {
    name: 'record',
    async data(msg, next) {
      try {
        return await next()
      } finally {
        seen.push(msg.state.virus!)
      }
    },
  }
  async function relay(options: Omit<Parameters<typeof virusScan>[0], 'scanner'> = {}) {
    const scanner = clamd({ port: daemon.port, maxSize: 1024 * 1024 })
    const t = await startRelay({
      stages: [allowAll, record, virusScan({ scanner, ...options })],
      transport: smtpTransport({ host: sink.host, port: sink.port }),
    })
    relays.push(t)
    return t
  }
  const big = `From: ann@example.com\r\nSubject: big\r\n\r\n${`${'z'.repeat(998)}\r\n`.repeat(1100)}`

  beforeAll(async () => {
    ;[daemon, sink] = await Promise.all([startClamd({ streamMaxLength: '1M' }), startSink()])
  })
  afterAll(async () => {
    for (const t of relays) await t.close()
    await sink?.close()
    await daemon?.stop()
  })

  it('rejects EICAR in a plain text body with 554 5.7.1 and forwards nothing', async () => {
    const t = await relay()
    const err = await refusal(t.client().sendMail({ envelope, raw: PLAIN_EICAR }))
    expect(err.response).toBe('554 5.7.1 Message content rejected')
    expect(sink.messages).toHaveLength(0)
  })

  it('rejects EICAR inside a base64 attachment with 554 5.7.1', async () => {
    const t = await relay()
    const err = await refusal(t.client().sendMail({ envelope, raw: await withAttachment(EICAR, 'eicar.com') }))
    expect(err.response).toBe('554 5.7.1 Message content rejected')
    expect(seen.at(-1)).toEqual({ status: 'infected', viruses: ['Test.EICAR.UNOFFICIAL'] })
  })

  it('relays a clean message with an attachment byte for byte', async () => {
    const t = await relay()
    const raw = await withAttachment(Buffer.alloc(200_000, 0x5a), 'data.bin')
    await t.client().sendMail({ envelope, raw })
    const [message] = await sink.waitForMessages(1)
    expect(message!.raw.subarray(message!.raw.indexOf('From: '))).toEqual(raw)
    expect(seen.at(-1)).toEqual({ status: 'clean' })
  })

  it('quarantines an infected message when told to: the client gets 250, the upstream nothing', async () => {
    const quarantine = memoryTransport()
    const t = await relay({ onInfected: 'quarantine', quarantine })
    const info = await t.client().sendMail({ envelope, raw: PLAIN_EICAR })
    expect(info.response).toMatch(/^250 2\.0\.0 Ok: queued as /)
    expect(quarantine.messages).toHaveLength(1)
    expect(sink.messages).toHaveLength(1)
  })

  it("refuses a message over clamd's limit with 552 5.3.4, tempfails it, or passes it, as configured", async () => {
    const refused = await refusal((await relay()).client().sendMail({ envelope, raw: big }))
    expect(refused.response).toBe('552 5.3.4 Message too big to be checked')
    const tempfailed = await refusal((await relay({ onTooLarge: 'tempfail' })).client().sendMail({ envelope, raw: big }))
    expect(tempfailed.response).toBe('451 4.7.1 Message could not be checked, please try again later')
    const info = await (await relay({ onTooLarge: 'accept' })).client().sendMail({ envelope, raw: big })
    expect(info.response).toMatch(/^250 /)
    expect(seen.at(-1)).toEqual({ status: 'too-large' })
  })

  it('answers 451 4.7.1 once clamd is killed mid-test', async () => {
    const t = await relay()
    await daemon.kill()
    const err = await refusal(t.client().sendMail({ envelope, raw: PLAIN_EICAR }))
    expect(err.response).toBe('451 4.7.1 Message could not be checked, please try again later')
  })
})
