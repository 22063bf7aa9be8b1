/**
 * `clamd()`: a virus scanner that asks ClamAV's clamd over TCP with its INSTREAM command: the
 * message streams from the spool in length-prefixed chunks, ended by a zero-length chunk, and
 * clamd answers `stream: OK`, `stream: <name> FOUND`, or `INSTREAM size limit exceeded` when the
 * message is larger than its `StreamMaxLength`. clamd unpacks MIME itself (`ScanMail yes`), so
 * a virus inside a base64 attachment is found too.
 */
import { RelayError } from '../core/errors.js'
import { exchange, send } from './socket.js'
import type { VirusScanner, VirusVerdict } from './types.js'

/**
 * Options of {@link clamd}.
 *
 * @category Scanners
 */
export interface ClamdOptions {
  /** clamd's address (its `TCPAddr`); an IP address keeps DNS out of the mail path. Default `'127.0.0.1'`. */
  host?: string
  /** Its `TCPSocket`. Default 3310. */
  port?: number
  /** Largest INSTREAM chunk in bytes. Default 64 KiB. */
  chunkSize?: number
  /**
   * clamd's `StreamMaxLength` in bytes; default 25 MiB, clamd's default. A larger message is
   * `'too-large'` without being sent. Keep the two equal: past its limit clamd answers and closes
   * while the message is still being written, and a write that races the close loses the answer,
   * so the scan fails (and the stage's `onError` applies) instead of reporting `'too-large'`.
   */
  maxSize?: number
}

/**
 * Creates a clamd scanner for {@link virusScan}.
 *
 * @example
 * ```ts
 * import { virusScan, clamd } from 'relaychain'
 *
 * const scan = virusScan({ scanner: clamd({ host: '127.0.0.1', port: 3310 }) })
 * ```
 *
 * @category Scanners
 */
export function clamd(options: ClamdOptions = {}): VirusScanner {
  const host = options.host ?? '127.0.0.1'
  const port = options.port ?? 3310
  const chunkSize = options.chunkSize ?? 64 * 1024
  const maxSize = options.maxSize ?? 25 * 1024 * 1024
  for (const [name, value] of Object.entries({ chunkSize, maxSize })) {
    if (!Number.isInteger(value) || value < 1) throw new RelayError('ERR_RELAY_INVALID_OPTION', `clamd: ${name} must be a positive integer`)
  }
  return async function scanWithClamd(input): Promise<VirusVerdict> {
    if (input.size > maxSize) return { status: 'too-large' }
    const reply = await exchange({
      host,
      port,
      signal: input.signal,
      // The z-prefixed command form makes clamd end its reply with a NUL byte.
      complete: (data) => data.includes(0),
      async write(socket) {
        // Past its limit clamd answers and closes; a write after the close fails and destroys the
        // socket with the answer unread. So every write first lets pending reads in (setImmediate
        // runs after the poll phase), and stops once the answer has closed the socket.
        const put = async (...data: Array<Buffer | string>) => {
          await new Promise(setImmediate)
          for (const piece of data) await send(socket, piece)
        }
        await put('zINSTREAM\0')
        const source = input.open()
        try {
          for await (const data of source) {
            for (let at = 0; at < (data as Buffer).length; at += chunkSize) {
              const chunk = (data as Buffer).subarray(at, at + chunkSize)
              const length = Buffer.alloc(4)
              length.writeUInt32BE(chunk.length)
              await put(length, chunk)
            }
          }
        } finally {
          source.destroy()
        }
        await put(Buffer.alloc(4))
      },
    })
    return parseClamdReply(reply.toString('utf8'))
  }
}

/** Parses clamd's answer to INSTREAM; throws on an error reply. */
export function parseClamdReply(reply: string): VirusVerdict {
  const text = reply.replace(/\0[\s\S]*$/, '').trim()
  if (/size limit exceeded/i.test(text)) return { status: 'too-large' }
  const found = /^stream: (.+) FOUND$/.exec(text)
  if (found) {
    // With AlertExceedsMax, clamd reports its own limits as a detection.
    if (found[1]!.startsWith('Heuristics.Limits.Exceeded')) return { status: 'too-large' }
    return { status: 'infected', viruses: [found[1]!] }
  }
  if (text === 'stream: OK') return { status: 'clean' }
  throw new Error(`clamd: ${text.slice(0, 200) || 'empty reply'}`)
}
