// The package check, the durable queue and its command: a relay built from the installed tarball
// queues one message for a next hop that refuses connections (so it stays queued), closes, and
// prints the queue id; check-package then asks the installed `relaychain` bin about it.
import { createServer } from 'node:net'
import { createRelay, durableQueue, relayPolicy, smtpTransport } from 'relaychain'
import sendOne from './smtp-client.cjs'

const dir = process.argv[2]
if (!dir) throw new Error('usage: node queue.mjs <queue dir>')
// A port nothing listens on: bind one, note it, close it.
const closed = await new Promise((resolve) => {
  const server = createServer().listen(0, '127.0.0.1', () => {
    const { port } = server.address()
    server.close(() => resolve(port))
  })
})
const relay = createRelay({
  stages: [relayPolicy({ networks: ['127.0.0.1/32'] })],
  transport: durableQueue({ dir, deliver: smtpTransport({ host: '127.0.0.1', port: closed }) }),
  listeners: [{ host: '127.0.0.1', port: 0, mode: 'submission' }],
})
const [bound] = await relay.listen()
const reply = await sendOne(bound.port, {
  from: 'ann@example.com',
  to: 'bob@example.org',
  message: 'From: ann@example.com\nTo: bob@example.org\nSubject: queued\n\nHello.\n',
})
await relay.close()
const id = /queued as (\S+)/.exec(reply)?.[1]
if (!/^250 /.test(reply) || !id) throw new Error(`queue: unexpected reply ${reply}`)
console.log(id)
