/**
 * Standard Webhooks signatures (standardwebhooks.com): `webhook-id`, `webhook-timestamp` (Unix
 * seconds) and `webhook-signature: v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>`,
 * where the key is the base64 after the `whsec_` prefix of the secret. Several space-separated
 * signatures may be sent while a secret is rotated.
 */
import { createHmac, randomBytes } from 'node:crypto'
import { RelayError } from '../../core/errors.js'

/** The bytes of a `whsec_…` secret. */
export function webhookKey(secret: string): Buffer {
  const body = secret.startsWith('whsec_') ? secret.slice(6) : secret
  const key = Buffer.from(body, 'base64')
  if (key.length < 24 || key.toString('base64').replace(/=+$/, '') !== body.replace(/=+$/, ''))
    throw new RelayError('ERR_RELAY_INVALID_OPTION', 'webhooks: the secret must be whsec_ followed by at least 24 bytes in base64')
  return key
}

/**
 * A new random secret, `whsec_` and 32 bytes in base64.
 *
 * @category Reporting
 */
export function newWebhookSecret(): string {
  return `whsec_${randomBytes(32).toString('base64')}`
}

/**
 * The three headers of a signed webhook request.
 *
 * @example
 * ```ts
 * const headers = signWebhook(['whsec_…'], 'msg_2b7c', Math.floor(Date.now() / 1000), body)
 * await fetch(url, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body })
 * ```
 *
 * @category Reporting
 */
export function signWebhook(
  secrets: readonly string[],
  id: string,
  timestamp: number,
  body: string,
): Record<'webhook-id' | 'webhook-timestamp' | 'webhook-signature', string> {
  const signatures = secrets.map((secret) => `v1,${createHmac('sha256', webhookKey(secret)).update(`${id}.${timestamp}.${body}`).digest('base64')}`)
  return { 'webhook-id': id, 'webhook-timestamp': String(timestamp), 'webhook-signature': signatures.join(' ') }
}
