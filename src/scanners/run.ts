/**
 * What the scanning stages share: spooling the message once so a scanner can read it (memory up
 * to the relay's limit, then a temp file), calling the scanner with a deadline, and delivering
 * to a quarantine transport instead of the rest of the chain.
 */
import { Readable } from 'node:stream'
import { SmtpError } from '../core/errors.js'
import type { DeliveryReport, Message, SpooledBody, Transport } from '../core/types.js'
import type { ScanInput } from './types.js'

/** The whole message, spooled: its size and a way to read it again. */
export type SpooledMessage = Pick<ScanInput, 'size' | 'open'>

/** Spools the body (the header section is already in memory) and returns the whole message. */
export async function spoolMessage(msg: Message): Promise<SpooledMessage> {
  const spool = await msg.body.spool()
  const head = msg.headers.toBuffer()
  return {
    size: head.length + spool.size,
    // The spool is opened only once the stream is read, so a stream never read holds no file.
    open: () => Readable.from(whole(head, spool), { objectMode: false }),
  }
}

async function* whole(head: Buffer, spool: SpooledBody): AsyncGenerator<Buffer> {
  if (head.length) yield head
  yield* spool.open()
}

/**
 * Calls `scanner` and settles within `timeout` ms: at the deadline (or when the client goes away)
 * the signal the scanner got aborts and the call rejects, whether or not the scanner listens.
 */
export async function scanWithin<T>(
  scanner: (input: ScanInput) => T | Promise<T>,
  msg: Message,
  spooled: SpooledMessage,
  timeout: number,
): Promise<T> {
  const deadline = new AbortController()
  const timer = setTimeout(() => deadline.abort(new Error(`scanner did not answer within ${timeout} ms`)), timeout)
  const signal = AbortSignal.any([deadline.signal, msg.signal])
  let onAbort = () => {}
  try {
    return await new Promise<T>((resolve, reject) => {
      onAbort = () => reject(signal.reason)
      if (signal.aborted) return onAbort()
      signal.addEventListener('abort', onAbort, { once: true })
      Promise.resolve()
        .then(() => scanner({ message: msg, size: spooled.size, open: spooled.open, signal }))
        .then(resolve, reject)
    })
  } finally {
    clearTimeout(timer)
    signal.removeEventListener('abort', onAbort)
  }
}

/** Delivers `msg` to `transport` instead of the rest of the chain; the report says so. */
export async function quarantine(msg: Message, transport: Transport, by: string): Promise<DeliveryReport> {
  const report = await transport.send(msg)
  return { ...report, response: `quarantined by ${by}${report.response ? `: ${report.response}` : ''}` }
}

/** `451 4.7.1`: the message could not be scanned (scanner down, slow, or unable); the client retries. */
export function notScanned(reason: string, cause?: unknown): SmtpError {
  return new SmtpError(451, '4.7.1', 'Message could not be checked, please try again later', { reason, cause })
}

/** Why a scan failed, in one line for the log. */
export function describeFailure(err: unknown): string {
  if (err instanceof Error) return `${(err as { code?: string }).code ? `${(err as { code?: string }).code} ` : ''}${err.message}`
  return String(err)
}
