/**
 * Resolver addresses and the one rule DANE's safety rests on: the AD bit counts only from a
 * resolver on loopback.
 */
import { describe, expect, it } from 'vitest'
import { RelayError } from '../../../src/core/errors.js'
import { isLoopbackAddress, parseResolverAddress, trustsAuthenticatedData } from '../../../src/transports/mx/index.js'

describe('resolver address', () => {
  it('parses IPv4 and IPv6 literals with and without a port (53 by default)', () => {
    expect(parseResolverAddress('127.0.0.1')).toEqual({ host: '127.0.0.1', port: 53, family: 4 })
    expect(parseResolverAddress('127.0.0.53:5353')).toEqual({ host: '127.0.0.53', port: 5353, family: 4 })
    expect(parseResolverAddress('::1')).toEqual({ host: '::1', port: 53, family: 6 })
    expect(parseResolverAddress('[::1]:5353')).toEqual({ host: '::1', port: 5353, family: 6 })
    expect(parseResolverAddress({ host: '::1', port: 8053 })).toEqual({ host: '::1', port: 8053, family: 6 })
  })

  it('refuses names, bad ports and junk with ERR_RELAY_INVALID_OPTION', () => {
    for (const bad of ['localhost', 'resolver.example:53', '127.0.0.1:0', '127.0.0.1:65536', '[::1]:x', '', '1.2.3']) {
      expect(() => parseResolverAddress(bad), bad).toThrow(RelayError)
    }
    try {
      parseResolverAddress('localhost')
    } catch (err) {
      expect((err as RelayError).code).toBe('ERR_RELAY_INVALID_OPTION')
    }
  })
})

describe('AD bit trust', () => {
  it('trusts the AD bit from loopback addresses only', () => {
    for (const host of ['127.0.0.1', '127.0.0.53', '127.255.255.254', '::1', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1', '::ffff:7f00:35']) {
      expect(isLoopbackAddress(host), host).toBe(true)
      expect(trustsAuthenticatedData(host), host).toBe(true)
    }
  })

  it('ignores the AD bit from every other address, private networks and the unspecified address included', () => {
    for (const host of [
      '192.0.2.53',
      '10.0.0.53',
      '192.168.1.1',
      '8.8.8.8',
      '0.0.0.0',
      '::',
      '2001:db8::53',
      'fe80::1',
      '::ffff:192.0.2.1',
      '::127.0.0.1',
      'localhost',
      '128.0.0.1',
    ]) {
      expect(trustsAuthenticatedData(host), host).toBe(false)
    }
  })
})
