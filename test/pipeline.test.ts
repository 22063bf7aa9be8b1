import { describe, expect, it } from 'vitest'
import { createPipeline, type RelayError, SmtpError, type Stage, type Transport } from '../src/index.js'
import { memoryTransport, testMessage } from '../src/testing/index.js'
import { relayError } from './helpers/relay.js'

const signer: Stage = { name: 'signer', modifies: 'trace', seals: 'message', data: (_m, next) => next() }
const smime: Stage = { name: 'smime', modifies: 'body', seals: 'body', data: (_m, next) => next() }
const received: Stage = { name: 'received', modifies: 'trace', data: (_m, next) => next() }
const footer: Stage = { name: 'footer', modifies: 'body', data: (_m, next) => next() }
const tagger: Stage = { name: 'tagger', modifies: 'headers', data: (_m, next) => next() }

describe('createPipeline: checks at build time', () => {
  it('refuses a stage that modifies the message after one that seals it', () => {
    const err = relayError(() => createPipeline({ stages: [signer, footer], transport: memoryTransport() }))
    expect(err.code).toBe('ERR_RELAY_UNSAFE_ORDER')
    expect(err.message).toContain('"footer" modifies the message (body) after "signer" sealed its message')
    expect(relayError(() => createPipeline({ stages: [signer, tagger], transport: memoryTransport() })).code).toBe('ERR_RELAY_UNSAFE_ORDER')
    expect(() => createPipeline({ stages: [footer, tagger, signer, received], transport: memoryTransport() })).not.toThrow()
  })

  it('lets DKIM follow S/MIME, and S/MIME wrap S/MIME, but not S/MIME follow DKIM', () => {
    expect(() => createPipeline({ stages: [smime, tagger, signer], transport: memoryTransport() })).not.toThrow()
    expect(() => createPipeline({ stages: [smime, { ...smime, name: 'smime-encrypt' }], transport: memoryTransport() })).not.toThrow()
    expect(relayError(() => createPipeline({ stages: [signer, smime], transport: memoryTransport() })).message).toContain(
      '"smime" modifies the message (body)',
    )
    expect(relayError(() => createPipeline({ stages: [smime, footer], transport: memoryTransport() })).message).toContain('sealed its body')
  })

  it('refuses a nested pipeline that modifies after an outer stage sealed', () => {
    const inner = createPipeline({ stages: [tagger], transport: memoryTransport() })
    expect(relayError(() => createPipeline({ stages: [signer], transport: inner })).code).toBe('ERR_RELAY_UNSAFE_ORDER')
  })

  it('refuses malformed stages and transports', () => {
    expect(relayError(() => createPipeline({ stages: [{ name: 'Bad Name' }], transport: memoryTransport() })).code).toBe('ERR_RELAY_INVALID_STAGE')
    expect(
      relayError(() => createPipeline({ stages: [{ name: 'x', data: 42 } as unknown as Stage], transport: memoryTransport() })).message,
    ).toContain('data must be a function')
    expect(relayError(() => createPipeline({ stages: [], transport: {} as Transport })).code).toBe('ERR_RELAY_INVALID_STAGE')
    expect(
      relayError(() => createPipeline({ stages: [{ name: 'x', seals: true } as unknown as Stage], transport: memoryTransport() })).message,
    ).toContain('seals must be one of body, message')
  })

  it('describes itself, nested pipelines indented', () => {
    const inner = createPipeline({ name: 'inner', stages: [tagger], transport: memoryTransport() })
    const grant: Stage = { name: 'grant', grantsRelay: true, rcptTo: () => ({ relay: true }) }
    const text = createPipeline({ name: 'outer', stages: [grant, footer], transport: inner }).describe()
    expect(text).toBe(
      [
        'pipeline outer',
        '  1. grant                [rcptTo] grants relay',
        '  2. footer               [data] modifies body',
        '  → pipeline inner',
        '      1. tagger               [data] modifies headers',
        '      → memory',
      ].join('\n'),
    )
  })
})

describe('createPipeline: the data onion', () => {
  it('runs data hooks in order and unwinds them in reverse with the report', async () => {
    const trace: string[] = []
    const stage = (name: string): Stage => ({
      name,
      async data(_msg, next) {
        trace.push(`${name}>`)
        const report = await next()
        trace.push(`<${name}:${report.accepted.length}`)
        return report
      },
    })
    const transport: Transport = {
      name: 'end',
      async send(msg) {
        trace.push('transport')
        return { accepted: [...msg.envelope.rcptTo], rejected: [] }
      },
    }
    await createPipeline({ stages: [stage('a'), stage('b')], transport }).deliver(await testMessage())
    expect(trace).toEqual(['a>', 'b>', 'transport', '<b:1', '<a:1'])
  })

  it('fails a stage that calls next() twice', async () => {
    const twice: Stage = {
      name: 'twice',
      async data(_msg, next) {
        await next()
        return next()
      },
    }
    const transport = memoryTransport()
    const err = await createPipeline({ stages: [twice], transport })
      .deliver(await testMessage())
      .catch((e: unknown) => e)
    expect((err as RelayError).code).toBe('ERR_RELAY_NEXT_CALLED_TWICE')
    expect(transport.messages).toHaveLength(1)
  })

  it('lets a stage pass forks for disjoint recipients, but never a recipient twice', async () => {
    const errors: string[] = []
    const split: Stage = {
      name: 'split',
      async data(msg, next) {
        const part = (address: string) => msg.fork([{ address }])
        const reports = [await next(await part('a@example.org')), await next(await part('b@example.org'))]
        for (const again of [() => part('A@example.org').then(next), () => next()]) {
          await again().catch((err: RelayError) => errors.push(err.code))
        }
        return { accepted: reports.flatMap((r) => r.accepted), rejected: [] }
      },
    }
    const transport = memoryTransport()
    const report = await createPipeline({ stages: [split], transport }).deliver(await testMessage({ to: ['a@example.org', 'b@example.org'] }))
    expect(report.accepted.map((a) => a.address)).toEqual(['a@example.org', 'b@example.org'])
    expect(transport.messages.map((m) => m.envelope.rcptTo.map((r) => r.address))).toEqual([['a@example.org'], ['b@example.org']])
    expect(errors).toEqual(['ERR_RELAY_NEXT_CALLED_TWICE', 'ERR_RELAY_NEXT_CALLED_TWICE'])
  })

  it('fails a stage that resolves before the next() it started settled', async () => {
    const hasty: Stage = {
      name: 'hasty',
      async data(msg, next) {
        void next()
        return { accepted: [...msg.envelope.rcptTo], rejected: [] }
      },
    }
    const err = await createPipeline({ stages: [hasty], transport: memoryTransport() })
      .deliver(await testMessage())
      .catch((e: unknown) => e)
    expect((err as RelayError).code).toBe('ERR_RELAY_NEXT_NOT_AWAITED')
  })

  it('lets a stage answer without calling next (quarantine)', async () => {
    const quarantine = memoryTransport()
    const transport = memoryTransport()
    const divert: Stage = { name: 'divert', data: (msg) => quarantine.send(msg) }
    await createPipeline({ stages: [divert], transport }).deliver(await testMessage())
    expect(quarantine.messages).toHaveLength(1)
    expect(transport.messages).toHaveLength(0)
  })

  it('stamps the stage name on an SmtpError it throws', async () => {
    const refuse: Stage = {
      name: 'refuse',
      async data() {
        throw new SmtpError(550, '5.7.1', 'no')
      },
    }
    const err = await createPipeline({ stages: [refuse], transport: memoryTransport() })
      .deliver(await testMessage())
      .catch((e: unknown) => e)
    expect((err as SmtpError).stage).toBe('refuse')
  })

  it('fails a stage that returns something other than a report', async () => {
    const broken = { name: 'broken', data: async () => undefined } as unknown as Stage
    const err = await createPipeline({ stages: [broken], transport: memoryTransport() })
      .deliver(await testMessage())
      .catch((e: unknown) => e)
    expect((err as RelayError).code).toBe('ERR_RELAY_INVALID_STAGE')
  })
})

describe('createPipeline: envelope hooks and nesting', () => {
  it('refuses a relay grant from a stage that did not declare grantsRelay', async () => {
    const sneaky: Stage = { name: 'sneaky', rcptTo: () => ({ relay: true }) }
    const pipeline = createPipeline({ stages: [sneaky], transport: memoryTransport() })
    const msg = await testMessage()
    const err = await (await pipeline.begin(msg.session, null)).addRecipient({ address: 'x@example.org' }).catch((e: unknown) => e)
    expect((err as RelayError).code).toBe('ERR_RELAY_UNDECLARED_GRANT')
    expect(pipeline.grantsRelay).toBe(false)
  })

  it('refuses an expansion to no recipient at all', async () => {
    const drop: Stage = { name: 'drop', rcptTo: () => [] }
    const tx = await createPipeline({ stages: [drop], transport: memoryTransport() }).begin((await testMessage()).session, null)
    const err = await tx.addRecipient({ address: 'x@example.org' }).catch((e: unknown) => e)
    expect((err as RelayError).code).toBe('ERR_RELAY_INVALID_STAGE')
  })

  it('runs a nested pipeline’s envelope hooks and reports in the caller’s recipients', async () => {
    const inner = memoryTransport()
    const alias: Stage = {
      name: 'alias',
      rcptTo: (_tx, to) => (to.address === 'team@example.org' ? [{ address: 'a@example.org' }, { address: 'b@example.org' }] : undefined),
    }
    const noEve: Stage = {
      name: 'no-eve',
      rcptTo(_tx, to) {
        if (to.address.startsWith('eve@')) throw new SmtpError(550, '5.1.1', 'unknown')
      },
    }
    const nested = createPipeline({ stages: [alias, noEve], transport: inner })
    const report = await createPipeline({ stages: [], transport: nested }).deliver(await testMessage({ to: ['team@example.org', 'eve@example.org'] }))
    expect(report.accepted.map((a) => a.address)).toEqual(['team@example.org'])
    expect(report.rejected.map((r) => [r.rcpt.address, r.error.toReply(), r.error.stage])).toEqual([
      ['eve@example.org', '550 5.1.1 unknown', 'no-eve'],
    ])
    expect(inner.messages[0]!.envelope.rcptTo.map((r) => r.address)).toEqual(['a@example.org', 'b@example.org'])
  })

  it('closes every stage and the transport', async () => {
    const closed: string[] = []
    const stage: Stage = { name: 'closing', close: async () => void closed.push('stage') }
    const transport: Transport = { name: 't', send: async () => ({ accepted: [], rejected: [] }), close: async () => void closed.push('transport') }
    await createPipeline({ stages: [stage], transport }).close()
    expect(closed.sort()).toEqual(['stage', 'transport'])
  })
})
