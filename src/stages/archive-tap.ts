/**
 * `archiveTap()`: keeps an exact copy of every message in an archive — any transport: a
 * `fileTransport` (`.eml` files with a JSON sidecar of envelope and delivery outcome, or a
 * Maildir), or an archive mailbox over SMTP (BCC-style: give `recipients`). The copy is the
 * message as it reached this stage (`copy: 'received'`; put the stage first to keep exactly what
 * the client sent) or as the transport got it (`copy: 'delivered'`; the stage then declares that
 * it seals the message, so the pipeline refuses any stage after it that would change it).
 *
 * Best effort by default: the copy is written after delivery, with the outcome, and a failure is
 * logged but never loses or delays the mail. `mandatory: true` writes the copy before delivery
 * and tempfails the message (`451 4.3.0`) when the archive cannot take it, so no message is
 * delivered unarchived; the outcome is then only logged.
 */
import { RelayError, reject, toSmtpError } from '../core/errors.js'
import type { Address, DeliveryReport, Message, Stage, Transport } from '../core/types.js'
import type { Logger } from '../shared/logger.js'

/**
 * What became of the archived message.
 *
 * @category Stages
 */
export interface ArchiveOutcome {
  /** `'delivered'`: every recipient accepted; `'partial'`: some; `'refused'`: none, or the chain refused the message. */
  readonly status: 'delivered' | 'partial' | 'refused'
  /** Recipients the next hop accepted. */
  readonly accepted: readonly string[]
  /** Recipients refused, each with the reply it got. */
  readonly rejected: ReadonlyArray<{
    /** The recipient's address. */
    readonly rcpt: string
    /** The reply, e.g. `550 5.1.1 User unknown`. */
    readonly reply: string
  }>
  /** The next hop's last reply, or the reply the client got when the chain refused the message. */
  readonly response?: string
}

/**
 * What the archive learns besides the message; a `fileTransport` writes it into the JSON sidecar.
 *
 * @category Stages
 */
export interface ArchiveRecord {
  /** Which copy this is: the message as received, or as the chain delivered it (after its edits). */
  readonly copy: 'received' | 'delivered'
  /** Absent when the copy was written before delivery (`mandatory: true`). */
  readonly outcome?: ArchiveOutcome
}

declare module 'relaychain' {
  interface MessageState {
    /** Set by archive-tap on the copy it hands the archive transport. */
    archive?: ArchiveRecord
  }
}

/**
 * Options of {@link archiveTap}.
 *
 * @category Stages
 */
export interface ArchiveTapOptions {
  /** The archive: e.g. `fileTransport({ dir: '/var/archive' })` or `smtpTransport({ … })`. Closed with the stage. */
  to: Transport
  /** `'received'` (default): the message as it reached this stage. `'delivered'`: as the transport got it. */
  copy?: 'received' | 'delivered'
  /** Envelope recipients of the copy (an archive mailbox). Default: the message's own recipients. */
  recipients?: readonly string[]
  /** Tempfail a message the archive cannot take (written before delivery). Default false: best effort. */
  mandatory?: boolean
  /** Receives archive failures (best effort) and one line per archived message. */
  logger?: Logger
}

/**
 * Creates an archive-tap stage.
 *
 * @example
 * ```ts
 * const relay = createRelay({
 *   stages: [relayPolicy(), archiveTap({ to: fileTransport({ dir: '/var/mail-archive' }) }), spamScan({ scanner: spamd() })],
 *   transport: smtpTransport({ host: 'smarthost.example', port: 587 }),
 * })
 * ```
 *
 * @category Stages
 */
export function archiveTap(options: ArchiveTapOptions): Stage {
  const { to, logger } = options
  const copy = options.copy ?? 'received'
  const mandatory = options.mandatory ?? false
  const recipients = options.recipients?.map((address): Address => ({ address }))
  if (!to || typeof to.send !== 'function') throw invalid('to must be a transport')
  if (copy !== 'received' && copy !== 'delivered') throw invalid("copy must be 'received' or 'delivered'")
  if (mandatory && copy === 'delivered')
    throw invalid("a mandatory archive is written before delivery: use copy: 'received' and place the stage where the copy should be taken")
  if (recipients && (!recipients.length || recipients.some((r) => !/^[^\s<>@]+@[^\s<>@]+$/.test(r.address))))
    throw invalid('recipients must be mail addresses')

  /** The copy: a fork for the archive's recipients, with its own state (the archive record). */
  const forkOf = (msg: Message) => msg.fork(recipients ?? msg.envelope.rcptTo, { state: {} })

  async function archive(archived: Message, outcome?: ArchiveOutcome): Promise<void> {
    archived.state.archive = { copy, ...(outcome ? { outcome } : {}) }
    const report = await to.send(archived)
    if (report.rejected.length) throw report.rejected[0]!.error
    logger?.info({ id: archived.id, stage: 'archive-tap', copy, response: report.response }, 'message archived')
  }

  return {
    name: 'archive-tap',
    ...(copy === 'delivered' ? { seals: 'message' as const } : {}),
    async data(msg, next) {
      if (mandatory) {
        await archive(await forkOf(msg)).catch((err: unknown) => {
          throw reject.tempFail(err, `mandatory archive failed: ${toSmtpError(err).reason ?? String(err)}`)
        })
        return next()
      }
      // 'received': the message as it is now; 'delivered': as the transport wrote it (taken after).
      const received = copy === 'received' ? await forkOf(msg) : (await msg.body.spool(), undefined)
      let report: DeliveryReport | undefined
      let failure: unknown
      try {
        report = await next()
      } catch (err) {
        failure = err
      }
      const archived = received ?? (await forkOf(msg))
      await archive(archived, outcomeOf(report, failure)).catch((err: unknown) => {
        logger?.error(
          { id: msg.id, stage: 'archive-tap', err: toSmtpError(err).reason ?? String(err) },
          'archive failed; the message was not archived',
        )
      })
      if (report) return report
      throw failure
    },
    async close() {
      await to.close?.()
    },
  }
}

function outcomeOf(report: DeliveryReport | undefined, failure: unknown): ArchiveOutcome {
  if (!report) return { status: 'refused', accepted: [], rejected: [], response: toSmtpError(failure).toReply() }
  const accepted = report.accepted.map((a) => a.address)
  const rejected = report.rejected.map((r) => ({ rcpt: r.rcpt.address, reply: r.error.toReply() }))
  const status = !accepted.length ? 'refused' : rejected.length ? 'partial' : 'delivered'
  return { status, accepted, rejected, ...(report.response ? { response: report.response } : {}) }
}

function invalid(message: string): RelayError {
  return new RelayError('ERR_RELAY_INVALID_OPTION', `archive-tap: ${message}`)
}
