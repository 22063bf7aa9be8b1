/**
 * The three ways one client or a busy port ended the whole process before (issue 8), each tried
 * in a child process so that a crash is an exit code, not a test runner's error.
 */
import { spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { type AddressInfo, createServer } from 'node:net'
import { describe, expect, it } from 'vitest'
import { createRelay, RelayError } from '../../src/index.js'
import { memoryTransport } from '../../src/testing/index.js'

const child = new URL('../helpers/crash-child.ts', import.meta.url).pathname

describe('the relay process survives', () => {
  it.each([
    ['reset', 'a client that resets its connection after MAIL FROM'],
    ['tls-garbage', 'plain text sent to an implicit-TLS listener'],
    ['port-in-use', 'listen() on a port another process holds'],
  ])('%s: %s', (scenario) => {
    const run = spawnSync(process.execPath, ['--import', 'tsx', child, scenario], { encoding: 'utf8', timeout: 30_000 })
    expect(run.stderr).not.toMatch(/Unhandled 'error' event|Error/)
    expect(run.stdout).toContain('SURVIVED')
    expect(run.status).toBe(0)
  })
})

describe('listen()', () => {
  it('rejects with ERR_RELAY_LISTEN naming host, port and the system error, and frees the ports it had bound', async () => {
    const blocker = createServer().listen(0, '127.0.0.1')
    await once(blocker, 'listening')
    const busy = (blocker.address() as AddressInfo).port
    const probe = createServer().listen(0, '127.0.0.1')
    await once(probe, 'listening')
    const free = (probe.address() as AddressInfo).port
    await new Promise((resolve) => probe.close(resolve))
    const relay = createRelay({
      transport: memoryTransport(),
      listeners: [
        { name: 'free', host: '127.0.0.1', port: free, mode: 'submission' },
        { name: 'taken', host: '127.0.0.1', port: busy, mode: 'submission' },
      ],
    })
    const err = await relay.listen().then(
      () => undefined,
      (e: unknown) => e,
    )
    blocker.close()
    expect(err).toBeInstanceOf(RelayError)
    expect((err as RelayError).code).toBe('ERR_RELAY_LISTEN')
    expect((err as RelayError).message).toBe(
      `cannot listen on 127.0.0.1:${busy} for listener taken: EADDRINUSE listen EADDRINUSE: address already in use 127.0.0.1:${busy} (another process holds it)`,
    )
    expect(relay.addresses).toEqual([])
    // The listener that did bind was closed again: its port can be taken.
    const again = createServer().listen(free, '127.0.0.1')
    await once(again, 'listening')
    again.close()
    await relay.close()
  })
})
