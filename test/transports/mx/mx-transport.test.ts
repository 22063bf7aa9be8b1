/**
 * mxTransport end to end on loopback: a DNS server the test controls, and real SMTP servers on
 * 127.0.0.2, 127.0.0.3 … (and ::1) standing in for MX hosts, all on one test port. Covers the MX
 * walk (preference, equal-preference order, fallback, implicit and null MX, DNS failures), the
 * replies per recipient, the address policy, the split by domain, transaction size, connection
 * reuse and per-host concurrency, and the delivery-attempt events.
 */
import { PassThrough } from 'node:stream'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createPipeline } from '../../../src/core/pipeline.js'
import type { Transport } from '../../../src/core/types.js'
import { testMessage } from '../../../src/testing/test-message.js'
import { mxTransport } from '../../../src/transports/mx/index.js'
import { type DnsFault, startDnsServer, type TestDnsServer } from '../../helpers/dns/server.js'
import { a, aaaa, mx, nullMx, testZone } from '../../helpers/dns/zones.js'
import { send } from '../../helpers/mx/deliver.js'
import { type MxHosts, startMxHosts } from '../../helpers/mx/mx-hosts.js'

const LOOPBACK = ['127.0.0.0/8', '::1/128']

describe('mxTransport: the MX walk and the replies', () => {
  let dns: TestDnsServer
  let hosts: MxHosts
  const transports: Transport[] = []
  let dataStarted: (() => void) | undefined

  beforeAll(async () => {
    hosts = await startMxHosts([
      { ip: '127.0.0.2' },
      { ip: '127.0.0.3' },
      { ip: '127.0.0.4', greeting: '421 4.3.2 Too busy, try later' },
      {
        ip: '127.0.0.5',
        rcpt: (to) => (to.startsWith('full@') ? '452 4.2.2 Mailbox full' : to.startsWith('nobody@') ? '550 5.1.1 No such user' : undefined),
      },
      { ip: '127.0.0.6', mail: () => '451 4.3.0 Try again' },
      { ip: '127.0.0.7', mail: () => '550 5.7.1 Sender refused' },
      { ip: '::1' },
      { ip: '127.0.0.8', onData: () => dataStarted?.() },
    ])
    dns = await startDnsServer([
      testZone('walk.test', [
        mx('pref.walk.test', 20, 'mx2.walk.test'),
        mx('pref.walk.test', 10, 'mx1.walk.test'),
        mx('equal.walk.test', 10, 'mx1.walk.test'),
        mx('equal.walk.test', 10, 'mx2.walk.test'),
        mx('down.walk.test', 10, 'down.walk.test'),
        mx('down.walk.test', 20, 'mx2.walk.test'),
        mx('busy.walk.test', 10, 'busy.walk.test'),
        mx('busy.walk.test', 20, 'mx2.walk.test'),
        mx('picky.walk.test', 10, 'picky.walk.test'),
        mx('picky.walk.test', 20, 'mx2.walk.test'),
        mx('mail4xx.walk.test', 10, 'mail4xx.walk.test'),
        mx('mail4xx.walk.test', 20, 'mx2.walk.test'),
        mx('mail5xx.walk.test', 10, 'mail5xx.walk.test'),
        mx('mail5xx.walk.test', 20, 'mx2.walk.test'),
        mx('many.walk.test', 10, 'down.walk.test'),
        mx('many.walk.test', 20, 'down2.walk.test'),
        mx('many.walk.test', 30, 'mx1.walk.test'),
        mx('nullmx.walk.test', 0, '.'),
        mx('private.walk.test', 10, 'internal.walk.test'),
        mx('v6.walk.test', 10, 'v6mx.walk.test'),
        mx('gone.walk.test', 10, 'missing-host.walk.test'),
        nullMx('nomail.walk.test'),
        a('mx1.walk.test', '127.0.0.2'),
        a('mx2.walk.test', '127.0.0.3'),
        a('down.walk.test', '127.0.0.9'),
        a('down2.walk.test', '127.0.0.10'),
        a('busy.walk.test', '127.0.0.4'),
        a('picky.walk.test', '127.0.0.5'),
        a('mail4xx.walk.test', '127.0.0.6'),
        a('mail5xx.walk.test', '127.0.0.7'),
        a('implicit.walk.test', '127.0.0.2'),
        a('internal.walk.test', '10.1.2.3'),
        aaaa('v6mx.walk.test', '::1'),
        a('slow.walk.test', '127.0.0.8'),
      ]),
    ])
  })
  afterEach(async () => {
    await Promise.all(transports.splice(0).map((t) => t.close?.()))
    dns.setFault(undefined)
  })
  afterAll(async () => {
    await hosts?.close()
    await dns?.close()
  })

  const transport = (options: Parameters<typeof mxTransport>[0] = {}) => {
    const t = mxTransport({
      dns: { server: dns.address, cache: false },
      port: hosts.port,
      allowNetworks: LOOPBACK,
      mtaSts: false,
      name: 'relay.example.com',
      ...options,
    })
    transports.push(t)
    return t
  }
  const received = (ip: string) => hosts.host(ip).messages.length

  it('delivers to the MX host with the lowest preference and reports its 250', async () => {
    const before = received('127.0.0.2')
    const { outcome, attempts } = await send(transport(), ['alice@pref.walk.test'])
    expect(outcome.reply).toMatch(/^250 /)
    expect(outcome.report?.response).toMatch(/^250 .*127\.0\.0\.2/)
    expect(received('127.0.0.2')).toBe(before + 1)
    expect(attempts).toMatchObject([
      {
        transport: 'mx',
        destination: 'pref.walk.test',
        host: 'mx1.walk.test',
        ip: '127.0.0.2',
        port: hosts.port,
        outcome: 'delivered',
        policy: 'opportunistic',
        verified: false,
      },
    ])
    expect(attempts[0]!.recipients).toEqual(['alice@pref.walk.test'])
  })

  it('orders MX hosts of equal preference as the random source says', async () => {
    const first = await send(transport({ random: () => 0.99 }), ['a@equal.walk.test'])
    const second = await send(transport({ random: () => 0 }), ['a@equal.walk.test'])
    expect([first.attempts[0]!.host, second.attempts[0]!.host].sort()).toEqual(['mx1.walk.test', 'mx2.walk.test'])
    expect(first.attempts[0]!.host).not.toBe(second.attempts[0]!.host)
  })

  it('tries the next MX host when the first refuses the connection', async () => {
    const { outcome, attempts } = await send(transport(), ['bob@down.walk.test'])
    expect(outcome.reply).toMatch(/^250 /)
    expect(attempts.map((e) => [e.ip, e.outcome])).toEqual([
      ['127.0.0.9', 'deferred'],
      ['127.0.0.3', 'delivered'],
    ])
    expect(attempts[0]!.reply).toMatch(/^451 4\.4\.1 /)
  })

  it('tries the next MX host after a 421 greeting', async () => {
    const { outcome, attempts } = await send(transport(), ['bob@busy.walk.test'])
    expect(outcome.reply).toMatch(/^250 /)
    expect(attempts.map((e) => [e.host, e.outcome])).toEqual([
      ['busy.walk.test', 'deferred'],
      ['mx2.walk.test', 'delivered'],
    ])
    expect(attempts[0]!.reply).toMatch(/^451 4\.3\.2 Too busy/)
  })

  it('delivers recipients a host takes, refuses those it refuses with 5xx, and tries the next host for those it defers with 4xx', async () => {
    const before3 = hosts.host('127.0.0.3').messages.length
    const { outcome, refused, attempts } = await send(transport(), ['ok@picky.walk.test', 'nobody@picky.walk.test', 'full@picky.walk.test'])
    expect(outcome.reply).toMatch(/^250 /)
    expect(outcome.report?.accepted.map((r) => r.address).sort()).toEqual(['full@picky.walk.test', 'ok@picky.walk.test'])
    expect(refused).toEqual({ 'nobody@picky.walk.test': '550 5.1.1 No such user' })
    expect(hosts.host('127.0.0.5').messages.at(-1)!.rcptTo).toEqual(['ok@picky.walk.test'])
    expect(
      hosts
        .host('127.0.0.3')
        .messages.slice(before3)
        .map((m) => m.rcptTo),
    ).toEqual([['full@picky.walk.test']])
    expect(attempts.map((e) => [e.host, e.accepted])).toEqual([
      ['picky.walk.test', ['ok@picky.walk.test']],
      ['mx2.walk.test', ['full@picky.walk.test']],
    ])
  })

  it('tries the next MX host after a 4xx to MAIL FROM, and refuses every recipient after a 5xx', async () => {
    const deferred = await send(transport(), ['x@mail4xx.walk.test'])
    expect(deferred.outcome.reply).toMatch(/^250 /)
    expect(deferred.attempts.map((e) => e.outcome)).toEqual(['deferred', 'delivered'])

    const refused = await send(transport(), ['x@mail5xx.walk.test', 'y@mail5xx.walk.test'])
    expect(refused.outcome.reply).toBe('550 5.7.1 Sender refused')
    expect(refused.refused).toEqual({ 'x@mail5xx.walk.test': '550 5.7.1 Sender refused', 'y@mail5xx.walk.test': '550 5.7.1 Sender refused' })
    expect(refused.attempts.map((e) => [e.ip, e.outcome])).toEqual([['127.0.0.7', 'failed']])
  })

  it('delivers to the domain itself when it has no MX records (implicit MX)', async () => {
    const { outcome, attempts } = await send(transport(), ['carol@implicit.walk.test'])
    expect(outcome.reply).toMatch(/^250 /)
    expect(attempts[0]).toMatchObject({ host: 'implicit.walk.test', ip: '127.0.0.2' })
  })

  it('refuses recipients of a null MX domain with 550 5.1.10 without connecting anywhere', async () => {
    const { outcome, attempts } = await send(transport(), ['dan@nomail.walk.test'])
    expect(outcome.reply).toBe('550 5.1.10 Recipient domain does not accept mail')
    expect(outcome.error?.temporary).toBe(false)
    expect(attempts).toEqual([])
  })

  it('refuses recipients of a domain that does not exist with 550 5.1.2, and of MX hosts that do not exist with 550 5.4.4', async () => {
    expect((await send(transport(), ['e@nonexistent.walk.test'])).outcome.reply).toBe('550 5.1.2 Recipient domain not found')
    expect((await send(transport(), ['e@gone.walk.test'])).outcome.reply).toBe('550 5.4.4 Unable to route to the recipient domain')
  })

  it('defers with 451 4.4.3 when DNS times out or answers SERVFAIL', async () => {
    const quick = transport({ dns: { server: dns.address, timeout: 100, attempts: 1, deadline: 200, cache: false } })
    for (const fault of ['timeout', 'servfail'] as DnsFault[]) {
      dns.setFault(fault)
      const { outcome } = await send(quick, ['f@pref.walk.test'])
      expect(outcome.reply).toBe('451 4.4.3 Temporary DNS failure, try again later')
    }
  })

  it('refuses to connect to loopback by default (451 4.4.4), and to private addresses even when loopback is allowed', async () => {
    const connections = hosts.host('127.0.0.2').connections
    const closed = mxTransport({ dns: { server: dns.address, cache: false }, port: hosts.port, mtaSts: false })
    transports.push(closed)
    const loop = await send(closed, ['g@pref.walk.test'])
    expect(loop.outcome.reply).toBe('451 4.4.4 Unable to route to the recipient domain, try again later')
    expect(loop.outcome.error?.reason).toMatch(/127\.0\.0\.3.*not allowed/)
    expect(hosts.host('127.0.0.2').connections).toBe(connections)
    expect(loop.attempts).toEqual([])

    const internal = await send(transport(), ['g@private.walk.test'])
    expect(internal.outcome.reply).toMatch(/^451 4\.4\.4 /)
    expect(internal.outcome.error?.reason).toMatch(/10\.1\.2\.3/)
  })

  it('stops after maxAddresses addresses', async () => {
    const { outcome, attempts } = await send(transport({ maxAddresses: 2 }), ['h@many.walk.test'])
    expect(outcome.reply).toMatch(/^451 4\.4\.1 /)
    expect(attempts.map((e) => e.ip)).toEqual(['127.0.0.9', '127.0.0.10'])
  })

  it('delivers over IPv6 to an AAAA address', async () => {
    const { outcome, attempts } = await send(transport(), ['i@v6.walk.test'])
    expect(outcome.reply).toMatch(/^250 /)
    expect(attempts[0]).toMatchObject({ ip: '::1', outcome: 'delivered' })
    expect(hosts.host('::1').messages.at(-1)!.rcptTo).toEqual(['i@v6.walk.test'])
  })

  it('splits a message by recipient domain, each part to its own MX hosts with its own recipients', async () => {
    const b2 = received('127.0.0.2')
    const b5 = hosts.host('127.0.0.5').messages.length
    const { outcome } = await send(transport(), ['j@implicit.walk.test', 'k@picky.walk.test', 'l@implicit.walk.test'], {
      raw: 'Subject: split\r\n\r\nsame body\r\n',
    })
    expect(outcome.reply).toMatch(/^250 /)
    const two = hosts.host('127.0.0.2').messages.slice(b2)
    const five = hosts.host('127.0.0.5').messages.slice(b5)
    expect(two.map((m) => m.rcptTo)).toEqual([['j@implicit.walk.test', 'l@implicit.walk.test']])
    expect(five.map((m) => m.rcptTo)).toEqual([['k@picky.walk.test']])
    expect(two[0]!.raw.toString()).toBe(five[0]!.raw.toString())
    expect(two[0]!.raw.toString()).toMatch(/Subject: split\r\n\r\nsame body\r\n$/)
  })

  it('sends at most maxRecipients recipients per transaction', async () => {
    const before = received('127.0.0.2')
    const { outcome } = await send(transport({ maxRecipients: 2 }), ['m1@implicit.walk.test', 'm2@implicit.walk.test', 'm3@implicit.walk.test'])
    expect(outcome.reply).toMatch(/^250 /)
    expect(
      hosts
        .host('127.0.0.2')
        .messages.slice(before)
        .map((m) => m.rcptTo.length)
        .sort(),
    ).toEqual([1, 2])
  })

  it('reuses one connection for messages to the same MX host', async () => {
    const t = transport()
    const before = hosts.host('127.0.0.2').connections
    for (let i = 0; i < 3; i++) expect((await send(t, [`n${i}@implicit.walk.test`])).outcome.reply).toMatch(/^250 /)
    expect(hosts.host('127.0.0.2').connections - before).toBe(1)
  })

  it('opens at most concurrency.perHost connections to one MX address', async () => {
    const limited = transport({ concurrency: { perHost: 1 } })
    let before = hosts.host('127.0.0.2').connections
    await Promise.all([0, 1, 2].map((i) => send(limited, [`o${i}@implicit.walk.test`])))
    expect(hosts.host('127.0.0.2').connections - before).toBe(1)

    const open = transport()
    before = hosts.host('127.0.0.2').connections
    await Promise.all([0, 1, 2].map((i) => send(open, [`p${i}@implicit.walk.test`])))
    expect(hosts.host('127.0.0.2').connections - before).toBe(3)
  })

  it('stops the transfer without the final dot when the transaction is aborted mid-DATA', async () => {
    const pipeline = createPipeline({ transport: transport() })
    const tx = await pipeline.begin((await testMessage()).session, { address: 'app@example.com' })
    await tx.addRecipient({ address: 'r@slow.walk.test' })
    const started = new Promise<void>((resolve) => (dataStarted = resolve))
    const body = new PassThrough()
    body.on('error', () => {}) // the abort reaches the caller's stream too
    body.write('Subject: never finished\r\n\r\nfirst line\r\n')
    const outcome = tx.data({ raw: body })
    await started
    tx.abort(new Error('client left'))
    expect((await outcome).aborted).toBe(true)
    body.destroy()
    expect(hosts.host('127.0.0.8').messages).toEqual([])
  })

  it('names the recipient domain as the destination, for the queue', () => {
    expect(transport().destinationOf?.({ address: 'Q@Sub.Walk.Test' }, undefined as never)).toBe('sub.walk.test')
  })
})
