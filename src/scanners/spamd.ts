/**
 * `spamd()`: a spam scanner that asks SpamAssassin's spamd over TCP, speaking the SPAMC/1.5
 * protocol as spamc does: one connection per message, a `REPORT` request with the message's
 * `Content-length`, the message streamed from the spool. The reply's `Spam: True ; 6.1 / 5.0`
 * line gives the score and threshold; the report's table gives each rule's score.
 */
import { RelayError } from '../core/errors.js'
import { exchange, send } from './socket.js'
import type { SpamScanner, SpamVerdict } from './types.js'

/**
 * Options of {@link spamd}.
 *
 * @category Scanners
 */
export interface SpamdOptions {
  /** spamd's address; an IP address keeps DNS out of the mail path. Default `'127.0.0.1'`. */
  host?: string
  /** Default 783. */
  port?: number
  /** User whose preferences spamd applies (spamc `-u`). Default: spamd's default user. */
  user?: string
}

/**
 * Creates a spamd scanner for {@link spamScan}.
 *
 * @example
 * ```ts
 * import { spamScan, spamd } from 'relaychain'
 *
 * const scan = spamScan({ scanner: spamd({ host: '127.0.0.1', port: 783 }), actions: { tag: 5, reject: 10 } })
 * ```
 *
 * @category Scanners
 */
export function spamd(options: SpamdOptions = {}): SpamScanner {
  const host = options.host ?? '127.0.0.1'
  const port = options.port ?? 783
  if (options.user !== undefined && !/^[^\s:]+$/.test(options.user)) {
    throw new RelayError('ERR_RELAY_INVALID_OPTION', `spamd: user ${JSON.stringify(options.user)} is not a valid name`)
  }
  return async function scanWithSpamd(input): Promise<SpamVerdict> {
    const head = `REPORT SPAMC/1.5\r\nContent-length: ${input.size}\r\n${options.user ? `User: ${options.user}\r\n` : ''}\r\n`
    const reply = await exchange({
      host,
      port,
      signal: input.signal,
      async write(socket) {
        await send(socket, head)
        const source = input.open()
        try {
          for await (const chunk of source) await send(socket, chunk as Buffer)
        } finally {
          source.destroy()
        }
        socket.end()
      },
    })
    return parseSpamdReply(reply.toString('utf8'))
  }
}

/** Parses a spamd reply to `REPORT`; throws on an error status or a reply without a `Spam:` line. */
export function parseSpamdReply(reply: string): SpamVerdict {
  const split = reply.indexOf('\r\n\r\n')
  const head = split < 0 ? reply : reply.slice(0, split)
  const body = split < 0 ? '' : reply.slice(split + 4)
  const status = /^SPAMD\/[\d.]+ (\d+) (.*)/.exec(head)
  if (!status) throw new Error(`spamd: unexpected reply ${JSON.stringify(head.slice(0, 80))}`)
  if (status[1] !== '0') throw new Error(`spamd: ${status[1]} ${status[2]!.trim()}`)
  const spam = /^Spam: *(True|False|Yes|No) *; *(-?[\d.]+) *\/ *(-?[\d.]+)/im.exec(head)
  if (!spam) throw new Error('spamd: reply has no Spam header')
  const isSpam = /^(true|yes)$/i.test(spam[1]!)
  return {
    score: Number(spam[2]),
    threshold: Number(spam[3]),
    action: isSpam ? 'tag' : 'accept',
    symbols: reportSymbols(body),
    scanner: 'spamd',
  }
}

/**
 * The rules of a SpamAssassin report, from its table:
 * ```text
 *  pts rule name              description
 * ---- ---------------------- ------------------
 * 1000 GTUBE                  BODY: Generic Test for Unsolicited Bulk Email
 * ```
 * Rows start with the score in the first columns; wrapped descriptions are indented far deeper.
 */
function reportSymbols(report: string): Record<string, number> {
  const symbols: Record<string, number> = {}
  const table = report.search(/^-{4} -+ -+/m)
  if (table < 0) return symbols
  for (const line of report.slice(table).split(/\r?\n/).slice(1)) {
    const row = /^ {0,4}(-?\d+(?:\.\d+)?) +([A-Za-z0-9_]+)(?: |$)/.exec(line)
    if (row) symbols[row[2]!] = Number(row[1])
  }
  return symbols
}
