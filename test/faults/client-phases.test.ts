/**
 * A client that resets (RST) or closes (FIN) its connection at every phase of a session, on each
 * listener mode: the relay ends that connection only, forwards nothing half-way, leaves no temp
 * file or upstream transaction behind, raises nothing on our side, and serves the next client
 * with the exact reply.
 */

import { once } from 'node:events'
import { connect as connectTcp } from 'node:net'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { ListenerMode } from '../../src/index.js'
import { type FaultRelay, startFaultRelay } from '../helpers/fault-relay.js'
import type { RawSmtp } from '../helpers/raw-smtp.js'
import { watchUncaught } from '../helpers/uncaught.js'

type Fault = 'RST' | 'FIN'

/** A phase: gets a client there, and says which relay log lines show the relay is done with it. */
interface Phase {
  readonly name: string
  readonly modes?: readonly ListenerMode[]
  /** Brings a client to the phase; returns it (or a bare socket) and what to do after the fault. */
  run(r: FaultRelay): Promise<{ client: RawSmtp | import('node:net').Socket; message?: boolean; after?: () => void }>
}

const MESSAGE = `Subject: faulted\r\n\r\n${'line of a message that will not arrive\r\n'.repeat(2000)}`

async function inTransaction(r: FaultRelay, upTo: 'MAIL' | 'RCPT' | 'DATA'): Promise<RawSmtp> {
  const client = await r.ready()
  expect(await client.command('MAIL FROM:<alice@example.com>')).toMatch(/^250 /)
  if (upTo === 'MAIL') return client
  expect(await client.command('RCPT TO:<bob@example.org>')).toMatch(/^250 /)
  if (upTo === 'RCPT') return client
  expect(await client.command('DATA')).toMatch(/^354 /)
  return client
}

const phases: Phase[] = [
  {
    name: 'before the greeting',
    async run(r) {
      const socket = connectTcp(r.port, '127.0.0.1')
      socket.on('error', () => {})
      await once(socket, 'connect')
      return { client: socket }
    },
  },
  { name: 'after EHLO', run: async (r) => ({ client: await r.ready({ auth: false }) }) },
  {
    name: 'during STARTTLS negotiation',
    modes: ['smtp', 'submission'],
    async run(r) {
      const client = await r.connect()
      expect(await client.command('EHLO client.test')).toMatch(/^250/)
      expect(await client.command('STARTTLS')).toBe('220 Ready to start TLS')
      client.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0xa0, 0x01])) // the start of a ClientHello
      return { client }
    },
  },
  {
    name: 'during AUTH continuation lines',
    async run(r) {
      const client = await r.ready({ auth: false })
      if (r.mode === 'smtp') {
        expect(await client.starttls({ rejectUnauthorized: false })).toMatch(/^220/)
        expect(await client.command('EHLO client.test')).toMatch(/^250/)
      }
      expect(await client.command('AUTH LOGIN')).toBe('334 VXNlcm5hbWU6')
      expect(await client.command(Buffer.from('alice').toString('base64'))).toBe('334 UGFzc3dvcmQ6')
      return { client }
    },
  },
  { name: 'after MAIL', run: async (r) => ({ client: await inTransaction(r, 'MAIL') }) },
  { name: 'after RCPT', run: async (r) => ({ client: await inTransaction(r, 'RCPT') }) },
  { name: 'right after DATA', run: async (r) => ({ client: await inTransaction(r, 'DATA'), message: true }) },
  {
    name: 'in the middle of the body',
    async run(r) {
      const client = await inTransaction(r, 'DATA')
      await new Promise<void>((resolve) => client.socket.write(MESSAGE, () => resolve()))
      return { client, message: true }
    },
  },
  {
    name: 'right after the final dot, before the upstream is written',
    async run(r) {
      const client = await inTransaction(r, 'DATA')
      const hold = r.hold()
      client.write(`${MESSAGE}.\r\n`)
      await hold.entered
      return { client, message: true, after: hold.release }
    },
  },
  {
    name: 'right after the final dot, while the upstream is written',
    async run(r) {
      const client = await inTransaction(r, 'DATA')
      const upstream = r.holdUpstream()
      // Larger than the loopback buffers between relay and sink, so the final dot cannot be on its way.
      client.write(`${`Subject: big\r\n\r\n${'x'.repeat(998)}\r\n`.repeat(10_000)}.\r\n`)
      await upstream.entered
      return { client, message: true, after: upstream.release }
    },
  },
]

const uncaught = watchUncaught()

describe.each(['smtp', 'submission', 'submissions'] as const)('a client that leaves, on a %s listener', (mode) => {
  let r: FaultRelay
  beforeAll(async () => {
    r = await startFaultRelay(mode)
  })
  afterAll(() => r.close())
  afterEach(() => expect(uncaught()).toEqual([]))

  const cases = phases
    .filter((p) => !p.modes || p.modes.includes(mode))
    .flatMap((phase) => (['RST', 'FIN'] as const).map((fault) => [phase, fault] as const))
  it.each(cases.map(([phase, fault]) => ({ phase, fault, name: `${fault} ${phase.name}` })))(
    'on $name: nothing is forwarded and the next client gets 250 2.0.0',
    async ({ phase, fault }) => {
      const delivered = r.sink.messages.length
      const { client, message, after } = await phase.run(r)
      const socket = 'tcp' in client ? client.tcp : client
      const port = socket.localPort
      const closed = r.logs.next('connection closed', (f) => f.port === port)
      const refused = message ? r.logs.next('message refused') : undefined
      leave(client, fault as Fault)
      await closed
      await refused
      after?.()
      await r.healthy()
      // Only the healthy message arrived: nothing of the faulted one, whole or in part.
      expect(r.sink.messages.length).toBe(delivered + 1)
      expect(r.sink.messages.at(-1)!.raw.toString()).toMatch(/Subject: healthy/)
    },
  )
})

function leave(client: RawSmtp | import('node:net').Socket, fault: Fault): void {
  if ('tcp' in client) return fault === 'RST' ? client.reset() : client.fin()
  if (fault === 'RST') client.resetAndDestroy()
  else client.end()
}
