/**
 * Logging through an injectable, pino-compatible logger. relaychain logs structured objects
 * (`logger.info({ id, from, … }, 'message')`) and never passwords or message bodies; pass a pino
 * instance, or `consoleLogger()` for JSON lines on stderr. The default logs nothing.
 */

/**
 * Log levels relaychain uses, lowest first.
 *
 * @category Logging
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error'

/**
 * A pino-compatible logger: each method takes a fields object and a message.
 *
 * @category Logging
 */
export interface Logger {
  /** Detail for troubleshooting: per-command steps, the SMTP transcript of `smtpTransport({ transcript: true })`. */
  debug(fields: Record<string, unknown>, message: string): void
  /** What happened to each connection and message. */
  info(fields: Record<string, unknown>, message: string): void
  /** Something the operator should look at: a failing upstream, a scanner down, a refused reload. */
  warn(fields: Record<string, unknown>, message: string): void
  /** A failure on our side: a bug or a broken configuration. */
  error(fields: Record<string, unknown>, message: string): void
}

const LEVELS: Record<LogLevel, number> = { debug: 20, info: 30, warn: 40, error: 50 }

/**
 * A logger that drops everything; the default.
 *
 * @example
 * ```ts
 * createRelay({ stages, transport, logger: process.env.DEBUG ? consoleLogger({ level: 'debug' }) : noopLogger })
 * ```
 *
 * @category Logging
 */
export const noopLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
}

/**
 * Options of {@link consoleLogger}.
 *
 * @category Logging
 */
export interface ConsoleLoggerOptions {
  /** Lowest level written. Default `'info'`. */
  level?: LogLevel
  /** Where lines go. Default `process.stderr`. */
  stream?: {
    /** Writes one JSON line, newline included. */
    write(line: string): unknown
  }
}

/**
 * A minimal JSON-lines logger (pino's line format: `level`, `time`, `msg`, then the fields).
 *
 * @example
 * ```ts
 * const relay = createRelay({ stages, transport, logger: consoleLogger({ level: 'debug' }) })
 * ```
 *
 * @category Logging
 */
export function consoleLogger(options: ConsoleLoggerOptions = {}): Logger {
  const min = LEVELS[options.level ?? 'info']
  const stream = options.stream ?? process.stderr
  const write = (level: LogLevel) =>
    function log(fields: Record<string, unknown>, message: string): void {
      if (LEVELS[level] < min) return
      stream.write(`${JSON.stringify({ level: LEVELS[level], time: Date.now(), msg: message, ...serializable(fields) })}\n`)
    }
  return { debug: write('debug'), info: write('info'), warn: write('warn'), error: write('error') }
}

/** Errors do not survive JSON.stringify; keep their useful parts. */
function serializable(fields: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(fields)) {
    out[key] = value instanceof Error ? { type: value.name, message: value.message, code: (value as { code?: unknown }).code } : value
  }
  return out
}
