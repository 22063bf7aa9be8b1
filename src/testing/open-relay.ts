/**
 * `checkOpenRelay()`: a self-test to run against your own relay. It plays the classic third-party
 * relay tests — the address forms public relay checkers have used since the 1990s: plain
 * relaying, spoofed local senders, the `%` hack, bang paths, quoted and doubled `@`, source
 * routes, IP literals — each on a fresh connection as an unauthenticated client, and reports
 * which recipients the relay accepted. Any accepted test is a hole. A control (mail for
 * `postmaster@<domain>`) shows the relay was reachable and answering.
 */
import { isIPv4, isIPv6 } from 'node:net'
import type { ConnectionOptions } from 'node:tls'
import { RawSmtp } from './raw-smtp.js'

/**
 * Options of {@link checkOpenRelay}.
 *
 * @category Testing
 */
export interface OpenRelayCheckOptions {
  /** The relay's address. */
  host: string
  /** The relay's port. */
  port: number
  /** A domain the relay is responsible for, e.g. your own mail domain. */
  domain: string
  /** A domain the relay must not relay to. Default `relay-test.invalid` (can never be delivered). */
  external?: string
  /** Name to send with EHLO. Default `relay-check.invalid`. */
  helo?: string
  /** Upgrade with STARTTLS before each test (for relays that require it), with these TLS options. */
  starttls?: boolean | ConnectionOptions
  /** Send a short test message when a recipient is accepted (default false: stop after RCPT). */
  sendData?: boolean
  /** Milliseconds to wait for each reply. Default 10 000. */
  timeout?: number
}

/**
 * One relay test.
 *
 * @category Testing
 */
export interface RelayTestResult {
  /** Which test, e.g. `third-party sender and recipient`, `percent hack`. */
  readonly name: string
  /** The MAIL FROM path, e.g. `<spamtest@relay-test.invalid>`. */
  readonly mailFrom: string
  /** The RCPT TO path. */
  readonly rcptTo: string
  /** True if the relay accepted the recipient. For a third-party test, a relay hole. */
  readonly accepted: boolean
  /** The reply that decided, e.g. `554 5.7.1 Relay access denied`, or what went wrong. */
  readonly reply: string
}

/**
 * What {@link checkOpenRelay} found.
 *
 * @category Testing
 */
export interface OpenRelayReport {
  /** True when no third-party test was accepted. */
  readonly passed: boolean
  /** Every third-party test, in order. */
  readonly tests: readonly RelayTestResult[]
  /** Mail for `postmaster@<domain>`: normally accepted; if not, the relay refused everything. */
  readonly control: RelayTestResult
}

/** The classic tests: [name, MAIL FROM path, RCPT TO path]. D = our domain, X = external, L = our IP literal. */
function relayTests(D: string, X: string, L: string | undefined): Array<[string, string, string]> {
  const tests: Array<[string, string, string]> = [
    ['third-party sender and recipient', `<spamtest@${X}>`, `<victim@${X}>`],
    ['null sender', '<>', `<victim@${X}>`],
    ['sender in the relay domain', `<postmaster@${D}>`, `<victim@${X}>`],
    ['sender at localhost', '<spamtest@localhost>', `<victim@${X}>`],
    ['recipient domain in upper case with a trailing dot', `<spamtest@${X}>`, `<victim@${X.toUpperCase()}.>`],
    ['percent hack', `<spamtest@${X}>`, `<victim%${X}@${D}>`],
    ['percent hack with a trailing dot', `<spamtest@${X}>`, `<victim%${X}@${D}.>`],
    ['double percent hack', `<spamtest@${X}>`, `<victim%${X}%${D}@${D}>`],
    ['quoted recipient without domain', `<spamtest@${X}>`, `<"victim@${X}">`],
    ['quoted percent without domain', `<spamtest@${X}>`, `<"victim%${X}">`],
    ['quoted @ in the relay domain', `<spamtest@${X}>`, `<"victim@${X}"@${D}>`],
    ['double @', `<spamtest@${X}>`, `<victim@${X}@${D}>`],
    ['source route through the relay domain', `<spamtest@${X}>`, `<@${D}:victim@${X}>`],
    ['bang path', `<spamtest@${X}>`, `<${X}!victim>`],
    ['bang path in the relay domain', `<spamtest@${X}>`, `<${X}!victim@${D}>`],
    ['external IP literal', `<spamtest@${X}>`, '<victim@[192.0.2.1]>'],
  ]
  if (L) {
    tests.push(
      ['sender at the relay IP literal', `<spamtest@${L}>`, `<victim@${X}>`],
      ['percent hack at the relay IP literal', `<spamtest@${X}>`, `<victim%${X}@${L}>`],
      ['quoted @ at the relay IP literal', `<spamtest@${X}>`, `<"victim@${X}"@${L}>`],
      ['source route through the relay IP literal', `<spamtest@${X}>`, `<@${L}:victim@${X}>`],
      ['bang path at the relay IP literal', `<spamtest@${X}>`, `<${X}!victim@${L}>`],
    )
  }
  return tests
}

/**
 * Runs the relay tests against `host:port`. Resolves with a report; rejects only if the options
 * are unusable. Run it against your relay from a client address that is *not* allowlisted.
 *
 * @example
 * ```ts
 * const report = await checkOpenRelay({ host: '127.0.0.1', port: 25, domain: 'example.com' })
 * for (const t of report.tests) if (t.accepted) console.error(`OPEN RELAY: ${t.name}: ${t.rcptTo}`)
 * if (!report.passed) process.exitCode = 1
 * ```
 *
 * @category Testing
 */
export async function checkOpenRelay(options: OpenRelayCheckOptions): Promise<OpenRelayReport> {
  const external = options.external ?? 'relay-test.invalid'
  const literal = isIPv4(options.host) ? `[${options.host}]` : isIPv6(options.host) ? `[IPv6:${options.host}]` : undefined
  const tests: RelayTestResult[] = []
  for (const [name, from, to] of relayTests(options.domain, external, literal)) tests.push(await runTest(options, name, from, to))
  const control = await runTest(options, 'control: mail for the relay domain', `<spamtest@${external}>`, `<postmaster@${options.domain}>`)
  return { passed: tests.every((t) => !t.accepted), tests, control }
}

async function runTest(options: OpenRelayCheckOptions, name: string, mailFrom: string, rcptTo: string): Promise<RelayTestResult> {
  const timeout = options.timeout ?? 10_000
  const result = (accepted: boolean, reply: string): RelayTestResult => ({ name, mailFrom, rcptTo, accepted, reply })
  let client: RawSmtp | undefined
  try {
    const connected = await RawSmtp.connect(options.port, options.host)
    client = connected.client
    if (!connected.greeting.startsWith('220')) return result(false, connected.greeting)
    const say = (line: string) => client!.command(line, timeout)
    const helo = `EHLO ${options.helo ?? 'relay-check.invalid'}`
    await say(helo)
    if (options.starttls) {
      const tls = options.starttls === true ? {} : options.starttls
      const reply = await client.starttls({ servername: options.host, ...tls }, timeout)
      if (!reply.startsWith('220')) return result(false, `STARTTLS: ${reply}`)
      await say(helo)
    }
    const mail = await say(`MAIL FROM:${mailFrom}`)
    if (!mail.startsWith('250')) return result(false, mail)
    const rcpt = await say(`RCPT TO:${rcptTo}`)
    const accepted = /^25[01] /.test(rcpt)
    if (accepted && options.sendData && (await say('DATA')).startsWith('354')) {
      await say(
        `From: ${mailFrom}\r\nTo: ${rcptTo}\r\nSubject: relay test: ${name}\r\n\r\nA relay test message. If it arrived, the relay is open.\r\n.`,
      )
    }
    await say('QUIT').catch(() => '')
    return result(accepted, rcpt)
  } catch (err) {
    return result(false, `no answer: ${(err as Error).message}`)
  } finally {
    client?.close()
  }
}
