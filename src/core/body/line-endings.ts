/**
 * Line-ending policy for message bytes.
 *
 * SMTP ends lines with CRLF only (RFC 5321 §2.3.8). smtp-server ends DATA only at CRLF.CRLF but
 * passes bare-LF and bare-CR dot lines (`\n.\n`, `\r.\r` …) into the message, which is how SMTP
 * smuggling (CVE-2023-51764/5/6) gets a second message past a relay to a server that reads them
 * differently. The SMTP ingress (`ingress/smtp-server/ingress-stream.ts`) therefore refuses (or strictly normalises) any
 * bare CR or LF, and every writer of ours passes its output through `toCrlf()` so nothing we emit
 * has one either.
 */
import { Transform, type TransformCallback } from 'node:stream'

/**
 * What the relay does with a bare CR or LF. `'reject'`: a message with one is refused
 * (`550 5.5.2`); command lines ending in a bare LF are accepted, as most MTAs do. `'strict'`: as
 * `'reject'`, and a command line ending in a bare LF ends the session (`521 5.5.2`, as Postfix's
 * `smtpd_forbid_bare_newline`). `'normalize'`: bare CR and LF in messages become CRLF.
 *
 * @category Core
 */
export type BareLineEndingPolicy = 'reject' | 'strict' | 'normalize'

const CR = 0x0d
const LF = 0x0a

/** True if the chunk has a bare LF, or a CR not followed by LF (`prevCR`: the previous chunk ended in CR). */
export function hasBareLineEnding(chunk: Buffer, prevCR: boolean): boolean {
  if (prevCR && chunk.length && chunk[0] !== LF) return true
  for (let i = chunk.indexOf(LF); i >= 0; i = chunk.indexOf(LF, i + 1)) {
    if (i === 0 ? !prevCR : chunk[i - 1] !== CR) return true
  }
  for (let i = chunk.indexOf(CR); i >= 0 && i < chunk.length - 1; i = chunk.indexOf(CR, i + 1)) {
    if (chunk[i + 1] !== LF) return true
  }
  return false
}

const CRLF_BYTES = Buffer.from('\r\n')
/** A lone LF, to complete a trailing CR at the end of a stream. */
export const LF_BYTE = Buffer.from('\n')

/** Rewrites bare CR and bare LF to CRLF. A trailing CR is left for the next chunk to decide. */
export function normalizeChunk(chunk: Buffer, prevCR: boolean): Buffer {
  // The previous chunk's trailing CR was passed on as is; complete it if no LF follows.
  const parts: Buffer[] = prevCR && chunk[0] !== LF ? [LF_BYTE] : []
  let from = 0
  for (let i = 0; i < chunk.length; i++) {
    const byte = chunk[i]
    const bareLF = byte === LF && (i === 0 ? !prevCR : chunk[i - 1] !== CR)
    const bareCR = byte === CR && i < chunk.length - 1 && chunk[i + 1] !== LF
    if (bareLF || bareCR) {
      parts.push(chunk.subarray(from, i), CRLF_BYTES)
      from = i + 1
    }
  }
  parts.push(chunk.subarray(from))
  return Buffer.concat(parts)
}

/**
 * Normalises one stream's line endings to CRLF, chunk by chunk: call it with each chunk in
 * order, then with `null` at the end. Returns the bytes to pass on (possibly none).
 */
export function crlfNormalizer(): (chunk: Buffer | null) => Buffer | undefined {
  let prevCR = false
  return (chunk) => {
    if (chunk === null) return prevCR ? LF_BYTE : undefined
    if (!chunk.length) return undefined
    const out = hasBareLineEnding(chunk, prevCR) ? normalizeChunk(chunk, prevCR) : chunk
    prevCR = chunk[chunk.length - 1] === CR
    return out
  }
}

/**
 * A transform that makes every line ending CRLF: the last step of every writer of ours
 * (file, Maildir, archive), so that no stage can make the relay emit a bare CR or LF.
 *
 * @example
 * ```ts
 * for await (const chunk of msg.stream().pipe(toCrlf())) await file.write(chunk)
 * ```
 *
 * @category Core
 */
export function toCrlf(): Transform {
  const normalize = crlfNormalizer()
  return new Transform({
    transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback) {
      callback(null, normalize(chunk))
    },
    flush(callback: TransformCallback) {
      callback(null, normalize(null))
    },
  })
}
