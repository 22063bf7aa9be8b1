import { EventEmitter, once } from 'node:events'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { type Stage, smtpTransport } from '../src/index.js'
import { type Sink, startSink } from '../src/testing/index.js'
import { RawSmtp } from './helpers/raw-smtp.js'
import { allowAll, startRelay, type TestRelay } from './helpers/relay.js'

/** Spools every body, so that temp files exist while a message is in flight. */
const spoolAll: Stage = {
  name: 'spool-all',
  async data(msg, next) {
    await msg.body.spool()
    return next()
  },
}

let sink: Sink
let t: TestRelay
let spoolDir: string
/** Emits each relay log message by name, so a test can wait for the relay to finish a message. */
let logs: EventEmitter

beforeEach(async () => {
  spoolDir = await mkdtemp(join(tmpdir(), 'relaychain-hostile-'))
  sink = await startSink()
  logs = new EventEmitter()
  const emit = (_fields: Record<string, unknown>, message: string) => void logs.emit(message)
  t = await startRelay({
    logger: { debug: emit, info: emit, warn: emit, error: emit },
    stages: [allowAll, spoolAll],
    transport: smtpTransport({ host: sink.host, port: sink.port }),
    spool: { dir: spoolDir, memoryLimit: 64 * 1024 },
    // Short for the stalled-client test; long enough that a loaded machine streaming 30 MB never looks stalled.
    limits: { idleTimeout: 3000 },
  })
})

afterEach(async () => {
  // Whatever the case did, the relay serves the next client normally and leaves no temp file.
  const info = await t.client().sendMail({ envelope: { from: 'a@example.com', to: ['b@example.org'] }, raw: 'Subject: next\r\n\r\nok\r\n' })
  expect(info.response).toMatch(/^250 2\.0\.0 /)
  expect(await readdir(spoolDir)).toEqual([])
  await t.close()
  await sink.close()
  await rm(spoolDir, { recursive: true, force: true })
})

/** Sends `raw` as one message over a raw connection; returns the reply to the final dot. */
async function sendRaw(raw: Buffer | string): Promise<string> {
  const { client } = await RawSmtp.connect(t.port)
  try {
    expect(await client.startMessage('alice@example.com', ['bob@example.org'])).toMatch(/^354/)
    // Dot-stuff as a client must; the content itself is what is under test.
    const stuffed = Buffer.from(raw)
      .toString('latin1')
      .replace(/(^|\r\n)\./g, '$1..')
    client.write(Buffer.from(`${stuffed}.\r\n`, 'latin1'))
    return await client.reply()
  } finally {
    client.close()
  }
}

function withoutReceived(raw: Buffer): Buffer {
  const text = raw.toString('latin1').replace(/^Received: [^\r]*\r\n(?:\t[^\r]*\r\n)*/, '')
  return Buffer.from(text, 'latin1')
}

async function expectRelayedUnchanged(raw: Buffer | string): Promise<void> {
  expect(await sendRaw(raw)).toMatch(/^250 2\.0\.0 /)
  const [message] = await sink.waitForMessages(1)
  expect(withoutReceived(message!.raw).equals(Buffer.from(raw))).toBe(true)
}

describe('hostile input', () => {
  it('relays a message with a 100 KB header line unchanged', async () => {
    await expectRelayedUnchanged(`X-Long: ${'a'.repeat(100 * 1024)}\r\nSubject: long\r\n\r\nbody\r\n`)
  })

  it('relays a message with a 1 MB body line unchanged', async () => {
    await expectRelayedUnchanged(`Subject: long line\r\n\r\n${'b'.repeat(1024 * 1024)}\r\n`)
  })

  it('relays NUL bytes in headers and body unchanged', async () => {
    await expectRelayedUnchanged(Buffer.from('Subject: nul\x00here\r\n\r\nbody\x00with\x00nuls\r\n', 'latin1'))
  })

  it('relays MIME with a missing boundary unchanged', async () => {
    await expectRelayedUnchanged('Content-Type: multipart/mixed\r\nSubject: broken\r\n\r\n--nothing\r\nContent-Type: text/plain\r\n\r\nx\r\n')
  })

  it('relays 100-deep nested multiparts unchanged', async () => {
    let body = 'Content-Type: text/plain\r\n\r\ninnermost\r\n'
    for (let depth = 0; depth < 100; depth++) {
      body = `Content-Type: multipart/mixed; boundary="b${depth}"\r\n\r\n--b${depth}\r\n${body}--b${depth}--\r\n`
    }
    await expectRelayedUnchanged(`Subject: deep\r\n${body}`)
  })

  it('relays 8-bit header bytes sent without SMTPUTF8 unchanged', async () => {
    await expectRelayedUnchanged(Buffer.from('Subject: caf\xe9 cr\xe8me\r\nFrom: J\xf6rg <j@example.com>\r\n\r\nbody\r\n', 'latin1'))
  })

  it('relays an empty message with only the trace field added', async () => {
    expect(await sendRaw('')).toMatch(/^250 2\.0\.0 /)
    const [message] = await sink.waitForMessages(1)
    expect(message!.raw.toString()).toMatch(/^Received: [\s\S]*\r\n\r\n$/)
  })

  it('adds the missing empty line between the header section and the body, as Postfix does', async () => {
    expect(await sendRaw('Subject: no separator\r\nthis line starts the body\r\n')).toMatch(/^250 2\.0\.0 /)
    const [message] = await sink.waitForMessages(1)
    expect(withoutReceived(message!.raw).toString()).toBe('Subject: no separator\r\n\r\nthis line starts the body\r\n')
  })

  it('refuses a message whose first line is a continuation line with 550 5.6.0, forwarding nothing', async () => {
    // Relayed, it would arrive as Received, an empty line, then the fields: no From, To or Subject.
    expect(await sendRaw(' continuation as the first line\r\nFrom: a@example.com\r\nSubject: s\r\n\r\nbody\r\n')).toBe(
      '550 5.6.0 Message refused: the header section starts with a continuation line',
    )
    expect(sink.messages).toHaveLength(0)
  })

  it('refuses a header section over the limit with 552 5.3.4', async () => {
    const headers = Array.from({ length: 20_000 }, (_, i) => `X-H${i}: ${'v'.repeat(50)}\r\n`).join('')
    expect(await sendRaw(`${headers}\r\nbody\r\n`)).toBe('552 5.3.4 Message header section too large')
    expect(sink.messages).toHaveLength(0)
  })

  it('refuses a message over the size limit with 552 5.3.4 and forwards nothing', async () => {
    const big = `Subject: big\r\n\r\n${'x'.repeat(998)}\r\n`.repeat(30 * 1024)
    expect(await sendRaw(big)).toBe(`552 5.3.4 Message size exceeds fixed limit of ${25 * 1024 * 1024} bytes`)
    expect(sink.messages).toHaveLength(0)
  })

  it('delivers nothing when the client disconnects in the middle of DATA', async () => {
    const { client } = await RawSmtp.connect(t.port)
    expect(await client.startMessage('alice@example.com', ['bob@example.org'])).toMatch(/^354/)
    await new Promise<void>((resolve) => client.socket.write(`Subject: cut\r\n\r\n${'y'.repeat(512 * 1024)}`, () => resolve()))
    const refused = once(logs, 'message refused')
    client.close()
    await refused
    expect(sink.messages).toHaveLength(0)
  })

  it('closes a client that stalls in the middle of DATA with 421 and delivers nothing', async () => {
    const { client } = await RawSmtp.connect(t.port)
    expect(await client.startMessage('alice@example.com', ['bob@example.org'])).toMatch(/^354/)
    const refused = once(logs, 'message refused')
    client.write('Subject: stalled\r\n\r\npartial')
    expect(await client.reply()).toMatch(/^421 /)
    await refused
    expect(sink.messages).toHaveLength(0)
  })
})
