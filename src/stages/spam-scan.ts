/**
 * `spamScan()`: content policy by spam score. The message is spooled (never held whole in memory
 * beyond the relay's spool limit) and handed to a scanner — SpamAssassin's spamd, rspamd, or a
 * function of your own — whose verdict becomes one action: reject (`550 5.7.1`), quarantine
 * (delivered to another transport instead; the client still gets 250), tag (the standard
 * `X-Spam-*` fields, optionally a Subject prefix), or accept. The verdict is kept in
 * `msg.state.spam` for later stages. A scanner that fails or is slower than `timeout` tempfails
 * the message (`451 4.7.1`) unless `onError: 'accept'`; messages over `maxSize` are not scanned,
 * as spamc does.
 *
 * Place it early in the `data` chain, before anything that alters the body (disclaimer,
 * signing): on outgoing mail it keeps the relay's users from damaging its reputation.
 */
import { RelayError, reject } from '../core/errors.js'
import type { Message, Stage, Transport } from '../core/types.js'
import { describeFailure, notScanned, quarantine, scanWithin, spoolMessage } from '../scanners/run.js'
import { tagAsSpam } from '../scanners/spam-fields.js'
import type { SpamAction, SpamScanner, SpamVerdict } from '../scanners/types.js'
import type { Logger } from '../shared/logger.js'

export { type RspamdOptions, rspamd } from '../scanners/rspamd.js'
export { type SpamdOptions, spamd } from '../scanners/spamd.js'
export type { ScanInput, SpamAction, SpamScanner, SpamVerdict } from '../scanners/types.js'

/**
 * What spam-scan did with a message; `msg.state.spam`.
 *
 * @category Stages
 */
export type SpamScanResult =
  | {
      /** What the stage did. */
      readonly action: SpamAction
      /** The scanner's answer. */
      readonly verdict: SpamVerdict
    }
  | {
      /** The message was not scanned and passed on. */
      readonly action: 'skipped'
      /** Larger than `maxSize`, or the scanner failed with `onError: 'accept'`. */
      readonly reason: 'too-large' | 'scanner-failed'
      /** The message's size in bytes. */
      readonly size: number
    }

declare module 'relaychain' {
  interface MessageState {
    /** Set by spam-scan: the verdict and the action taken, or why the message was not scanned. */
    spam?: SpamScanResult
  }
}

/**
 * Score thresholds: the strictest action whose threshold the score reaches wins.
 *
 * @category Stages
 */
export interface SpamThresholds {
  /** Score from which the message is tagged (`X-Spam-*` fields, the subject prefix). */
  tag?: number
  /** Score from which it goes to the quarantine transport instead. */
  quarantine?: number
  /** Score from which it is refused (`550 5.7.1`). */
  reject?: number
}

/**
 * Options of {@link spamScan}.
 *
 * @category Stages
 */
export interface SpamScanOptions {
  /** `spamd()`, `rspamd()`, or a function `(input) => verdict`. */
  scanner: SpamScanner
  /**
   * How a verdict becomes an action: score thresholds, or a function. Default: the scanner's own
   * recommendation (spamd: tag at its required score; rspamd: its configured action).
   */
  actions?: SpamThresholds | ((verdict: SpamVerdict, msg: Message) => SpamAction)
  /** Where quarantined messages go (a `fileTransport`, a quarantine mailbox over SMTP). */
  quarantine?: Transport
  /** Prefix for the Subject of tagged messages, e.g. `'[SPAM]'`. Default: Subject left alone. */
  subjectPrefix?: string
  /** Milliseconds the scanner may take. Default 30 000. */
  timeout?: number
  /** When the scanner fails or times out: `'tempfail'` (default, `451 4.7.1`) or `'accept'` with an `X-Spam-Status: Unknown` field. */
  onError?: 'tempfail' | 'accept'
  /** Messages larger than this many bytes are passed unscanned, as spamc does. Default 512 000. */
  maxSize?: number
  /** Receives one line per scan (score, symbols, action). */
  logger?: Logger
}

const SEVERITY: readonly SpamAction[] = ['accept', 'tag', 'quarantine', 'reject']
const THRESHOLDS = ['tag', 'quarantine', 'reject'] as const

/**
 * Creates a spam-scan stage.
 *
 * @example
 * ```ts
 * const relay = createRelay({
 *   stages: [relayPolicy(), spamScan({ scanner: spamd({ port: 783 }), actions: { tag: 5, reject: 10 }, subjectPrefix: '[SPAM]' })],
 *   transport: smtpTransport({ host: 'smarthost.example', port: 587 }),
 * })
 * ```
 *
 * @category Stages
 */
export function spamScan(options: SpamScanOptions): Stage {
  const { scanner, actions, subjectPrefix, logger } = options
  const timeout = positive(options.timeout ?? 30_000, 'timeout')
  const maxSize = positive(options.maxSize ?? 512_000, 'maxSize')
  const onError = options.onError ?? 'tempfail'
  if (typeof scanner !== 'function') throw invalid('scanner must be a function, e.g. spamd()')
  if (onError !== 'tempfail' && onError !== 'accept') throw invalid("onError must be 'tempfail' or 'accept'")
  if (subjectPrefix !== undefined && (!subjectPrefix || /[\r\n]/.test(subjectPrefix))) throw invalid('subjectPrefix must be one non-empty line')
  if (actions && typeof actions === 'object') {
    for (const [action, score] of Object.entries(actions)) {
      if (!THRESHOLDS.includes(action as (typeof THRESHOLDS)[number]) || !Number.isFinite(score))
        throw invalid(`actions.${action} must be a finite score`)
    }
    if (actions.quarantine !== undefined && !options.quarantine) throw invalid('actions.quarantine needs a quarantine transport')
  }

  const decide = (verdict: SpamVerdict, msg: Message): SpamAction => {
    if (typeof actions === 'function') return actions(verdict, msg)
    if (actions) return THRESHOLDS.filter((a) => verdict.score >= (actions[a] ?? Infinity)).pop() ?? 'accept'
    return verdict.action ?? (verdict.score >= (verdict.threshold ?? 5) ? 'tag' : 'accept')
  }

  return {
    name: 'spam-scan',
    modifies: subjectPrefix ? 'headers' : 'trace',
    async data(msg, next) {
      const spooled = await spoolMessage(msg)
      if (spooled.size > maxSize) {
        msg.state.spam = { action: 'skipped', reason: 'too-large', size: spooled.size }
        logger?.info({ id: msg.id, stage: 'spam-scan', size: spooled.size, maxSize }, 'spam scan skipped: message too large')
        return next()
      }
      let verdict: SpamVerdict
      try {
        verdict = await scanWithin(scanner, msg, spooled, timeout)
        if (!Number.isFinite(verdict?.score)) throw new Error(`the scanner answered without a score: ${JSON.stringify(verdict)}`)
      } catch (err) {
        const reason = `spam scanner failed: ${describeFailure(err)}`
        logger?.warn({ id: msg.id, stage: 'spam-scan', err: reason, onError }, 'spam scan failed')
        if (onError === 'tempfail') throw notScanned(reason, err)
        msg.state.spam = { action: 'skipped', reason: 'scanner-failed', size: spooled.size }
        msg.headers.add('X-Spam-Status', 'Unknown, scanner unavailable')
        return next()
      }
      const action = decide(verdict, msg)
      if (!SEVERITY.includes(action)) throw new RelayError('ERR_RELAY_INVALID_OPTION', `spam-scan: actions() returned ${JSON.stringify(action)}`)
      msg.state.spam = { action, verdict }
      const summary = `score ${verdict.score}${verdict.threshold !== undefined ? `/${verdict.threshold}` : ''} (${Object.keys(verdict.symbols ?? {}).join(',')})`
      logger?.info(
        {
          id: msg.id,
          stage: 'spam-scan',
          scanner: verdict.scanner,
          score: verdict.score,
          threshold: verdict.threshold,
          symbols: verdict.symbols,
          action,
        },
        'spam scan',
      )
      if (action === 'reject') throw reject.policy(`spam: ${summary}`)
      if (action === 'accept') return next()
      tagAsSpam(msg, verdict, subjectPrefix)
      if (action === 'tag') return next()
      if (!options.quarantine) throw new RelayError('ERR_RELAY_INVALID_OPTION', 'spam-scan: quarantine action without a quarantine transport')
      return quarantine(msg, options.quarantine, 'spam-scan')
    },
    async close() {
      await options.quarantine?.close?.()
    },
  }
}

function positive(value: number, name: string): number {
  if (!Number.isFinite(value) || value <= 0) throw invalid(`${name} must be a positive number`)
  return value
}

function invalid(message: string): RelayError {
  return new RelayError('ERR_RELAY_INVALID_OPTION', `spam-scan: ${message}`)
}
