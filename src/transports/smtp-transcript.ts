/**
 * The SMTP dialogue of `smtpTransport` with its upstream, for debugging a next hop: each command
 * and reply as a debug line (`{ upstream, connection, direction: 'C' | 'S', line }`, message
 * `'smtp transcript'`). Never a password or a message: nodemailer logs commands and replies
 * only with `transactionLog` (message content only with `debug`, which is not used), and on top
 * of nodemailer's own masking every AUTH argument and every line sent in answer to a 334
 * challenge is replaced by `***`, so a username or password cannot appear whatever the mechanism.
 */
import type { Logger } from '../shared/logger.js'

/** The bunyan-style logger nodemailer takes. */
export interface NodemailerLogger {
  trace(entry: object, message?: string): void
  debug(entry: object, message?: string): void
  info(entry: object, message?: string): void
  warn(entry: object, message?: string): void
  error(entry: object, message?: string): void
  fatal(entry: object, message?: string): void
}

const ignore = () => {}

/** A nodemailer logger that writes the transcript to `logger` at debug level. */
export function transcriptLogger(logger: Logger, upstream: string): NodemailerLogger {
  // Per upstream connection: whether the server's last reply was a 334 challenge.
  const challenged = new Map<unknown, boolean>()
  const debug = (entry: { tnx?: string; sid?: unknown; cid?: unknown }, message?: string) => {
    if ((entry.tnx !== 'client' && entry.tnx !== 'server') || typeof message !== 'string') return
    const connection = entry.sid ?? entry.cid
    let line = message
    if (entry.tnx === 'server') {
      if (/^334[ -]/.test(line)) challenged.set(connection, true)
      else challenged.delete(connection)
      if (/^221[ -]/.test(line)) challenged.delete(connection)
    } else if (challenged.get(connection)) {
      line = '***'
      challenged.delete(connection)
    } else if (/^AUTH\s/i.test(line)) {
      line = line.replace(/^(AUTH\s+\S+)(\s.*)?$/i, (_m, command: string, rest?: string) => (rest ? `${command} ***` : command))
    }
    logger.debug({ upstream, connection, direction: entry.tnx === 'client' ? 'C' : 'S', line }, 'smtp transcript')
  }
  return { trace: ignore, debug, info: ignore, warn: ignore, error: ignore, fatal: ignore }
}
