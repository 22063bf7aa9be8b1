import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { archiveTap, createPipeline, type FileEnvelopeRecord, fileTransport, type Logger, type Stage, smtpTransport } from '../../src/index.js'
import { memoryTransport, startSink } from '../../src/testing/index.js'
import { afterTest } from '../helpers/after-test.js'
import { allowAll, refusal, startRelay } from '../helpers/relay.js'
import { freePort } from '../helpers/scanners.js'
import { appending } from '../helpers/stages.js'

const RAW = 'From: Ann <ann@example.com>\r\nTo: Bob <bob@example.org>\r\nSubject: quarterly report\r\n\r\nThe figures are attached.\r\n'
const envelope = { from: 'ann@example.com', to: ['bob@example.org'] }

/** Later stages that change the message, so that "as received" and "as delivered" differ. */
const footer = appending('footer', '-- \r\nSent through the gateway\r\n')
const traceField: Stage = {
  name: 'trace-field',
  modifies: 'trace',
  async data(msg, next) {
    msg.headers.add('X-Gateway', 'out-1')
    return next()
  },
}

async function archiveDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'relaychain-archive-'))
  afterTest(() => rm(dir, { recursive: true, force: true }))
  return dir
}

/** The archived messages in `dir`: each `.eml` with its sidecar. */
async function archived(dir: string): Promise<Array<{ eml: Buffer; record: FileEnvelopeRecord }>> {
  const names = (await readdir(dir)).filter((n) => n.endsWith('.eml')).sort()
  return Promise.all(
    names.map(async (n) => ({
      eml: await readFile(join(dir, n)),
      record: JSON.parse(await readFile(join(dir, n.replace(/\.eml$/, '.json')), 'utf8')) as FileEnvelopeRecord,
    })),
  )
}

async function setup(stages: Stage[], sinkOptions: Parameters<typeof startSink>[0] = {}, relayOptions = {}) {
  const sink = await startSink(sinkOptions)
  const t = await startRelay({ stages: [allowAll, ...stages], transport: smtpTransport({ host: sink.host, port: sink.port }), ...relayOptions })
  afterTest(
    () => sink.close(),
    () => t.close(),
  )
  return { sink, t }
}

function capture(): Logger & { errors: string[] } {
  const errors: string[] = []
  return { errors, debug() {}, info() {}, warn() {}, error: (fields, message) => errors.push(`${message}: ${String(fields.err)}`) }
}

describe('archive-tap', () => {
  it('archives the message as received, with envelope and delivery outcome, while later stages change what is delivered', async () => {
    const dir = await archiveDir()
    const { sink, t } = await setup([archiveTap({ to: fileTransport({ dir }) }), footer, traceField])
    const info = await t.client().sendMail({ envelope, raw: RAW })
    const [delivered] = await sink.waitForMessages(1)
    const [copy] = await archived(dir)
    const received = copy!.eml.toString()
    expect(received).toMatch(/^Received: from \[127\.0\.0\.1\]/)
    expect(received.slice(received.indexOf('From: '))).toBe(RAW)
    expect(delivered!.raw.toString()).toContain('Sent through the gateway')
    expect(copy!.record).toMatchObject({
      id: String(info.response).split(' ').pop(),
      mailFrom: 'ann@example.com',
      rcptTo: ['bob@example.org'],
      archive: {
        copy: 'received',
        outcome: { status: 'delivered', accepted: ['bob@example.org'], rejected: [], response: expect.stringMatching(/^250 /) },
      },
    })
  })

  it("archives exactly what the upstream got with copy: 'delivered', trace fields added after it included", async () => {
    const dir = await archiveDir()
    const { sink, t } = await setup([footer, archiveTap({ to: fileTransport({ dir }), copy: 'delivered' }), traceField])
    await t.client().sendMail({ envelope, raw: RAW })
    const [delivered] = await sink.waitForMessages(1)
    const [copy] = await archived(dir)
    expect(copy!.eml).toEqual(delivered!.raw)
    expect(copy!.eml.toString()).toMatch(/^X-Gateway: out-1\r\n/)
    expect(copy!.record.archive?.copy).toBe('delivered')
  })

  it("seals the message with copy: 'delivered', so the pipeline refuses a later body or header edit", () => {
    const archive = archiveTap({ to: memoryTransport(), copy: 'delivered' })
    expect(archive.seals).toBe('message')
    expect(() => createPipeline({ stages: [archive, footer], transport: memoryTransport() })).toThrow(
      expect.objectContaining({ code: 'ERR_RELAY_UNSAFE_ORDER' }),
    )
    expect(archiveTap({ to: memoryTransport() }).seals).toBeUndefined()
  })

  it('records a partial delivery with the refusal of each refused recipient', async () => {
    const dir = await archiveDir()
    const { sink, t } = await setup([archiveTap({ to: fileTransport({ dir }) })], {
      rcpt: (a) => (a.startsWith('nobody@') ? '550 5.1.1 No such user here' : undefined),
    })
    await t.client().sendMail({ envelope: { from: 'ann@example.com', to: ['bob@example.org', 'nobody@example.org'] }, raw: RAW })
    // The DSN to the sender leaves through the transport, not back through the inbound chain: not archived.
    const [, dsn] = await sink.waitForMessages(2)
    expect(dsn).toMatchObject({ mailFrom: '', rcptTo: ['ann@example.com'] })
    const copies = await archived(dir)
    expect(copies).toHaveLength(1)
    expect(copies[0]!.record.archive?.outcome).toEqual({
      status: 'partial',
      accepted: ['bob@example.org'],
      rejected: [{ rcpt: 'nobody@example.org', reply: '550 5.1.1 No such user here' }],
      response: expect.stringMatching(/^250 /),
    })
  })

  it('records a refused message with the reply the client got, and passes the refusal on', async () => {
    const dir = await archiveDir()
    const { t } = await setup([archiveTap({ to: fileTransport({ dir }) })], { data: () => '554 5.7.1 Message looks like spam' })
    const err = await refusal(t.client().sendMail({ envelope, raw: RAW }))
    expect(err.response).toBe('554 5.7.1 Message looks like spam')
    const [copy] = await archived(dir)
    expect(copy!.record.archive?.outcome).toEqual({ status: 'refused', accepted: [], rejected: [], response: '554 5.7.1 Message looks like spam' })
  })

  it('sends a BCC-style copy to an archive mailbox over SMTP, unchanged', async () => {
    const archive = await startSink()
    afterTest(() => archive.close())
    const { sink, t } = await setup([
      archiveTap({ to: smtpTransport({ host: archive.host, port: archive.port }), recipients: ['journal@archive.example'] }),
    ])
    await t.client().sendMail({ envelope, raw: RAW })
    const [[delivered], [copy]] = await Promise.all([sink.waitForMessages(1), archive.waitForMessages(1)])
    expect(copy!.mailFrom).toBe('ann@example.com')
    expect(copy!.rcptTo).toEqual(['journal@archive.example'])
    expect(copy!.raw).toEqual(delivered!.raw)
  })

  it('delivers and answers 250 when a best-effort archive is down, and logs the failure', async () => {
    const logger = capture()
    const down = smtpTransport({ host: '127.0.0.1', port: await freePort(), pool: false })
    const { sink, t } = await setup([archiveTap({ to: down, logger })])
    const info = await t.client().sendMail({ envelope, raw: RAW })
    expect(info.response).toMatch(/^250 2\.0\.0 /)
    expect(sink.messages).toHaveLength(1)
    expect(logger.errors).toEqual([
      expect.stringMatching(/^archive failed; the message was not archived: 127\.0\.0\.1:\d+: ESOCKET connect ECONNREFUSED/),
    ])
  })

  it('tempfails with 451 4.3.0 and delivers nothing when a mandatory archive is down', async () => {
    const down = smtpTransport({ host: '127.0.0.1', port: await freePort(), pool: false })
    const { sink, t } = await setup([archiveTap({ to: down, mandatory: true })])
    const err = await refusal(t.client().sendMail({ envelope, raw: RAW }))
    expect(err.response).toBe('451 4.3.0 Temporary local problem, please try again later')
    expect(sink.messages).toHaveLength(0)
  })

  it('writes a mandatory copy before delivery, so its sidecar has no outcome', async () => {
    const dir = await archiveDir()
    const { sink, t } = await setup([archiveTap({ to: fileTransport({ dir }), mandatory: true })])
    await t.client().sendMail({ envelope, raw: RAW })
    await sink.waitForMessages(1)
    const [copy] = await archived(dir)
    expect(copy!.record.archive).toEqual({ copy: 'received' })
  })

  it('refuses impossible options with ERR_RELAY_INVALID_OPTION when the chain is built', () => {
    const to = memoryTransport()
    const bad = [
      { to, copy: 'delivered' as const, mandatory: true },
      { to, recipients: ['not an address'] },
      { to, recipients: [] },
      { to: undefined as unknown as typeof to },
    ]
    for (const options of bad) expect(() => archiveTap(options)).toThrow(expect.objectContaining({ code: 'ERR_RELAY_INVALID_OPTION' }))
  })
})
