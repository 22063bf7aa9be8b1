/**
 * One way a client or the host could take a relay process down, tried in this process: a TCP
 * reset after MAIL FROM, plain text to an implicit-TLS listener, or listen() on a busy port.
 * Prints SURVIVED and exits 0 if the relay is still serving a fresh client afterwards; any
 * unhandled 'error' event ends the process with a non-zero exit instead.
 */
import { once } from 'node:events'
import { type AddressInfo, createServer } from 'node:net'
import { createRelay, RelayError } from '../../src/index.js'
import { memoryTransport } from '../../src/testing/index.js'
import { TLS } from './fault-relay.js'
import { RawSmtp } from './raw-smtp.js'
import { allowAll } from './relay.js'

const scenario = process.argv[2]
const make = (mode: 'submission' | 'submissions', port = 0) =>
  createRelay({ stages: [allowAll], transport: memoryTransport(), listeners: [{ host: '127.0.0.1', port, mode }], tls: TLS })

if (scenario === 'port-in-use') {
  const blocker = createServer().listen(0, '127.0.0.1')
  await once(blocker, 'listening')
  const relay = make('submission', (blocker.address() as AddressInfo).port)
  const err = await relay.listen().then(
    () => undefined,
    (e: unknown) => e,
  )
  blocker.close()
  if (!(err instanceof RelayError) || err.code !== 'ERR_RELAY_LISTEN')
    throw new Error(`listen() did not reject with ERR_RELAY_LISTEN: ${String(err)}`)
  console.log('SURVIVED')
  process.exit(0)
}

const relay = make(scenario === 'tls-garbage' ? 'submissions' : 'submission')
const [bound] = await relay.listen()
if (scenario === 'tls-garbage') {
  const { connect } = await import('node:net')
  const socket = connect(bound!.port, '127.0.0.1')
  socket.on('error', () => {})
  await once(socket, 'connect')
  socket.write('this is not a TLS ClientHello\r\n\r\n')
  await once(socket, 'close')
  const fresh = await RawSmtp.connectTls(bound!.port)
  if (!fresh.greeting.startsWith('220 ')) throw new Error(`no greeting: ${fresh.greeting}`)
  fresh.client.close()
} else {
  const { client } = await RawSmtp.connect(bound!.port)
  await client.command('EHLO crash.test')
  await client.command('MAIL FROM:<a@example.com>')
  client.reset()
  await client.closed
  // Give the relay's side the same turn of the event loop a crash would have taken.
  await new Promise((resolve) => setImmediate(resolve))
  const fresh = await RawSmtp.connect(bound!.port)
  if (!fresh.greeting.startsWith('220 ')) throw new Error(`no greeting: ${fresh.greeting}`)
  fresh.client.close()
}
await relay.close()
console.log('SURVIVED')
