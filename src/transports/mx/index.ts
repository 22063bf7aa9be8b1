/**
 * Direct MX delivery: `mxTransport()` (the MX walk, MTA-STS, DANE, REQUIRETLS, opportunistic
 * STARTTLS), TLS-RPT counting and reports, and the foundations they stand on: a DNS client that
 * reports DNSSEC validation, DANE certificate checks, the address policy. The package root
 * re-exports what applications use.
 */

export type { AddressGate } from './address-policy.js'
export { addressGate, isSpecialAddress } from './address-policy.js'
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
export type { ExtraCa } from './https-client.js'
export type { MtaStsOptions, StsLookup } from './mta-sts.js'
export { MtaStsCache } from './mta-sts.js'
export type { MxTransportOptions, RequireTlsLevel } from './options.js'
export { mxReply } from './replies.js'
export type { ResolverAddress, ResolverAddressInput } from './resolver-address.js'
export { isLoopbackAddress, parseResolverAddress, trustsAuthenticatedData } from './resolver-address.js'
export type { StsFailureType, StsPolicy } from './sts-fetch.js'
export type { ReportedPolicy, TlsFailure, TlsReport, TlsReporter, TlsReporterOptions, TlsRptResultType, TlsSessionRecord } from './tls-report.js'
export { tlsReporter } from './tls-report.js'
export type { SendTlsReportsOptions, TlsReportDelivery, TlsReportFile } from './tls-report-send.js'
export { parseTlsRptRecord, sendTlsReports, tlsReportFile } from './tls-report-send.js'
export type { MxTransport } from './transport.js'
export { mxTransport } from './transport.js'
