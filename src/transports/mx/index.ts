/**
 * The foundations of direct MX delivery: a DNS client that reports DNSSEC validation (for DANE),
 * its resolver interface and errors, and the DANE certificate check (RFC 7672). The MX transport
 * builds on these; nothing here is exported from the package root yet.
 */

export type { DaneOptions, DaneResult, DaneVerdict } from './dane.js'
export { isUsableTlsaRecord, verifyDane } from './dane.js'
export type { CertificateChain } from './dane-chain.js'
export type { DnsClient, DnsClientOptions } from './dns.js'
export { createDnsClient } from './dns.js'
export type { CachedResult, DnsCacheOptions } from './dns-cache.js'
export { DnsCache } from './dns-cache.js'
export type { DnsErrorOptions } from './dns-errors.js'
export { DnsError, DnsErrorCode } from './dns-errors.js'
export type { DnsAnswer, DnsQueryOptions, DnsRecordMap, DnsRecordType, DnsResolver, MxRecord, TlsaRecord, TxtRecord } from './dns-types.js'
export type { ResolverAddress, ResolverAddressInput } from './resolver-address.js'
export { isLoopbackAddress, parseResolverAddress, trustsAuthenticatedData } from './resolver-address.js'
