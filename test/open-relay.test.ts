/** checkOpenRelay() against every example relay: none may accept a third-party relay test. */

import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { startBackupMx } from '../examples/backup-mx.js'
import { startDirectMx } from '../examples/direct-mx.js'
import { startSmarthost } from '../examples/smarthost.js'
import { checkOpenRelay, type OpenRelayReport } from '../src/testing/index.js'

const root = fileURLToPath(new URL('..', import.meta.url))

function expectClosed(report: OpenRelayReport): void {
  expect(report.tests.filter((t) => t.accepted).map((t) => `${t.name}: ${t.rcptTo} → ${t.reply}`)).toEqual([])
  expect(report.passed).toBe(true)
}

describe('the example relays are not open relays', () => {
  it('examples/smarthost.ts refuses every relay test from a client outside its LAN, and relays nothing for it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'smarthost-'))
    const s = await startSmarthost({ RELAY_PORT: '0', QUEUE_DIR: dir })
    try {
      const report = await checkOpenRelay({ host: s.host, port: s.port, domain: 'office.example', sendData: true })
      expectClosed(report)
      expect(report.control.reply).toBe('554 5.7.1 Relay access denied') // a submission relay has no inbound domain
      expect(s.upstream!.messages).toHaveLength(0)
      for await (const entry of s.queue.list()) expect.fail(`stored ${entry.id} for a relay test`)
    } finally {
      await s.close()
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('examples/backup-mx.ts refuses every relay test and accepts mail for its domain', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'backup-mx-'))
    const mx = await startBackupMx({ RELAY_PORT: '0', RELAY_DOMAINS: 'example.test', QUEUE_DIR: dir })
    try {
      const report = await checkOpenRelay({ host: mx.host, port: mx.port, domain: 'example.test', sendData: true })
      expectClosed(report)
      expect(report.control).toMatchObject({ accepted: true, reply: '250 Accepted' })
      expect((await mx.upstream!.waitForMessages(1)).map((m) => m.rcptTo)).toEqual([['postmaster@example.test']])
      expect(mx.upstream!.messages).toHaveLength(1)
    } finally {
      await mx.close()
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('examples/direct-mx.ts refuses every relay test from a client outside its LAN and queues nothing', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'direct-mx-'))
    // Nothing may be looked up: the DNS server is a port where nobody answers.
    const s = await startDirectMx({ RELAY_PORT: '0', LAN: '192.168.1.0/24', QUEUE_DIR: dir, DNS_SERVER: '127.0.0.1:9' })
    try {
      const report = await checkOpenRelay({ host: s.host, port: s.port, domain: 'office.example', sendData: true })
      expectClosed(report)
      expect(report.control.reply).toBe('554 5.7.1 Relay access denied') // an outgoing server has no inbound domain
      const entries = []
      for await (const e of s.queue.list()) entries.push(e)
      expect(entries).toEqual([])
    } finally {
      await s.close()
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('examples/quickstart.ts (run as its own process) refuses every relay test', async () => {
    const maildir = await mkdtemp(join(tmpdir(), 'quickstart-'))
    const child = spawn(process.execPath, ['--import', 'tsx', 'examples/quickstart.ts'], {
      cwd: root,
      env: { ...process.env, RELAY_PORT: '0', MAILDIR: maildir },
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    const exited = once(child, 'exit')
    try {
      let port = 0
      for await (const line of createInterface({ input: child.stdout! })) {
        const match = /listening on 127\.0\.0\.1:(\d+)/.exec(line)
        if (match) port = Number(match[1])
        if (line.includes('Serving until Ctrl-C')) break
      }
      expect(port).toBeGreaterThan(0)
      const report = await checkOpenRelay({ host: '127.0.0.1', port, domain: 'example.test' })
      expectClosed(report)
      expect(report.control.accepted).toBe(true)
    } finally {
      if (child.exitCode === null) process.kill(child.pid!, 'SIGINT')
      await exited
      await rm(maildir, { recursive: true, force: true })
    }
  })
})
