import { describe, expect, it } from 'vitest'
import { smtpTransport } from '../src/index.js'
import { startSink } from '../src/testing/index.js'
import { afterTest } from './helpers/after-test.js'
import { RawSmtp } from './helpers/raw-smtp.js'
import { allowAll, startRelay } from './helpers/relay.js'

// The end-of-data variants of the SMTP smuggling attacks (CVE-2023-51764/5/6).
const SEQUENCES = ['\n.\n', '\r\n.\n', '\n.\r\n', '\r.\r', '\r.\r\n'] as const
const SMUGGLED = 'MAIL FROM:<attacker@evil.test>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\nSubject: SMUGGLED\r\n\r\nsmuggled body\r\n'

async function setup(bareLineEndings?: 'reject' | 'normalize') {
  const sink = await startSink()
  const t = await startRelay({
    stages: [allowAll],
    transport: smtpTransport({ host: sink.host, port: sink.port }),
    ...(bareLineEndings ? { bareLineEndings } : {}),
  })
  const { client } = await RawSmtp.connect(t.port)
  afterTest(
    () => sink.close(),
    () => t.close(),
    async () => client.close(),
  )
  return { sink, client }
}

/** Writes the payload whole, or in two writes split right after the sequence. */
async function sendPayload(client: RawSmtp, sequence: string, split: boolean): Promise<string> {
  const first = `Subject: legit\r\n\r\nline one${sequence}`
  const rest = `${SMUGGLED}.\r\n`
  if (!split) {
    client.write(first + rest)
  } else {
    await new Promise<void>((resolve) => client.socket.write(first, () => resolve()))
    client.write(rest)
  }
  return client.reply()
}

describe('SMTP smuggling protection', () => {
  for (const sequence of SEQUENCES) {
    for (const split of [false, true]) {
      const label = `${JSON.stringify(sequence)}${split ? ' split across writes' : ''}`

      it(`refuses ${label} with 550 5.5.2 and delivers nothing`, async () => {
        const { sink, client } = await setup()
        expect(await client.startMessage('alice@example.com', ['bob@example.org'])).toMatch(/^354/)
        expect(await sendPayload(client, sequence, split)).toBe('550 5.5.2 Message refused: bare CR or LF line ending (RFC 5321 section 2.3.8)')
        // Exactly one reply for the DATA: the smuggled commands were never commands.
        expect(await client.command('QUIT')).toMatch(/^221 /)
        expect(sink.messages).toHaveLength(0)
      })

      it(`normalises ${label} to CRLF and delivers exactly one message when asked to`, async () => {
        const { sink, client } = await setup('normalize')
        expect(await client.startMessage('alice@example.com', ['bob@example.org'])).toMatch(/^354/)
        expect(await sendPayload(client, sequence, split)).toMatch(/^250 2\.0\.0 /)
        expect(await client.command('QUIT')).toMatch(/^221 /)
        const [message] = await sink.waitForMessages(1)
        const raw = message!.raw.toString('latin1')
        expect(raw).toContain('line one\r\n.\r\nMAIL FROM:<attacker@evil.test>')
        expect(raw).not.toMatch(/[^\r]\n|\r[^\n]/)
        expect(sink.messages).toHaveLength(1)
      })
    }
  }

  it('keeps serving the connection after refusing a smuggling attempt', async () => {
    const { sink, client } = await setup()
    await client.startMessage('alice@example.com', ['bob@example.org'])
    await sendPayload(client, '\n.\n', false)
    expect(await client.command('MAIL FROM:<alice@example.com>')).toBe('250 Accepted')
    expect(await client.command('RCPT TO:<bob@example.org>')).toBe('250 Accepted')
    expect(await client.command('DATA')).toMatch(/^354/)
    expect(await client.command('Subject: second\r\n\r\nclean\r\n.')).toMatch(/^250 2\.0\.0 /)
    const [message] = await sink.waitForMessages(1)
    expect(message!.raw.toString()).toContain('Subject: second')
  })
})
