/**
 * The contracts between the scanning stages (`spamScan`, `virusScan`) and the scanners they call.
 * A scanner is a plain function: it is handed the whole message as a re-readable stream and
 * answers with a verdict. `spamd()`, `rspamd()` and `clamd()` build scanners for the daemons; any
 * function of the same shape works too (a rule of your own, another engine).
 */
import type { Readable } from 'node:stream'
import type { Awaitable, Message } from '../core/types.js'

/**
 * What a scanner is handed: the message as it reached the scanning stage, spooled (memory up to
 * the relay's spool limit, then a temp file), so it can be read as often as needed.
 *
 * @category Scanners
 */
export interface ScanInput {
  /** The message being scanned: envelope, session, header block. Do not edit it from a scanner. */
  readonly message: Message
  /** Size in bytes of the whole message (header section and body) that `open()` streams. */
  readonly size: number
  /** A new stream over the whole message, header section then body, CRLF line endings. */
  open(): Readable
  /**
   * Aborted when the stage's timeout expires or the client goes away: stop reading and writing,
   * close connections, and reject.
   */
  readonly signal: AbortSignal
}

/**
 * What the spam-scan stage does with a message. Ordered from mildest to strictest.
 *
 * @category Scanners
 */
export type SpamAction = 'accept' | 'tag' | 'quarantine' | 'reject'

/**
 * A spam scanner's answer.
 *
 * @category Scanners
 */
export interface SpamVerdict {
  /** The score; higher is spammier. */
  readonly score: number
  /** The scanner's own spam threshold (SpamAssassin's `required_score`, rspamd's reject score), if it has one. */
  readonly threshold?: number
  /**
   * The action the scanner recommends, mapped to a {@link SpamAction}; used when the stage is
   * not given thresholds of its own. Without it, the stage tags at `threshold` (or 5).
   */
  readonly action?: SpamAction
  /** Rules that matched, with their scores (0 when the scanner does not say). */
  readonly symbols?: Readonly<Record<string, number>>
  /** Which scanner answered, e.g. `'spamd'`; for logs and the `X-Spam-Checker` field. */
  readonly scanner?: string
}

/**
 * A spam scanner: `spamd()`, `rspamd()`, or a function of your own. Reject (throw) when the scan
 * could not be done; the stage then fails closed (`451 4.7.1`) or open, as configured.
 *
 * @example
 * ```ts
 * const shouting: SpamScanner = ({ message }) => {
 *   const subject = message.headers.get('subject') ?? ''
 *   return { score: subject.length > 8 && subject === subject.toUpperCase() ? 6 : 0, scanner: 'shouting' }
 * }
 * ```
 *
 * @category Scanners
 */
export type SpamScanner = (input: ScanInput) => Awaitable<SpamVerdict>

/**
 * A virus scanner's answer.
 *
 * @category Scanners
 */
export type VirusVerdict =
  | {
      /** No virus found. */
      readonly status: 'clean'
    }
  | {
      /** The scanner found something. */
      readonly status: 'infected'
      /** What it found, as the scanner names it (e.g. `Eicar-Signature`). */
      readonly viruses: readonly string[]
    }
  | {
      /** The scanner stopped before the end: the message is larger than it is configured to scan. */
      readonly status: 'too-large'
    }

/**
 * A virus scanner: `clamd()`, or a function of your own. Reject (throw) when the scan could not be done.
 *
 * @category Scanners
 */
export type VirusScanner = (input: ScanInput) => Awaitable<VirusVerdict>
