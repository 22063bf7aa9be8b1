import { spawnSync } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { createSrs } from '../../src/address/srs.js'
import { relayPolicy, type Stage, smtpTransport } from '../../src/index.js'
import { type AddressRewriteOptions, addressRewrite } from '../../src/stages/address-rewrite.js'
import { memoryTransport, runStage, testMessage } from '../../src/testing/index.js'
import { afterTest, relayToSink } from '../helpers/after-test.js'
import { havePerlModule } from '../helpers/peers.js'
import { RawSmtp } from '../helpers/raw-smtp.js'
import { allowAll, allowDomains, startRelay } from '../helpers/relay.js'

const SECRET = 'correct horse battery staple'
const SRS = { secret: SECRET, domain: 'srs.example.com', localDomains: ['example.com'] }
const DAY = 86_400_000

/** A relay with `stages` in front of a sink; `session` sends raw SMTP to it. */
async function relayWith(stages: Stage[]) {
  const { sink, t } = await relayToSink(stages)
  const session = async (from: string, to: readonly string[], body = 'Subject: x\r\n\r\nx\r\n') => {
    const { client } = await RawSmtp.connect(t.port)
    afterTest(async () => client.close())
    await client.command('EHLO client.test')
    const replies = [await client.command(`MAIL FROM:<${from}>`)]
    for (const rcpt of to) replies.push(await client.command(`RCPT TO:<${rcpt}>`))
    if (replies.slice(1).some((r) => r.startsWith('250'))) {
      replies.push(await client.command('DATA'))
      replies.push(await client.command(`${body}.`))
    }
    await client.command('QUIT')
    return replies
  }
  return { sink, session }
}

/** Headers after the stage's data hook. */
async function headersAfter(options: AddressRewriteOptions, head: string): Promise<string> {
  const transport = memoryTransport()
  await runStage(addressRewrite(options), await testMessage({ eml: `${head}\r\n\r\nbody\r\n` }), transport)
  return transport.messages[0]!.raw.toString().split('\r\n\r\n')[0]!
}

describe('address-rewrite: envelope maps', () => {
  it('rewrites MAIL FROM by exact address, @domain, rule and function, and passes the rest unchanged', async () => {
    const { sink, session } = await relayWith([
      allowAll,
      addressRewrite({ sender: { 'root@host.internal.example': 'it@example.com', '@old.example': '@example.com' } }),
      addressRewrite({ sender: [[/^(.+)@(?:mx\d+)\.example\.net$/i, '$1@example.net']] }),
      addressRewrite({ sender: (address) => (address === 'x@fn.example' ? 'y@fn.example' : undefined) }),
    ])
    for (const from of ['ROOT@host.internal.example', 'ann@old.example', 'bob@MX12.example.net', 'x@fn.example', 'eve@other.example']) {
      expect(await session(from, ['bob@example.org'])).toContain('250 Accepted')
    }
    const got = (await sink.waitForMessages(5)).map((m) => m.mailFrom)
    expect(got).toEqual(['it@example.com', 'ann@example.com', 'bob@example.net', 'y@fn.example', 'eve@other.example'])
  })

  it('expands one recipient to several and rewrites others, keeping their ESMTP parameters', async () => {
    const { sink } = await relayWith([])
    const stage = addressRewrite({ recipients: { 'sales@example.com': ['ann@example.com', 'bob@example.com'], '@old.example': '@example.com' } })
    const t = await startRelay({ stages: [allowAll, stage], transport: smtpTransport({ host: sink.host, port: sink.port }) })
    afterTest(() => t.close())
    const { client } = await RawSmtp.connect(t.port)
    afterTest(async () => client.close())
    await client.command('EHLO client.test')
    expect(await client.command('MAIL FROM:<ann@example.com>')).toBe('250 Accepted')
    expect(await client.command('RCPT TO:<sales@example.com> NOTIFY=FAILURE')).toBe('250 Accepted')
    expect(await client.command('RCPT TO:<carl@OLD.example>')).toBe('250 Accepted')
    expect(await client.command('DATA')).toMatch(/^354/)
    expect(await client.command('Subject: x\r\n\r\nx\r\n.')).toMatch(/^250 2\.0\.0 /)
    // Recipients with different DSN parameters go upstream as separate transactions.
    const messages = await sink.waitForMessages(2)
    const expanded = messages.find((m) => m.rcptTo.length === 2)
    const rewritten = messages.find((m) => m.rcptTo.length === 1)
    expect(expanded!.rcptTo).toEqual(['ann@example.com', 'bob@example.com'])
    expect(expanded!.rcptArgs).toEqual([{ NOTIFY: 'FAILURE' }, { NOTIFY: 'FAILURE' }])
    expect(rewritten!.rcptTo).toEqual(['carl@example.com'])
  })

  it('matches internationalised domains in either form', async () => {
    const stage = addressRewrite({ sender: { '@bücher.example': '@books.example' } })
    const tx = await testMessage()
    expect(await stage.mailFrom!(tx, { address: 'jörg@xn--bcher-kva.example' })).toEqual({ address: 'jörg@books.example' })
    expect(await stage.mailFrom!(tx, { address: 'jörg@BÜCHER.example' })).toEqual({ address: 'jörg@books.example' })
  })

  it('throws ERR_RELAY_INVALID_OPTION for a map it cannot use', () => {
    const bad: AddressRewriteOptions[] = [
      { sender: { 'a@example.com': 'not an address' } },
      { sender: { 'a@example.com': ['b@example.com', 'c@example.com'] } },
      { recipients: { 'no-at-sign': 'b@example.com' } },
      { recipients: { 'a@example.com': [] } },
      { srs: { secret: 'short', domain: 'srs.example.com' } },
      { srs: { secret: SECRET, domain: 'srs.example.com', maxAge: 0 } },
      {},
      { sender: {}, headers: ['subject' as 'from'] },
    ]
    for (const options of bad) expect(() => addressRewrite(options)).toThrow(expect.objectContaining({ code: 'ERR_RELAY_INVALID_OPTION' }))
  })
})

describe('address-rewrite: header fields', () => {
  const options: AddressRewriteOptions = {
    sender: { '@old.example': '@example.com' },
    recipients: { '@old.example': '@example.com', 'list@example.com': ['a@example.com', 'b@example.com'] },
  }

  it('replaces only the addresses: encoded-word names, quoting, comments and folding stay', async () => {
    const head = [
      'From: =?utf-8?q?J=C3=B6rg_M=C3=BCller?= <joerg@old.example> (Sales)',
      'To: "Doe, John" <john@old.example>,\r\n\t carol@old.example (Carol),',
      ' Team: dave@old.example, erin@elsewhere.example;, list@example.com',
      'Cc: undisclosed-recipients:;',
      'Reply-To: <@relay.old.example:replies@old.example>',
      'Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= from joerg@old.example',
    ].join('\r\n')
    expect(await headersAfter(options, head)).toBe(
      [
        'From: =?utf-8?q?J=C3=B6rg_M=C3=BCller?= <joerg@example.com> (Sales)',
        'To: "Doe, John" <john@example.com>,\r\n\t carol@example.com (Carol),',
        ' Team: dave@example.com, erin@elsewhere.example;, list@example.com',
        'Cc: undisclosed-recipients:;',
        'Reply-To: <@relay.old.example:replies@example.com>',
        'Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= from joerg@old.example',
      ].join('\r\n'),
    )
  })

  it('rewrites internationalised addresses in UTF-8 header fields', async () => {
    expect(await headersAfter({ sender: { 'jörg@bücher.example': 'jörg@books.example' } }, 'From: Jörg <jörg@xn--bcher-kva.example>')).toBe(
      'From: Jörg <jörg@books.example>',
    )
  })

  it('rebuilds a malformed field from the parsed addresses, names as written', async () => {
    expect(await headersAfter(options, 'From: Ann Example ann@old.example')).toBe('From: Ann Example <ann@example.com>')
  })

  it('leaves the headers alone with headers: [] and leaves fields that are not UTF-8', async () => {
    expect(await headersAfter({ ...options, headers: [] }, 'From: <ann@old.example>')).toBe('From: <ann@old.example>')
    const stage = addressRewrite({ ...options, headers: [] })
    expect(stage.modifies).toBeUndefined()
    expect(stage.data).toBeUndefined()
    const transport = memoryTransport()
    const eml = Buffer.concat([Buffer.from('From: '), Buffer.from('Jos\xe9', 'latin1'), Buffer.from(' <jose@old.example>\r\n\r\nx\r\n')])
    await runStage(addressRewrite(options), await testMessage({ eml }), transport)
    expect(transport.messages[0]!.raw.equals(eml)).toBe(true)
  })
})

describe('address-rewrite: SRS', () => {
  const srs = createSrs(SRS)

  it('rewrites a forwarded sender to SRS0 and leaves local senders and <> alone', async () => {
    const { sink, session } = await relayWith([allowAll, addressRewrite({ srs: SRS })])
    await session('alice@origin.example', ['bob@example.org'])
    await session('ann@example.com', ['bob@example.org'])
    await session('', ['bob@example.org'])
    const got = (await sink.waitForMessages(3)).map((m) => m.mailFrom)
    expect(got[0]).toMatch(/^SRS0=[A-Za-z0-9+/]{4}=[A-Z2-7]{2}=origin\.example=alice@srs\.example\.com$/)
    expect(got.slice(1)).toEqual(['ann@example.com', ''])
  })

  it("turns another forwarder's SRS0 address into SRS1 and reverses it to that forwarder", () => {
    const srs1 = srs.forward('SRS0=abcd=XY=origin.example=alice@fwd.example')
    expect(srs1).toMatch(/^SRS1=[A-Za-z0-9+/]{4}=fwd\.example==abcd=XY=origin\.example=alice@srs\.example\.com$/)
    expect(srs.reverse(srs1)).toEqual({ address: 'SRS0=abcd=XY=origin.example=alice@fwd.example' })
    expect(srs.forward(srs1)).toBe(srs1.replace(/^SRS1=[^=]+/, srs1.slice(0, 9)))
  })

  it('reverses an SRS0 address up to maxAge days, case-smashed too, with any configured secret', () => {
    const now = Date.now()
    const address = srs.forward('alice@origin.example', now - 21 * DAY)
    expect(srs.reverse(address, now)).toEqual({ address: 'alice@origin.example' })
    expect(srs.reverse(address.toUpperCase(), now)).toEqual({ address: 'ALICE@ORIGIN.EXAMPLE' })
    expect(srs.reverse(address, now + DAY)).toEqual({ failure: 'expired' })
    const rotated = createSrs({ ...SRS, secret: ['a new secret 2025', SECRET] })
    expect(rotated.reverse(address, now)).toEqual({ address: 'alice@origin.example' })
    expect(createSrs({ ...SRS, secret: 'another secret' }).reverse(address, now)).toEqual({ failure: 'hash' })
    expect(srs.reverse('SRS0=xx@srs.example.com')).toEqual({ failure: 'malformed' })
  })

  it('delivers a bounce to an SRS address to the original sender; refuses forged and expired ones with 550 5.1.1', async () => {
    const { sink, session } = await relayWith([allowDomains('example.com', 'srs.example.com'), addressRewrite({ srs: SRS })])
    const good = srs.forward('alice@origin.example')
    const forged = good.replace(/^SRS0=..../, 'SRS0=AAAA')
    const expired = srs.forward('alice@origin.example', Date.now() - 30 * DAY)
    const replies = await session('', [forged, expired, 'SRS0=garbage@srs.example.com', good])
    expect(replies.slice(1, 5)).toEqual([
      '550 5.1.1 Invalid or expired SRS address',
      '550 5.1.1 Invalid or expired SRS address',
      '550 5.1.1 Invalid or expired SRS address',
      '250 Accepted',
    ])
    const [message] = await sink.waitForMessages(1)
    expect(message!.rcptTo).toEqual(['alice@origin.example'])
  })

  it('must follow relay-policy: placed before it, a valid bounce is refused 554 5.7.1 (the reversed address is not ours)', async () => {
    const policy = () => relayPolicy({ domains: ['example.com', 'srs.example.com'] })
    const bounce = srs.forward('alice@origin.example')
    const after = await relayWith([policy(), addressRewrite({ srs: SRS })])
    expect((await after.session('', [bounce]))[1]).toBe('250 Accepted')
    const before = await relayWith([addressRewrite({ srs: SRS }), policy()])
    expect((await before.session('', [bounce]))[1]).toBe('554 5.7.1 Relay access denied')
  })

  const perl = havePerlModule('Mail::SRS', 'apt-get install -y libmail-srs-perl')
  /** Runs Mail::SRS (Perl, the reference implementation) with our secret: `forward` or `reverse`. */
  const mailSrs = (method: 'forward' | 'reverse', ...args: string[]) => {
    const script = `my $s = Mail::SRS->new(Secret => $ARGV[0], MaxAge => 21); my $r = eval { $s->${method}(@ARGV[1..$#ARGV]) }; print $@ ? "ERROR: $@" : $r`
    return spawnSync('perl', ['-MMail::SRS', '-e', script, SECRET, ...args], { encoding: 'utf8' }).stdout.trim()
  }

  it.runIf(perl)('agrees with Mail::SRS, the reference implementation, in both directions', () => {
    const ours = srs.forward('alice@origin.example')
    expect(mailSrs('forward', 'alice@origin.example', 'srs.example.com')).toBe(ours)
    expect(mailSrs('reverse', ours)).toBe('alice@origin.example')
    const theirs1 = mailSrs('forward', 'SRS0=abcd=XY=origin.example=alice@fwd.example', 'srs.example.com')
    expect(theirs1).toBe(srs.forward('SRS0=abcd=XY=origin.example=alice@fwd.example'))
    expect(srs.reverse(theirs1)).toEqual({ address: mailSrs('reverse', theirs1) })
    expect(mailSrs('reverse', ours.replace(/^SRS0=..../, 'SRS0=AAAA'))).toMatch(/^ERROR: .*Invalid hash/)
  })
})
