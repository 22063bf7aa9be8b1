/**
 * Tracking tokens: what a tracked link or open pixel carries, so that the redirector can tell
 * which message, recipient and link a click belongs to, and where to send the client, without a
 * database look-up and without becoming an open redirect: the target URL is inside the signed
 * payload, so only a URL that this relay signed can come out of a valid token.
 *
 * Format, URL-safe throughout (`[A-Za-z0-9_.-]`): `t1.<key id>.<payload>.<mac>`, where payload is
 * base64url JSON `[messageId, recipient, link, url, expires]` (`null` for absent fields) and mac is
 * the base64url HMAC-SHA256 of everything before it, under the key named by the key id. Rotation:
 * several keys, listed newest first; the first signs, every listed key verifies, and a key taken
 * off the list stops verifying. Comparison is constant-time; any change to any character, the key
 * id and version included, makes a token invalid.
 *
 * The payload is signed, not encrypted: anyone holding the link can read it. Put an opaque
 * recipient id there instead of the address if that matters.
 */
import { createHmac, timingSafeEqual } from 'node:crypto'
import { RelayError } from '../../core/errors.js'

/**
 * A signing key.
 *
 * @category Reporting
 */
export interface TrackingKey {
  /** 1–32 characters of `[A-Za-z0-9_-]`; appears in every token it signs. */
  readonly id: string
  /** At least 32 bytes (a string counts its UTF-8 bytes). */
  readonly secret: string | Uint8Array
}

/**
 * What a token binds. `link` and `url` come together (a click) or not at all (an open).
 *
 * @category Reporting
 */
export interface TokenPayload {
  /** The message: the relay's queue id (`msg.id`) when `tracking()` signs it, and the events' `queueId`. */
  readonly messageId: string
  /** The recipient address, or an opaque recipient id (the payload is readable by anyone with the link). */
  readonly recipient: string
  /** The link's index in the message. */
  readonly link?: number
  /** The only place a redirector may send the client: an http(s) URL, without spaces or control characters. */
  readonly url?: string
  /** Expiry, in seconds since the epoch. */
  readonly expires?: number
}

const VERSION = 't1'
const KEY_ID = /^[A-Za-z0-9_-]{1,32}$/
const MAC_BYTES = 32
const prepared = new WeakMap<readonly TrackingKey[], { readonly snapshot: readonly TrackingKey[]; readonly ring: Map<string, Buffer> }>()

/**
 * Signs a payload with the first (newest) key.
 *
 * @example
 * ```ts
 * const keys = [{ id: '2027-01', secret: process.env.TRACKING_SECRET! }]
 * const token = signToken({ messageId: msg.id, recipient: 'r-1842', link: 3, url: 'https://shop.example/sale' }, keys)
 * const href = `https://t.example.com/c/${token}`
 * ```
 *
 * @category Reporting
 */
export function signToken(payload: TokenPayload, keys: readonly TrackingKey[]): string {
  const ring = keyRing(keys)
  const problem = payloadProblem(payload)
  if (problem) throw new RelayError('ERR_RELAY_INVALID_OPTION', `signToken: ${problem}`)
  const { id } = keys[0]!
  const body = `${VERSION}.${id}.${Buffer.from(JSON.stringify(toFields(payload))).toString('base64url')}`
  return `${body}.${mac(ring.get(id)!, body).toString('base64url')}`
}

/**
 * The payload of a valid token, or `null` if it was changed, signed by a key not (or no longer) in
 * `keys`, malformed, or expired (`now` in milliseconds, default the current time).
 *
 * @example
 * ```ts
 * const payload = verifyToken(request.params.token, keys)
 * if (!payload?.url) return reply.code(404).send()
 * return reply.redirect(payload.url, 302)
 * ```
 *
 * @category Reporting
 */
export function verifyToken(token: string, keys: readonly TrackingKey[], options: { readonly now?: number } = {}): TokenPayload | null {
  const ring = keyRing(keys)
  if (typeof token !== 'string' || token.length > 16_384) return null
  const parts = token.split('.')
  if (parts.length !== 4 || parts[0] !== VERSION) return null
  const [, id, encoded, signature] = parts as [string, string, string, string]
  const secret = ring.get(id)
  if (!secret) return null
  const given = Buffer.from(signature, 'base64url')
  // Only the canonical spelling counts: base64url that decodes the same but reads differently fails.
  if (given.length !== MAC_BYTES || given.toString('base64url') !== signature) return null
  if (!timingSafeEqual(given, mac(secret, `${VERSION}.${id}.${encoded}`))) return null
  let fields: unknown
  try {
    fields = JSON.parse(Buffer.from(encoded, 'base64url').toString('utf8'))
  } catch {
    return null
  }
  const payload = fromFields(fields)
  if (!payload || payloadProblem(payload)) return null
  if (payload.expires !== undefined && payload.expires * 1000 <= (options.now ?? Date.now())) return null
  return payload
}

function mac(secret: Buffer, data: string): Buffer {
  return createHmac('sha256', secret).update(data).digest()
}

type Fields = [string, string, number | null, string | null, number | null]

function toFields(p: TokenPayload): Fields {
  return [p.messageId, p.recipient, p.link ?? null, p.url ?? null, p.expires ?? null]
}

function fromFields(value: unknown): TokenPayload | undefined {
  if (!Array.isArray(value) || value.length !== 5) return undefined
  const [messageId, recipient, link, url, expires] = value as unknown[]
  if (typeof messageId !== 'string' || typeof recipient !== 'string') return undefined
  if ((link !== null && typeof link !== 'number') || (url !== null && typeof url !== 'string') || (expires !== null && typeof expires !== 'number'))
    return undefined
  return { messageId, recipient, ...(link !== null ? { link } : {}), ...(url !== null ? { url } : {}), ...(expires !== null ? { expires } : {}) }
}

/** What is wrong with a payload, if anything. */
function payloadProblem(p: TokenPayload): string | undefined {
  if (typeof p?.messageId !== 'string' || typeof p.recipient !== 'string') return 'messageId and recipient must be strings'
  if ((p.link === undefined) !== (p.url === undefined)) return 'link and url go together'
  if (p.link !== undefined && (!Number.isSafeInteger(p.link) || p.link < 0)) return 'link must be an index (an integer ≥ 0)'
  if (p.url !== undefined && !isWebUrl(p.url)) return 'url must be an http(s) URL without spaces or control characters'
  if (p.expires !== undefined && !Number.isSafeInteger(p.expires)) return 'expires must be whole seconds since the epoch'
  return undefined
}

/**
 * An http(s) URL as rewriting hands them out (a template's bare `http://` included), with no
 * space or control character that could end up splitting a `Location` header.
 */
function isWebUrl(url: string): boolean {
  return typeof url === 'string' && /^https?:/i.test(url) && !/[\x00-\x20\x7f]/.test(url)
}

/** The keys by id, checked once per array (again if the array was changed since). */
function keyRing(keys: readonly TrackingKey[]): Map<string, Buffer> {
  const cached = prepared.get(keys)
  if (cached && cached.snapshot.length === keys.length && cached.snapshot.every((key, i) => key === keys[i])) return cached.ring
  if (!Array.isArray(keys) || !keys.length) throw new RelayError('ERR_RELAY_INVALID_OPTION', 'tracking tokens need at least one key')
  const ring = new Map<string, Buffer>()
  for (const key of keys) {
    if (!KEY_ID.test(key?.id ?? '')) throw new RelayError('ERR_RELAY_INVALID_OPTION', 'a tracking key id is 1-32 characters of A-Z a-z 0-9 _ -')
    if (ring.has(key.id)) throw new RelayError('ERR_RELAY_INVALID_OPTION', `tracking key id ${key.id} is listed twice`)
    const secret = typeof key.secret === 'string' ? Buffer.from(key.secret, 'utf8') : Buffer.from(key.secret)
    if (secret.length < 32) throw new RelayError('ERR_RELAY_INVALID_OPTION', `tracking key ${key.id}: the secret needs at least 32 bytes`)
    ring.set(key.id, secret)
  }
  prepared.set(keys, { snapshot: [...keys], ring })
  return ring
}
