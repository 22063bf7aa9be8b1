/**
 * Template for writing your own stage: copy this file, rename the factory, keep the hooks you
 * need and delete the rest. Every hook is optional. This one implements a small policy: only
 * senders from the given domains may send, every message must have a Subject, and accepted
 * messages are tagged with a header. A second stage, `internalNotice()`, shows a split: it forks
 * the message so that internal recipients get a copy with a notice header and the others the
 * message as it is. The demo also subscribes to the relay's delivery events.
 *
 *   npx tsx examples/custom-stage.ts     runs it in a relay against a local test server
 *
 * Its test, examples/custom-stage.test.ts, shows how to test a stage (runStage, testMessage) and
 * a whole relay (startSink); copy that too.
 */
import { pathToFileURL } from 'node:url'
import { type DeliveryReport, domainMatcher, reject, SmtpError, type Stage } from 'relaychain'

// Typed per-message state other stages can read, by declaration merging.
declare module 'relaychain' {
  interface MessageState {
    /** Set by require-subject: the Subject the message was checked with. */
    checkedSubject?: string
  }
}

/** Options of {@link requireSubject}. */
export interface RequireSubjectOptions {
  /** Sender domains allowed to use this relay. */
  senderDomains: readonly string[]
  /** Value of the X-Checked-By header added to accepted messages. Default `'require-subject'`. */
  tag?: string
}

/**
 * Refuses senders outside `senderDomains` (550 5.7.1) and messages without a Subject
 * (550 5.6.0); tags the others.
 *
 * @example
 * ```ts
 * createRelay({ stages: [policy, requireSubject({ senderDomains: ['example.com'] })], transport })
 * ```
 */
export function requireSubject(options: RequireSubjectOptions): Stage {
  const domains = new Set(options.senderDomains.map((d) => d.toLowerCase()))
  const tag = options.tag ?? 'require-subject'
  return {
    // kebab-case, the same as the file name; shows in logs, errors and describe().
    name: 'require-subject',
    // Declare what data() changes, so a pipeline refuses to put it where it would break a
    // signature: 'trace' (only adds new fields at the top, as here), 'headers' (edits any
    // field) or 'body'.
    modifies: 'trace',

    // connect(session): once per connection, before the greeting. Throw to refuse it.
    // Not needed here.

    // mailFrom: once per transaction. Throw to refuse the sender; return an Address to rewrite it.
    mailFrom(_tx, from) {
      // The null sender (bounces) has no domain to check; let it through.
      if (!from) return
      const domain = from.address.slice(from.address.lastIndexOf('@') + 1).toLowerCase()
      // reject.* keeps the client's reply generic; the reason goes to the log only.
      if (!domains.has(domain)) throw reject.policy(`sender domain ${domain} not allowed`)
    },

    // rcptTo: once per recipient. Throw to refuse this recipient only; return addresses to rewrite
    // or expand it, or { relay: true } to grant relaying (then declare grantsRelay: true).
    // Not needed here.

    // data: once per message. Inspect or edit, then `return next()` exactly once.
    async data(msg, next) {
      const subject = msg.headers.get('subject')
      if (!subject) throw new SmtpError(550, '5.6.0', 'Message must have a Subject', { reason: 'no Subject header' })
      msg.state.checkedSubject = subject
      msg.headers.add('X-Checked-By', tag)
      const report = await next()
      // After next(): the delivery report. A place for metrics, archive taps, events.
      return report
    },

    // close(): when the relay shuts down; release timers and connections here.
  }
}

/**
 * Adds `X-Internal-Notice` to the copy for recipients in `domains` only: the message is forked
 * into two groups, each passed on with its own `next(fork)`, and the two reports merged.
 *
 * @example
 * ```ts
 * createRelay({ stages: [policy, internalNotice({ domains: ['example.org'], text: 'Internal only' })], transport })
 * ```
 */
export function internalNotice(options: { domains: readonly string[]; text: string }): Stage {
  const internal = domainMatcher(options.domains, 'internalNotice domains')
  return {
    name: 'internal-notice',
    modifies: 'trace',
    async data(msg, next) {
      const inside = msg.envelope.rcptTo.filter((r) => internal(r.address.slice(r.address.lastIndexOf('@') + 1)))
      const outside = msg.envelope.rcptTo.filter((r) => !inside.includes(r))
      // Nothing to split: pass the message itself on (the cheapest path).
      if (!inside.length || !outside.length) {
        if (inside.length) msg.headers.add('X-Internal-Notice', options.text)
        return next()
      }
      // A fork has its own header block; with two forks the body is spooled once and read twice.
      const forInside = await msg.fork(inside)
      forInside.headers.add('X-Internal-Notice', options.text)
      const reports: DeliveryReport[] = [await next(forInside), await next(await msg.fork(outside))]
      return { accepted: reports.flatMap((r) => r.accepted), rejected: reports.flatMap((r) => r.rejected), response: reports[0]!.response ?? '' }
    },
  }
}

/** Runs the stages in a relay against a local test server, sends a good and a bad message, exits. */
async function demo(): Promise<void> {
  const { createTransport } = await import('nodemailer')
  const { createRelay, relayPolicy, smtpTransport } = await import('relaychain')
  const { checkOpenRelay, startSink } = await import('relaychain/testing')
  const sink = await startSink()
  const relay = createRelay({
    // relayPolicy decides who may relay (here: mail for example.org); your stage comes after it.
    stages: [
      relayPolicy({ domains: ['example.org', 'partner.example'] }),
      requireSubject({ senderDomains: ['example.com'] }),
      internalNotice({ domains: ['example.org'], text: 'internal distribution' }),
    ],
    transport: smtpTransport({ host: sink.host, port: sink.port }),
    listeners: [{ port: 0, mode: 'submission' }],
  })
  // Every outcome the relay decides arrives here: a place for metrics, webhooks, a dashboard.
  relay.events.subscribe((event) => {
    if (event.type === 'accepted') console.log(`event accepted:    ${event.id} for ${event.to.join(', ')}`)
    if (event.type === 'delivered') console.log(`event delivered:   ${event.rcpt} (${event.response.split(' ').slice(0, 2).join(' ')})`)
    if (event.type === 'message-refused') console.log(`event refused:     ${event.reply}`)
  })
  const [bound] = await relay.listen()
  const client = createTransport({ host: bound!.host, port: bound!.port, ignoreTLS: true })
  const good = await client.sendMail({
    from: 'ann@example.com',
    to: ['bob@example.org', 'carl@partner.example'],
    subject: 'Report',
    text: 'Attached.\n',
  })
  console.log(`with a Subject:    ${good.response}`)
  const bad = await client.sendMail({ from: 'ann@example.com', to: 'bob@example.org', text: 'No subject.\n' }).catch((e: { response: string }) => e)
  console.log(`without a Subject: ${(bad as { response: string }).response}`)
  for (const received of await sink.waitForMessages(2)) {
    const notice = /^X-Internal-Notice: .*$/m.exec(received.raw.toString())?.[0] ?? 'no notice'
    console.log(`upstream got for ${received.rcptTo.join(', ')}: ${/^X-Checked-By: .*$/m.exec(received.raw.toString())?.[0]}, ${notice}`)
  }
  const check = await checkOpenRelay({ host: bound!.host, port: bound!.port, domain: 'example.org' })
  console.log(`open-relay tests:  ${check.tests.filter((t) => !t.accepted).length} of ${check.tests.length} refused`)
  if (!check.passed) process.exitCode = 1
  client.close()
  await relay.close()
  await sink.close()
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await demo()
