// Type-checked against the installed tarball (ESM declarations), with skipLibCheck off.
import { createRelay, type DeliveryEvent, type Relay, RelayError, type Stage, smtpTransport } from 'relaychain'
import { dkimSign } from 'relaychain/stages/dkim-sign'
import { memoryTransport, type Sink, startSink } from 'relaychain/testing'

const stamp: Stage = {
  name: 'stamp',
  modifies: 'headers',
  async data(msg, next) {
    msg.headers.add('X-Checked', 'yes')
    return next()
  },
}
const relay: Relay = createRelay({
  stages: [stamp, dkimSign({ keys: { 'example.com': { selector: 's1', privateKey: 'PEM' } } })],
  transport: smtpTransport({ host: 'smarthost.example', port: 587, requireTls: true }),
  listeners: [{ host: '0.0.0.0', port: 25 }],
})
relay.events.subscribe((event: DeliveryEvent) => {
  if (event.type === 'accepted') console.log(event.id.toUpperCase())
})
const sink: Promise<Sink> = startSink()
const err: unknown = new RelayError('ERR_RELAY_INVALID_OPTION', 'x')
if (err instanceof RelayError) console.log(err.code satisfies string)
memoryTransport().send satisfies (...args: never[]) => Promise<unknown>
// @ts-expect-error not an option
createRelay({ transport: memoryTransport(), nope: true })
void sink
