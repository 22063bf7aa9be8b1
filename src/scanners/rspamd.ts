/**
 * `rspamd()`: a spam scanner that asks rspamd's normal worker over its HTTP API (`POST /checkv2`),
 * streaming the message from the spool with its `Content-Length`, and passing what rspamd cannot
 * see in the message itself as request headers: envelope sender and recipients, client address
 * and HELO, the authenticated user (rspamd then treats the mail as outgoing), the queue id.
 */
import { type IncomingMessage, request } from 'node:http'
import { buffer } from 'node:stream/consumers'
import { pipeline } from 'node:stream/promises'
import type { SpamAction, SpamScanner, SpamVerdict } from './types.js'

/**
 * Options of {@link rspamd}.
 *
 * @category Scanners
 */
export interface RspamdOptions {
  /** rspamd's address; an IP address keeps DNS out of the mail path. Default `'127.0.0.1'`. */
  host?: string
  /** The normal worker's port. Default 11333. */
  port?: number
  /** Extra request headers, e.g. `{ 'Settings-Id': 'outbound' }` or a `Password` for a controller. */
  headers?: Readonly<Record<string, string>>
}

/** rspamd's actions, and what spam-scan does for each when it is not given thresholds. */
const ACTIONS: Record<string, SpamAction> = {
  reject: 'reject',
  'rewrite subject': 'tag',
  'add header': 'tag',
  // Greylisting and soft rejects are for inbound mail; the relay does not retry on rspamd's behalf.
  greylist: 'accept',
  'soft reject': 'accept',
  'no action': 'accept',
}

interface CheckV2Reply {
  score?: unknown
  required_score?: unknown
  action?: unknown
  symbols?: Record<string, { score?: unknown }>
}

/**
 * Creates an rspamd scanner for {@link spamScan}. The verdict's `action` is rspamd's own, so by
 * default the stage does what rspamd's configured thresholds say.
 *
 * @example
 * ```ts
 * import { spamScan, rspamd } from 'relaychain'
 *
 * const scan = spamScan({ scanner: rspamd({ host: '127.0.0.1', port: 11333 }) })
 * ```
 *
 * @category Scanners
 */
export function rspamd(options: RspamdOptions = {}): SpamScanner {
  const host = options.host ?? '127.0.0.1'
  const port = options.port ?? 11333
  return async function scanWithRspamd(input): Promise<SpamVerdict> {
    const msg = input.message
    const headers: Record<string, string | string[]> = {
      'Content-Length': String(input.size),
      'Queue-Id': msg.id,
      IP: msg.session.remoteAddress,
      ...(msg.session.heloName ? { Helo: msg.session.heloName } : {}),
      ...(msg.session.user ? { User: msg.session.user } : {}),
      ...(msg.envelope.mailFrom ? { From: msg.envelope.mailFrom.address } : {}),
      ...(msg.envelope.rcptTo.length ? { Rcpt: msg.envelope.rcptTo.map((r) => r.address) } : {}),
      ...options.headers,
    }
    const req = request({ host, port, method: 'POST', path: '/checkv2', headers, agent: false, signal: input.signal })
    const replied = new Promise<IncomingMessage>((resolve, reject) => {
      req.once('response', resolve).once('error', reject)
    })
    // A write error after rspamd answered (it may stop reading early) does not matter; the answer does.
    const sent = pipeline(input.open(), req).catch(() => {})
    const res = await replied
    const body = await buffer(res)
    await sent
    if (res.statusCode !== 200) throw new Error(`rspamd: HTTP ${res.statusCode} ${body.toString('utf8').slice(0, 200)}`)
    return parseRspamdReply(JSON.parse(body.toString('utf8')) as CheckV2Reply)
  }
}

function parseRspamdReply(reply: CheckV2Reply): SpamVerdict {
  if (typeof reply.score !== 'number' || typeof reply.action !== 'string') throw new Error('rspamd: reply has no score or action')
  const symbols: Record<string, number> = {}
  for (const [name, symbol] of Object.entries(reply.symbols ?? {})) symbols[name] = typeof symbol.score === 'number' ? symbol.score : 0
  return {
    score: reply.score,
    ...(typeof reply.required_score === 'number' ? { threshold: reply.required_score } : {}),
    action: ACTIONS[reply.action] ?? 'accept',
    symbols,
    scanner: 'rspamd',
  }
}
