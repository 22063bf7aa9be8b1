/**
 * The DNS cache on its own, with a clock moved by hand: expiry at the TTL, the TTL that remains,
 * least-recently-used eviction at the size bound, TTL caps, and copies that callers cannot
 * change the cache through.
 */
import { describe, expect, it } from 'vitest'
import { type DnsAnswer, DnsCache } from '../../../src/transports/mx/index.js'

const answer = (answers: string[], ttl: number): DnsAnswer<string> => ({
  rcode: 'NOERROR',
  canonicalName: 'x.test',
  answers,
  authenticated: false,
  ttl,
})

function setup(options: { maxEntries?: number; maxTtl?: number } = {}) {
  let now = 0
  const cache = new DnsCache({ ...options, clock: () => now })
  return { cache, advance: (ms: number) => void (now += ms) }
}

describe('DnsCache', () => {
  it('returns an entry with the TTL that remains, and nothing once it has run out', () => {
    const { cache, advance } = setup()
    cache.set('A x.test', { answer: answer(['127.0.0.1'], 60) }, 60)
    advance(59_000)
    expect(cache.get('A x.test')).toEqual({ answer: answer(['127.0.0.1'], 1) })
    advance(1000)
    expect(cache.get('A x.test')).toBeUndefined()
    expect(cache.size).toBe(0)
  })

  it('keeps nothing for a TTL of 0', () => {
    const { cache } = setup()
    cache.set('A x.test', { answer: answer([], 0) }, 0)
    expect(cache.size).toBe(0)
  })

  it('caps TTLs at maxTtl', () => {
    const { cache, advance } = setup({ maxTtl: 5 })
    cache.set('A x.test', { answer: answer([], 3600) }, 3600)
    advance(5000)
    expect(cache.get('A x.test')).toBeUndefined()
  })

  it('evicts the least recently used entry beyond maxEntries', () => {
    const { cache } = setup({ maxEntries: 2 })
    cache.set('a', { answer: answer(['1'], 60) }, 60)
    cache.set('b', { answer: answer(['2'], 60) }, 60)
    cache.get('a') // a is now the most recently used
    cache.set('c', { answer: answer(['3'], 60) }, 60)
    expect(cache.size).toBe(2)
    expect(cache.get('b')).toBeUndefined()
    expect(cache.get('a')).toBeDefined()
    expect(cache.get('c')).toBeDefined()
  })

  it('keeps NXDOMAIN with its authentication and remaining TTL', () => {
    const { cache, advance } = setup()
    cache.set('MX gone.test', { nxdomain: true, authenticated: true, ttl: 300 }, 300)
    advance(100_000)
    expect(cache.get('MX gone.test')).toEqual({ nxdomain: true, authenticated: true, ttl: 200 })
  })

  it('hands out copies: changing an answer does not change the cache', () => {
    const { cache } = setup()
    cache.set('A x.test', { answer: answer(['127.0.0.1'], 60) }, 60)
    const hit = cache.get('A x.test') as { answer: DnsAnswer<string> }
    hit.answer.answers.push('192.0.2.66')
    expect((cache.get('A x.test') as { answer: DnsAnswer<string> }).answer.answers).toEqual(['127.0.0.1'])
  })
})
