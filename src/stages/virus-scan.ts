/**
 * `virusScan()`: refuses infected mail. The message is spooled (never held whole in memory beyond
 * the relay's spool limit) and streamed to a virus scanner — ClamAV's clamd through `clamd()`, or
 * a function of your own. Infected: `554 5.7.1` (or delivered to a quarantine transport instead,
 * and the client gets 250). Larger than the scanner will scan: refused (`552 5.3.4`) or
 * tempfailed, as configured, never passed silently unless `onTooLarge: 'accept'`. Scanner down
 * or slower than `timeout`: `451 4.7.1` unless `onError: 'accept'`. The verdict is kept in
 * `msg.state.virus`.
 *
 * Place it early in the `data` chain, before anything that alters the body (disclaimer,
 * encryption): scan what the sender sent.
 */
import { RelayError, SmtpError } from '../core/errors.js'
import type { Stage, Transport } from '../core/types.js'
import { describeFailure, notScanned, quarantine, scanWithin, spoolMessage } from '../scanners/run.js'
import type { VirusScanner, VirusVerdict } from '../scanners/types.js'
import type { Logger } from '../shared/logger.js'

export { type ClamdOptions, clamd } from '../scanners/clamd.js'
export type { ScanInput, VirusScanner, VirusVerdict } from '../scanners/types.js'

/**
 * What virus-scan found; `msg.state.virus`. `'unscanned'`: the scanner failed and `onError` is `'accept'`.
 *
 * @category Stages
 */
export type VirusScanResult =
  | VirusVerdict
  | {
      /** The scanner failed and the message was passed on unscanned (`onError: 'accept'`). */
      readonly status: 'unscanned'
    }

declare module 'relaychain' {
  interface MessageState {
    /** Set by virus-scan: the scanner's verdict. */
    virus?: VirusScanResult
  }
}

/**
 * Options of {@link virusScan}.
 *
 * @category Stages
 */
export interface VirusScanOptions {
  /** `clamd()`, or a function `(input) => verdict`. */
  scanner: VirusScanner
  /** Infected mail: `'reject'` (default, `554 5.7.1`) or `'quarantine'`. */
  onInfected?: 'reject' | 'quarantine'
  /** Where quarantined messages go; required with `onInfected: 'quarantine'`. */
  quarantine?: Transport
  /**
   * A message larger than the scanner scans (clamd's `StreamMaxLength`): `'reject'` (default,
   * `552 5.3.4`), `'tempfail'` (`451 4.7.1`), or `'accept'` unscanned.
   */
  onTooLarge?: 'reject' | 'tempfail' | 'accept'
  /** Milliseconds the scanner may take. Default 60 000. */
  timeout?: number
  /** When the scanner fails or times out: `'tempfail'` (default, `451 4.7.1`) or `'accept'` unscanned. */
  onError?: 'tempfail' | 'accept'
  /** Receives one line per scan. */
  logger?: Logger
}

/**
 * Creates a virus-scan stage.
 *
 * @example
 * ```ts
 * const relay = createRelay({
 *   stages: [relayPolicy(), virusScan({ scanner: clamd({ host: '127.0.0.1', port: 3310 }) })],
 *   transport: smtpTransport({ host: 'smarthost.example', port: 587 }),
 * })
 * ```
 *
 * @category Stages
 */
export function virusScan(options: VirusScanOptions): Stage {
  const { scanner, logger } = options
  const onInfected = options.onInfected ?? 'reject'
  const onTooLarge = options.onTooLarge ?? 'reject'
  const onError = options.onError ?? 'tempfail'
  const timeout = options.timeout ?? 60_000
  if (typeof scanner !== 'function') throw invalid('scanner must be a function, e.g. clamd()')
  if (!Number.isFinite(timeout) || timeout <= 0) throw invalid('timeout must be a positive number')
  if (!['reject', 'quarantine'].includes(onInfected)) throw invalid("onInfected must be 'reject' or 'quarantine'")
  if (onInfected === 'quarantine' && !options.quarantine) throw invalid("onInfected: 'quarantine' needs a quarantine transport")
  if (!['reject', 'tempfail', 'accept'].includes(onTooLarge)) throw invalid("onTooLarge must be 'reject', 'tempfail' or 'accept'")
  if (!['tempfail', 'accept'].includes(onError)) throw invalid("onError must be 'tempfail' or 'accept'")

  return {
    name: 'virus-scan',
    async data(msg, next) {
      const spooled = await spoolMessage(msg)
      let verdict: VirusVerdict
      try {
        verdict = await scanWithin(scanner, msg, spooled, timeout)
        if (!isVerdict(verdict)) throw new Error(`the scanner answered ${JSON.stringify(verdict)}`)
      } catch (err) {
        const reason = `virus scanner failed: ${describeFailure(err)}`
        logger?.warn({ id: msg.id, stage: 'virus-scan', err: reason, onError }, 'virus scan failed')
        if (onError === 'tempfail') throw notScanned(reason, err)
        msg.state.virus = { status: 'unscanned' }
        return next()
      }
      msg.state.virus = verdict
      logger?.info({ id: msg.id, stage: 'virus-scan', size: spooled.size, ...verdict }, 'virus scan')
      if (verdict.status === 'clean') return next()
      if (verdict.status === 'too-large') {
        const reason = `too large for the virus scanner (${spooled.size} bytes)`
        if (onTooLarge === 'reject') throw new SmtpError(552, '5.3.4', 'Message too big to be checked', { reason })
        if (onTooLarge === 'tempfail') throw notScanned(reason)
        return next()
      }
      if (onInfected === 'quarantine') return quarantine(msg, options.quarantine!, 'virus-scan')
      throw new SmtpError(554, '5.7.1', 'Message content rejected', { reason: `infected: ${verdict.viruses.join(', ')}` })
    },
    async close() {
      await options.quarantine?.close?.()
    },
  }
}

function isVerdict(value: VirusVerdict | undefined): value is VirusVerdict {
  if (value?.status === 'infected') return Array.isArray(value.viruses)
  return value?.status === 'clean' || value?.status === 'too-large'
}

function invalid(message: string): RelayError {
  return new RelayError('ERR_RELAY_INVALID_OPTION', `virus-scan: ${message}`)
}
