/**
 * The fingerprint of a function's source, for the guarded patches of dependencies' internals
 * (smtp-server's, see `ingress/smtp-server/guard.ts`; nodemailer's data phase, see
 * `transports/dot-stuffing.ts`): a patch is applied only to the exact code it was written against.
 */
import { createHash } from 'node:crypto'

/** SHA-256 (hex, first 16 characters) of a function's source with all white space removed. */
export function sourceHash(fn: unknown): string {
  const source = typeof fn === 'function' ? Function.prototype.toString.call(fn) : ''
  return createHash('sha256').update(source.replace(/\s+/g, '')).digest('hex').slice(0, 16)
}
