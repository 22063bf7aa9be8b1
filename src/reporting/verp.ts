/**
 * VERP-style return paths: `bounces+<queue id>.<mac>@<bounce domain>`, so that a bounce that
 * comes back days later names the message it is about. The mac is the first 16 hex digits of an
 * HMAC-SHA256 of the queue id under the tracking key (any listed key verifies, the first signs),
 * so nobody can forge a bounce for a message they did not receive.
 */
import { createHmac, timingSafeEqual } from 'node:crypto'
import type { TrackingKey } from './tracking/token.js'

const LOCAL = /^bounces\+([A-Za-z0-9_-]{1,64})\.([0-9a-f]{16})$/i

function mac(queueId: string, key: TrackingKey): string {
  return createHmac('sha256', key.secret).update(`verp\0${queueId}`).digest('hex').slice(0, 16)
}

/**
 * The return path for a message.
 *
 * @example
 * ```ts
 * verpAddress('8PQ2A7', 'bounces.example.com', keys) // 'bounces+8PQ2A7.3f9c0a1b2c3d4e5f@bounces.example.com'
 * ```
 *
 * @category Reporting
 */
export function verpAddress(queueId: string, domain: string, keys: readonly TrackingKey[]): string {
  return `bounces+${queueId}.${mac(queueId, keys[0]!)}@${domain}`
}

/**
 * The queue id a return path names, if its mac verifies under one of the keys.
 *
 * @example
 * ```ts
 * readVerp('bounces+8PQ2A7.3f9c0a1b2c3d4e5f@bounces.example.com', 'bounces.example.com', keys) // '8PQ2A7'
 * ```
 *
 * @category Reporting
 */
export function readVerp(address: string, domain: string, keys: readonly TrackingKey[]): string | undefined {
  const at = address.lastIndexOf('@')
  if (at < 0 || address.slice(at + 1).toLowerCase() !== domain.toLowerCase()) return undefined
  const m = LOCAL.exec(address.slice(0, at))
  if (!m) return undefined
  const given = Buffer.from(m[2]!.toLowerCase())
  for (const key of keys) if (timingSafeEqual(Buffer.from(mac(m[1]!, key)), given)) return m[1]
  return undefined
}
