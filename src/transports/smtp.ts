/**
 * `smtpTransport()`: forwards to an upstream SMTP server (a smarthost, or the next relay) over a
 * pool of nodemailer connections, streaming the message with the current envelope.
 *
 * Replies map back per recipient: an upstream RCPT refusal rejects that recipient, a refusal of
 * MAIL or DATA rejects them all with the upstream's code and enhanced code (421 becomes 451, so
 * our client's connection is not closed for the upstream's sake). No reply at all (connection
 * refused, timeout, TLS failure) is `451 4.4.1`. If the message stream fails (size limit, bare
 * line ending, client gone, the transaction aborted), nodemailer closes the upstream connection
 * without the final dot, so the upstream discards the partial message.
 *
 * DSN parameters travel per message in nodemailer, so recipients with different NOTIFY/ORCPT
 * are sent as separate upstream transactions (the body is spooled once and read for each).
 */
import { isIP } from 'node:net'
import { hostname as osHostname } from 'node:os'
import type { Readable } from 'node:stream'
import type { ConnectionOptions } from 'node:tls'
import { createTransport } from 'nodemailer'
import { type EnhancedCode, RelayError, SmtpError } from '../core/errors.js'
import type { Address, DeliveryReport, Message, RejectedRecipient, Transport } from '../core/types.js'
import type { Logger } from '../shared/logger.js'
import { installFastDotStuffing } from './dot-stuffing.js'
import { transcriptLogger } from './smtp-transcript.js'

/**
 * Options of {@link smtpTransport}.
 *
 * @category Transports
 */
export interface SmtpTransportOptions {
  /** The upstream's host name or IP address. */
  host: string
  /** Default 25. */
  port?: number
  /** Implicit TLS (port 465 style). Default false: STARTTLS when the upstream offers it. */
  secure?: boolean
  /** Refuse to send unless STARTTLS succeeds. Default false. */
  requireTls?: boolean
  /** TLS settings (servername, ca, rejectUnauthorized …). */
  tls?: ConnectionOptions
  /** SMTP AUTH towards the upstream. */
  auth?: {
    /** The login name. */
    user: string
    /** The password; never logged (`***` in the transcript). */
    pass: string
  }
  /** Name sent with EHLO. Default `os.hostname()`. */
  name?: string
  /** Connection pool; `false` opens one connection per message. Default 5 connections, 100 messages each. */
  pool?:
    | {
        /** Connections open at once. Default 5. */
        maxConnections?: number
        /** Messages per connection before it is replaced. Default 100. */
        maxMessages?: number
      }
    | false
  /** Milliseconds. Defaults: connect 30 000, greeting 30 000, idle socket 300 000. */
  timeouts?: {
    /** To establish the TCP connection. Default 30 000. */
    connection?: number
    /** From connecting to the greeting. Default 30 000. */
    greeting?: number
    /** Of inactivity on the socket. Default 300 000. */
    socket?: number
  }
  /** Local IP address to connect from (source address binding, e.g. the address the upstream allowlists). Default: the system's choice. */
  localAddress?: string
  /**
   * Log the SMTP dialogue with the upstream (commands and replies) to `logger` at debug level,
   * one `'smtp transcript'` line each. Never message content; AUTH arguments and answers to AUTH
   * challenges are written as `***`. Default false.
   */
  transcript?: boolean
  /** Where the transcript goes; required with `transcript`. */
  logger?: Logger
}

interface UpstreamError extends Error {
  code?: string
  responseCode?: number
  response?: string
  command?: string
  rejected?: string[]
  rejectedErrors?: UpstreamError[]
  recipient?: string
}

/**
 * Creates an SMTP transport.
 *
 * @example
 * ```ts
 * const upstream = smtpTransport({
 *   host: 'smtp.provider.example', port: 587, requireTls: true,
 *   auth: { user: 'relay@example.com', pass: process.env.SMTP_PASSWORD! },
 * })
 * const relay = createRelay({ stages, transport: upstream })
 * ```
 *
 * @category Transports
 */
export function smtpTransport(options: SmtpTransportOptions): Transport {
  installFastDotStuffing()
  const port = options.port ?? 25
  const pool = options.pool === false ? undefined : { maxConnections: 5, maxMessages: 100, ...options.pool }
  if (options.localAddress !== undefined && isIP(options.localAddress) === 0)
    throw new RelayError('ERR_RELAY_INVALID_OPTION', `smtpTransport: localAddress must be an IP address, got ${JSON.stringify(options.localAddress)}`)
  if (options.transcript && !options.logger) throw new RelayError('ERR_RELAY_INVALID_OPTION', 'smtpTransport: transcript needs a logger')
  const where = `${options.host}:${port}`
  const transporter = createTransport({
    ...(pool ? { pool: true as const, ...pool } : {}),
    host: options.host,
    port,
    secure: options.secure ?? false,
    requireTLS: options.requireTls ?? false,
    name: options.name ?? osHostname(),
    ...(options.tls ? { tls: options.tls } : {}),
    ...(options.auth ? { auth: options.auth } : {}),
    connectionTimeout: options.timeouts?.connection ?? 30_000,
    greetingTimeout: options.timeouts?.greeting ?? 30_000,
    socketTimeout: options.timeouts?.socket ?? 300_000,
    ...(options.localAddress ? { localAddress: options.localAddress } : {}),
    // Commands and replies only (transactionLog); `debug` would log the message itself.
    ...(options.transcript && options.logger ? { logger: transcriptLogger(options.logger, where), transactionLog: true } : { logger: false }),
  } as Parameters<typeof createTransport>[0])

  async function sendGroup(msg: Message, rcpts: readonly Address[]): Promise<DeliveryReport> {
    // A transaction aborted mid-transfer (the client left) destroys this stream: nodemailer then
    // ends the upstream connection without the final dot, so nothing half-sent is delivered.
    const { stream, failure } = watch(msg.stream())
    const from = msg.envelope.mailFrom
    const dsn = dsnOf(from, rcpts[0]!)
    try {
      const info = await transporter.sendMail({
        envelope: {
          from: from?.address ?? '',
          to: rcpts.map((r) => r.address),
          ...(from?.args?.BODY === '8BITMIME' ? { use8BitMime: true } : {}),
        } as { from: string; to: string[] },
        raw: stream,
        ...dsn,
      })
      const rejected = (info.rejectedErrors ?? []) as UpstreamError[]
      return {
        accepted: rcpts.filter((r) => !rejected.some((e) => e.recipient === r.address)),
        rejected: rcpts.flatMap((rcpt) => {
          const err = rejected.find((e) => e.recipient === rcpt.address)
          return err ? [{ rcpt, error: upstreamError(err, where) }] : []
        }),
        response: String(info.response ?? ''),
        // DSN duty passes on only to a next hop that announced DSN and got our parameters.
        ...(dsn.dsn && (info.ehlo as string[] | undefined)?.some((line) => /^DSN\b/i.test(line)) ? { dsn: true } : {}),
      }
    } catch (raw) {
      if (failure()) throw failure()
      const err = raw as UpstreamError
      if (err.rejectedErrors?.length && err.command !== 'MAIL FROM') {
        return { accepted: [], rejected: rcpts.map((rcpt) => ({ rcpt, error: upstreamError(errorFor(err, rcpt), where) })) }
      }
      // A reply that came while the message was still being sent answers no message: the transfer
      // broke, so it is a temporary failure whatever its code (the upstream never saw the final dot).
      if (stream.readableDidRead && !stream.readableEnded)
        throw upstreamError({ ...err, message: `${err.message} (reply before the end of the message)`, responseCode: undefined }, where)
      throw upstreamError(err, where)
    }
  }

  return {
    name: 'smtp',
    // One smarthost: every recipient goes to the same next hop.
    destinationOf: () => `smtp:${where}`,
    describe: () => `smtp ${where}${pool ? ` (pool of ${pool.maxConnections})` : ''}`,
    async send(msg) {
      const groups = groupByDsn(msg.envelope.rcptTo)
      if (groups.length === 1) return sendGroup(msg, groups[0]!)
      await msg.body.spool()
      const reports = await Promise.all(
        groups.map((g) => sendGroup(msg, g).catch((err: SmtpError) => ({ accepted: [], rejected: g.map((rcpt) => ({ rcpt, error: err })) }))),
      )
      return {
        accepted: reports.flatMap((r) => r.accepted),
        rejected: reports.flatMap((r): readonly RejectedRecipient[] => r.rejected),
        response: reports.map((r) => ('response' in r ? r.response : '')).find(Boolean) ?? '',
        ...(reports.every((r) => 'dsn' in r && r.dsn) ? { dsn: true } : {}),
      }
    },
    async close() {
      transporter.close()
    },
  }
}

/** The upstream error for one recipient of an all-rejected envelope. */
function errorFor(err: UpstreamError, rcpt: Address): UpstreamError {
  return err.rejectedErrors?.find((e) => e.recipient === rcpt.address) ?? err
}

/** Remembers the error of the message stream, if it fails, to report it instead of nodemailer's. */
function watch(source: Readable): { stream: Readable; failure: () => unknown } {
  let failure: unknown
  source.once('error', (err) => (failure = err))
  return { stream: source, failure: () => failure }
}

/** Turns an upstream reply (or its absence) into the `SmtpError` our client sees. */
export function upstreamError(err: UpstreamError, where: string): SmtpError {
  const code = err.responseCode
  if (typeof code !== 'number' || code < 400 || code > 599) {
    return new SmtpError(451, '4.4.1', 'Upstream server unavailable, try again later', {
      reason: `${where}: ${err.code ?? 'error'} ${err.message}`,
      cause: err,
    })
  }
  const line = (err.response ?? '').split(/\r?\n/).filter(Boolean).pop() ?? ''
  const match = /^\d{3}[ -]?(?:([245]\.\d{1,3}\.\d{1,3})\s+)?(.*)$/.exec(line)
  const text = match?.[2]?.trim() || 'Upstream refused the message'
  const stated = match?.[1]
  const enhanced = (stated && stated[0] === String(code)[0] ? stated : `${String(code)[0]}.0.0`) as EnhancedCode
  return new SmtpError(code === 421 ? 451 : code, enhanced, text, { reason: `${where} ${err.command ?? ''}: ${line}`, cause: err })
}

/** @internal The DSN options of nodemailer for a sender and a recipient (shared with mxTransport). */
export function dsnOf(from: Address | null, rcpt: Address) {
  const ret = from?.args?.RET
  const envid = from?.args?.ENVID
  const notify = rcpt.args?.NOTIFY
  const orcpt = rcpt.args?.ORCPT
  const dsn = {
    ...(typeof ret === 'string' ? { ret } : {}),
    ...(typeof envid === 'string' ? { envid } : {}),
    ...(typeof notify === 'string' ? { notify: notify.split(',') } : {}),
    ...(typeof orcpt === 'string' ? { orcpt } : {}),
  }
  return Object.keys(dsn).length ? { dsn: dsn as { ret?: string; envid?: string; notify?: string[]; orcpt?: string } } : {}
}

/** @internal Recipients that share NOTIFY and ORCPT can share one upstream transaction (shared with mxTransport). */
export function groupByDsn(rcpts: readonly Address[]): Address[][] {
  const groups = new Map<string, Address[]>()
  for (const rcpt of rcpts) {
    const key = `${String(rcpt.args?.NOTIFY ?? '')}\0${String(rcpt.args?.ORCPT ?? '')}`
    const group = groups.get(key)
    if (group) group.push(rcpt)
    else groups.set(key, [rcpt])
  }
  return [...groups.values()]
}
