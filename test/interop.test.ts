import { spawn } from 'node:child_process'
import { afterEach, describe, expect, it } from 'vitest'
import { smtpTransport } from '../src/index.js'
import { startSink } from '../src/testing/index.js'
import { havePeer } from './helpers/peers.js'
import { allowDomains, startRelay } from './helpers/relay.js'

const swaks = havePeer('swaks', 'apt-get install -y swaks')

/** Runs swaks, an independent SMTP client; resolves with its exit code and transcript. */
function runSwaks(args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn('swaks', args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    child.stdout.on('data', (d: Buffer) => (output += d.toString()))
    child.stderr.on('data', (d: Buffer) => (output += d.toString()))
    child.once('exit', (code) => resolve({ code, output }))
  })
}

let cleanup: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const fn of cleanup.reverse()) await fn()
  cleanup = []
})

describe.skipIf(!swaks)('an independent client (swaks)', () => {
  it('relays a pipelined message with 8-bit content from swaks to the upstream', async () => {
    const sink = await startSink()
    const t = await startRelay({ stages: [allowDomains('example.org')], transport: smtpTransport({ host: sink.host, port: sink.port }) })
    cleanup.push(
      () => sink.close(),
      () => t.close(),
    )
    const { code, output } = await runSwaks([
      '--server',
      `127.0.0.1:${t.port}`,
      '--from',
      'ann@example.com',
      '--to',
      'bob@example.org',
      '--pipeline',
      '--h-Subject',
      'caf\u00e9',
      '--body',
      'Grüße aus dem Test',
    ])
    expect(output).toMatch(/<-\s+250 2\.0\.0 Ok: queued as /)
    expect(code).toBe(0)
    const [message] = await sink.waitForMessages(1)
    expect(message!.raw.toString()).toContain('Grüße aus dem Test')
  })

  it('gets 554 5.7.1 from the relay for a third-party recipient', async () => {
    const sink = await startSink()
    const t = await startRelay({ stages: [allowDomains('example.org')], transport: smtpTransport({ host: sink.host, port: sink.port }) })
    cleanup.push(
      () => sink.close(),
      () => t.close(),
    )
    const { code, output } = await runSwaks(['--server', `127.0.0.1:${t.port}`, '--from', 'ann@example.com', '--to', 'victim@elsewhere.example'])
    expect(output).toMatch(/<\*\*\s+554 5\.7\.1 Relay access denied/)
    expect(code).not.toBe(0)
    expect(sink.messages).toHaveLength(0)
  })
})
