/**
 * Tracking tokens: they round-trip, rotate (newest signs, all verify, a removed key stops
 * verifying), expire, refuse to bind anything but an http(s) target, and fail on any change:
 * every single-character substitution at every position of a token is rejected.
 */
import { describe, expect, it } from 'vitest'
import { RelayError } from '../../../src/core/errors.js'
import { signToken, type TokenPayload, type TrackingKey, verifyToken } from '../../../src/reporting/tracking/index.js'

const OLD: TrackingKey = { id: '2026-07', secret: 'an-old-secret-of-at-least-32-bytes!!' }
const NEW: TrackingKey = { id: '2027-01', secret: Buffer.alloc(32, 7) }
const CLICK: TokenPayload = {
  messageId: '<a1b2@relay.example>',
  recipient: 'jane@example.org',
  link: 3,
  url: 'https://shop.example/sale?a=1&b=ü#top',
}
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.'

describe('tracking tokens', () => {
  it('round-trips a click and an open payload, and are URL-safe', () => {
    const keys = [NEW]
    const click = signToken(CLICK, keys)
    expect(click).toMatch(/^t1\.2027-01\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$/)
    expect(encodeURIComponent(click)).toBe(click)
    expect(verifyToken(click, keys)).toEqual(CLICK)
    const open = signToken({ messageId: 'm1', recipient: 'r-77' }, keys)
    expect(verifyToken(open, keys)).toEqual({ messageId: 'm1', recipient: 'r-77' })
  })

  it('signs with the newest (first) key, verifies with every listed key, and stops verifying a removed one', () => {
    const before = signToken(CLICK, [OLD])
    const after = signToken(CLICK, [NEW, OLD])
    expect(after.split('.')[1]).toBe('2027-01')
    expect(verifyToken(before, [NEW, OLD])).toEqual(CLICK)
    expect(verifyToken(after, [NEW, OLD])).toEqual(CLICK)
    expect(verifyToken(before, [NEW])).toBeNull()
  })

  it('rejects a token whose key id names a key with another secret', () => {
    const token = signToken(CLICK, [NEW])
    expect(verifyToken(token, [{ id: NEW.id, secret: Buffer.alloc(32, 8) }])).toBeNull()
  })

  it('rejects every single-character substitution, at every position', () => {
    const keys = [NEW, OLD]
    const token = signToken({ ...CLICK, expires: 4_102_444_800 }, keys)
    let tried = 0
    for (let i = 0; i < token.length; i++) {
      for (const c of ALPHABET) {
        if (c === token[i]) continue
        tried++
        const forged = token.slice(0, i) + c + token.slice(i + 1)
        if (verifyToken(forged, keys) !== null) throw new Error(`accepted with ${c} at ${i}: ${forged}`)
      }
    }
    expect(tried).toBe(token.length * (ALPHABET.length - 1))
  })

  it('rejects truncated, extended, re-encoded and malformed tokens', () => {
    const token = signToken(CLICK, [NEW])
    for (const bad of [
      token.slice(0, -1),
      `${token}A`,
      `${token}.x`,
      token.replace(/^t1/, 't2'),
      '',
      'x',
      '...',
      't1.2027-01..',
      token.toUpperCase(),
    ]) {
      expect(verifyToken(bad, [NEW])).toBeNull()
    }
    // Whatever a router hands over, a non-string is no token.
    expect(verifyToken(42 as unknown as string, [NEW])).toBeNull()
  })

  it('expires', () => {
    const token = signToken({ ...CLICK, expires: 2_000_000_000 }, [NEW])
    expect(verifyToken(token, [NEW], { now: 1_999_999_999_000 })).toMatchObject({ url: CLICK.url })
    expect(verifyToken(token, [NEW], { now: 2_000_000_000_000 })).toBeNull()
  })

  it('binds only http(s) targets (no open redirect to another scheme), and link and url together', () => {
    for (const url of ['javascript:alert(1)', 'data:text/html,x', '//evil.example/', 'https://a.example/\r\nSet-Cookie: x', 'mailto:a@example.com']) {
      expect(() => signToken({ ...CLICK, url }, [NEW])).toThrow(RelayError)
    }
    expect(() => signToken({ messageId: 'm', recipient: 'r', link: 1 }, [NEW])).toThrow(/link and url go together/)
    expect(() => signToken({ ...CLICK, link: -1 }, [NEW])).toThrow(RelayError)
  })

  it('refuses bad key rings with ERR_RELAY_INVALID_OPTION', () => {
    const bad: TrackingKey[][] = [[], [{ id: 'a.b', secret: NEW.secret }], [{ id: 'k', secret: 'short' }], [NEW, { ...NEW }]]
    for (const keys of bad) {
      expect(() => signToken(CLICK, keys)).toThrow(expect.objectContaining({ code: 'ERR_RELAY_INVALID_OPTION' }))
    }
  })

  it('sees a key added to the same array after first use', () => {
    const keys: TrackingKey[] = [OLD]
    const old = signToken(CLICK, keys)
    keys.unshift(NEW)
    expect(signToken(CLICK, keys).split('.')[1]).toBe(NEW.id)
    expect(verifyToken(old, keys)).toEqual(CLICK)
  })
})
