/**
 * Faults behind the relay: an upstream that breaks in the middle of DATA, and stages that throw,
 * reject or never settle. The client gets a 4xx (so it keeps responsibility for the message),
 * nothing is counted as delivered, and the next client is served normally.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { routeTransport, type Stage, smtpTransport } from '../../src/index.js'
import { type FaultRelay, startFaultRelay } from '../helpers/fault-relay.js'
import { type HostileUpstream, startHostileUpstream } from '../helpers/hostile-upstream.js'
import { RawSmtp } from '../helpers/raw-smtp.js'
import { watchUncaught } from '../helpers/uncaught.js'

const uncaught = watchUncaught()
let r: FaultRelay | undefined
let upstream: HostileUpstream | undefined
afterEach(async () => {
  await r?.close()
  await upstream?.close()
  r = undefined
  upstream = undefined
  expect(uncaught()).toEqual([])
})

const BIG = `Subject: to a broken upstream\r\n\r\n${'a line that the upstream will never accept\r\n'.repeat(8000)}`

describe('an upstream that fails mid-DATA', () => {
  it.each([
    ['reset-mid-transfer', 'resets the connection in the middle of the transfer'],
    ['refuse-mid-transfer', 'answers 554 before the message is complete and closes'],
    ['close-after-final-dot', 'closes after the final dot without a reply'],
  ] as const)('%s: the client gets 451 4.4.1 when the upstream %s, and nothing counts as delivered', async (fault, _what) => {
    upstream = await startHostileUpstream(fault)
    const port = upstream.port
    r = await startFaultRelay('submission', {
      transport: (sink) =>
        routeTransport({
          routes: [{ domains: ['broken.test'], transport: smtpTransport({ host: '127.0.0.1', port, pool: false }) }],
          fallback: smtpTransport({ host: sink.host, port: sink.port }),
        }),
    })
    const client = await r.ready()
    expect(await client.command('MAIL FROM:<alice@example.com>')).toMatch(/^250 /)
    expect(await client.command('RCPT TO:<victim@broken.test>')).toMatch(/^250 /)
    expect(await client.command('DATA')).toMatch(/^354 /)
    const logged = r.logs.next('message refused')
    client.write(`${BIG}.\r\n`)
    expect(await client.reply()).toBe('451 4.4.1 Upstream server unavailable, try again later')
    expect((await logged).fields).toMatchObject({ accepted: 0, rejected: 1 })
    expect(upstream.dataStarted).toBe(1)
    client.close()
    await r.healthy()
  })
})

describe('stages that fail', () => {
  const throwing = (hook: 'mailFrom' | 'rcptTo' | 'data', how: 'throws synchronously' | 'rejects'): Stage => {
    const fail = () => {
      if (how === 'rejects') return Promise.reject(new Error(`${hook} rejected`))
      throw new Error(`${hook} threw`)
    }
    // Only the message with this sender fails, so the healthy client afterwards is served.
    const failing = (address?: string) => address === 'fail@example.com'
    if (hook === 'mailFrom') return { name: 'failing', mailFrom: (_tx, from) => (failing(from?.address) ? fail() : undefined) }
    if (hook === 'rcptTo') return { name: 'failing', rcptTo: (tx) => (failing(tx.envelope.mailFrom?.address) ? fail() : undefined) }
    return { name: 'failing', data: (msg, next) => (failing(msg.envelope.mailFrom?.address) ? fail() : next()) }
  }

  it.each([
    ['mailFrom', 'throws synchronously', 'MAIL'],
    ['mailFrom', 'rejects', 'MAIL'],
    ['rcptTo', 'throws synchronously', 'RCPT'],
    ['rcptTo', 'rejects', 'RCPT'],
    ['data', 'throws synchronously', 'DATA'],
    ['data', 'rejects', 'DATA'],
  ] as const)('a %s hook that %s: 451 4.3.0 at %s, reported to onError, and the next client is served', async (hook, how, at) => {
    r = await startFaultRelay('submission', { stages: [throwing(hook, how)] })
    const client = await r.ready()
    const steps = ['MAIL FROM:<fail@example.com>', 'RCPT TO:<bob@example.org>', 'DATA']
    let reply = ''
    for (const step of steps) {
      reply = await client.command(step)
      if (step.startsWith(at)) break
    }
    if (at === 'DATA') {
      expect(reply).toMatch(/^354 /)
      reply = await client.command('Subject: fails\r\n\r\nbody\r\n.')
    }
    expect(reply).toBe('451 4.3.0 Temporary local problem, please try again later')
    client.close()
    expect(r.errors.splice(0).map(String)).toEqual([`Error: ${hook} ${how === 'rejects' ? 'rejected' : 'threw'}`])
    r.logs.lines.splice(0)
    await r.healthy()
  })

  it('a connect hook that throws: 421 4.3.2 instead of the greeting, the connection closed, reported to onError', async () => {
    let failNext = true
    const stage: Stage = {
      name: 'failing',
      connect() {
        if (!failNext) return
        failNext = false
        throw new Error('connect threw')
      },
    }
    r = await startFaultRelay('submission', { stages: [stage] })
    const { client, greeting } = await RawSmtp.connect(r.port)
    expect(greeting).toBe('421 4.3.2 Service not available, try again later')
    await client.closed
    expect(r.errors.splice(0).map(String)).toEqual(['Error: connect threw'])
    r.logs.lines.splice(0)
    await r.healthy()
  })

  it('a data hook that never settles ends when the client leaves: temp files go, nothing is forwarded', async () => {
    let entered!: () => void
    const hanging = new Promise<void>((resolve) => (entered = resolve))
    const stage: Stage = {
      name: 'hanging',
      async data(msg, next) {
        if (msg.envelope.mailFrom?.address !== 'hang@example.com') return next()
        await msg.body.spool() // a temp file exists while it hangs
        entered()
        return new Promise(() => {})
      },
    }
    r = await startFaultRelay('submission', { stages: [stage] })
    const client = await r.ready()
    expect(await client.command('MAIL FROM:<hang@example.com>')).toMatch(/^250 /)
    expect(await client.command('RCPT TO:<bob@example.org>')).toMatch(/^250 /)
    expect(await client.command('DATA')).toMatch(/^354 /)
    client.write(`${BIG}.\r\n`)
    await hanging
    const refused = r.logs.next('message refused')
    client.reset() // the client gives up waiting
    expect((await refused).fields).toMatchObject({ accepted: 0, reason: 'client disconnected' })
    await r.healthy()
  })

  it.each([
    ['connect', '421 4.3.2 Service not available, try again later'],
    ['mailFrom', '451 4.3.0 Temporary local problem, please try again later'],
    ['rcptTo', '451 4.3.0 Temporary local problem, please try again later'],
    ['data', '451 4.3.0 Temporary local problem, please try again later'],
  ] as const)('a %s hook that never settles is abandoned after replyTimeout with %s', async (hook, expected) => {
    let hang = true
    const forever = () => (hang ? ((hang = false), new Promise<never>(() => {})) : undefined)
    const stage: Stage =
      hook === 'connect'
        ? { name: 'hanging', connect: () => forever() }
        : hook === 'mailFrom'
          ? { name: 'hanging', mailFrom: () => forever() }
          : hook === 'rcptTo'
            ? { name: 'hanging', rcptTo: () => forever() }
            : { name: 'hanging', data: (_msg, next) => forever() ?? next() }
    r = await startFaultRelay('submission', { stages: [stage], limits: { replyTimeout: 300 } })
    if (hook === 'connect') {
      const { client, greeting } = await RawSmtp.connect(r.port)
      expect(greeting).toBe(expected)
      await client.closed
    } else {
      const client = await r.ready()
      const steps = ['MAIL FROM:<alice@example.com>', 'RCPT TO:<bob@example.org>', 'DATA']
      let reply = ''
      for (const step of steps) {
        reply = await client.command(step)
        if (hook === 'mailFrom' || (hook === 'rcptTo' && step.startsWith('RCPT'))) break
      }
      if (hook === 'data') reply = await client.command('Subject: hangs\r\n\r\nbody\r\n.')
      expect(reply).toBe(expected)
      client.close()
    }
    expect(r.errors.splice(0).map(String)).toEqual([expect.stringContaining('did not answer')])
    r.logs.lines.splice(0)
    await r.healthy()
  })
})
