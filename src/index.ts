/**
 * relaychain: embeddable SMTP relay chains. Build a chain of stages in code and stream each
 * message through it to a transport.
 *
 * @module relaychain
 */

export type { AddressMap, AddressMapFunction, AddressMapResult, AddressMapRule } from './address/map.js'
export type { SrsOptions } from './address/srs.js'
export type { PasswordFileOptions, PasswordScheme } from './auth/password-file.js'
export { hashPassword, passwordFile } from './auth/password-file.js'
export type { ClientAuthorizationStore, PopBeforeSmtp, PopBeforeSmtpOptions } from './auth/pop-before-smtp.js'
export { popBeforeSmtp } from './auth/pop-before-smtp.js'
export type { StaticUsers } from './auth/static.js'
export { staticAuthenticator } from './auth/static.js'
export type { DomainTable } from './core/address.js'
export { addressKey, domainKey, domainMatcher, domainTable, sameAddress } from './core/address.js'
export { chain } from './core/body/chain.js'
export type { HeaderField } from './core/body/header-block.js'
export { HeaderBlock } from './core/body/header-block.js'
export type { BareLineEndingPolicy } from './core/body/line-endings.js'
export { toCrlf } from './core/body/line-endings.js'
export type { SpoolOptions } from './core/body/spool.js'
export type { StageTimings } from './core/compose.js'
export type { EnhancedCode, SmtpErrorOptions } from './core/errors.js'
export { RelayError, RelayErrorCode, reject, SmtpError, toSmtpError } from './core/errors.js'
export type { Declarations } from './core/order.js'
export { combinedDeclarations } from './core/order.js'
export type { Pipeline, PipelineOptions } from './core/pipeline.js'
export { createPipeline } from './core/pipeline.js'
export type { BeginOptions, MessageContent, PipelineTransaction, TransactionOutcome } from './core/transaction.js'
export type {
  Address,
  Authenticator,
  AuthIdentity,
  Awaitable,
  BodyTransform,
  DeliveryReport,
  Envelope,
  ForkOptions,
  Message,
  MessageBody,
  MessageState,
  Modifies,
  Next,
  RcptVerdict,
  RejectedRecipient,
  Seals,
  Session,
  SpooledBody,
  SpoolReadOptions,
  Stage,
  Transaction,
  Transport,
} from './core/types.js'
export type {
  AcceptedEvent,
  AttemptEventBase,
  BouncedEvent,
  DeferredEvent,
  DelayedEvent,
  DeletedEvent,
  DeliveredEvent,
  DeliveryAttemptEvent,
  DeliveryEvent,
  DeliveryEvents,
  DeliveryListener,
  DsnEvent,
  ErrorEvent,
  EventBase,
  EventSession,
  ExpiredEvent,
  HeldEvent,
  MessageEventBase,
  MessageRefusedEvent,
  QueuedEvent,
  QueueEntryEventBase,
  RecipientRefusedEvent,
  ReleasedEvent,
  SenderRefusedEvent,
  TlsPolicyName,
  TransportEvent,
  TransportEventFields,
} from './delivery/events.js'
export { announce, createEventStream } from './delivery/events.js'
export type { DkimAlgorithm, DkimDnsRecord, DkimKey } from './dkim/keys.js'
export { dkimDnsRecord } from './dkim/keys.js'
export type { DkimCanonicalization } from './dkim/sign.js'
export type { AddressOptions } from './ingress/smtp-server/address-check.js'
export type { AuthMechanism, AuthThrottleOptions, RelayAuthOptions } from './ingress/smtp-server/auth.js'
export type { TraceMode } from './ingress/smtp-server/received.js'
export type {
  BoundAddress,
  ListenerMode,
  ListenerOptions,
  ProxyProtocolOptions,
  Relay,
  RelayErrorContext,
  RelayLimits,
  RelayOptions,
  RelayTlsOptions,
  TlsCertificate,
  XclientOptions,
} from './ingress/smtp-server/relay.js'
export { createRelay } from './ingress/smtp-server/relay.js'
export { POSTFIX_MEDIUM_CIPHERS } from './ingress/smtp-server/tls.js'
export type { DestinationGate, DestinationLimits } from './queue/destinations.js'
export type { AddOptions, DirStoreOptions } from './queue/dir-store.js'
export { DirQueueStore, dirStore } from './queue/dir-store.js'
export type { PgStoreOptions } from './queue/pg-store.js'
export { PgQueueStore, pgStore } from './queue/pg-store.js'
export type { DurableQueue, DurableQueueOptions } from './queue/queue.js'
export { durableQueue } from './queue/queue.js'
export type { RetryOptions, RetrySchedule } from './queue/schedule.js'
export { retrySchedule } from './queue/schedule.js'
export type {
  ClaimedEntry,
  EntryHeader,
  EntryPlace,
  EntrySummary,
  JournalRecord,
  QueuedRecipient,
  QueueEntry,
  QueueStore,
  RecipientStatus,
} from './queue/types.js'
export type { ClamdOptions } from './scanners/clamd.js'
export { clamd } from './scanners/clamd.js'
export type { RspamdOptions } from './scanners/rspamd.js'
export { rspamd } from './scanners/rspamd.js'
export type { SpamdOptions } from './scanners/spamd.js'
export { spamd } from './scanners/spamd.js'
export type { ScanInput, SpamAction, SpamScanner, SpamVerdict, VirusScanner, VirusVerdict } from './scanners/types.js'
export type { Clock } from './shared/clock.js'
export type { Duration } from './shared/duration.js'
export type { ConsoleLoggerOptions, Logger, LogLevel } from './shared/logger.js'
export { consoleLogger, noopLogger } from './shared/logger.js'
export type { PgClient, PgConnectOptions, PgPool, PgResult } from './shared/pg/driver.js'
export type { Migration, MigrationResult } from './shared/pg/migrate.js'
export type { RedisClient, SharedStore } from './shared/store.js'
export type { AddressHeaderField, AddressRewriteOptions } from './stages/address-rewrite.js'
export { addressRewrite } from './stages/address-rewrite.js'
export type { ArcSealOptions } from './stages/arc-seal.js'
export { arcSeal } from './stages/arc-seal.js'
export type { ArchiveOutcome, ArchiveRecord, ArchiveTapOptions } from './stages/archive-tap.js'
export { archiveTap } from './stages/archive-tap.js'
export type { DisclaimerContent, DisclaimerOptions } from './stages/disclaimer.js'
export { disclaimer } from './stages/disclaimer.js'
export type { DkimKeyContext, DkimKeyMap, DkimKeyResolver, DkimSignOptions } from './stages/dkim-sign.js'
export { dkimSign } from './stages/dkim-sign.js'
export type { HeaderMatcher, HeadersOptions, HeaderValue } from './stages/headers.js'
export { headers } from './stages/headers.js'
export type { RateLimitOptions, RateLimitRule } from './stages/rate-limit.js'
export { rateLimit } from './stages/rate-limit.js'
export type { RelayPolicyOptions } from './stages/relay-policy.js'
export { relayPolicy } from './stages/relay-policy.js'
export type { CertificateLookup, KeyTransport, RecipientCertificates, SmimeEncryptOptions } from './stages/smime-encrypt.js'
export { smimeEncrypt } from './stages/smime-encrypt.js'
export type { CertificateInput, PrivateKeyInput, SmimeSigner, SmimeSignOptions } from './stages/smime-sign.js'
export { smimeSign } from './stages/smime-sign.js'
export type { SpamScanOptions, SpamScanResult, SpamThresholds } from './stages/spam-scan.js'
export { spamScan } from './stages/spam-scan.js'
export type { VirusScanOptions, VirusScanResult } from './stages/virus-scan.js'
export { virusScan } from './stages/virus-scan.js'
export type { FileEnvelopeRecord, FileTransportOptions } from './transports/file.js'
export { fileTransport } from './transports/file.js'
export type {
  AddressGate,
  CachedResult,
  DnsAnswer,
  DnsCacheOptions,
  DnsClient,
  DnsClientOptions,
  DnsErrorOptions,
  DnsQueryOptions,
  DnsRecordMap,
  DnsRecordType,
  DnsResolver,
  ExtraCa,
  MtaStsOptions,
  MxRecord,
  MxTransport,
  MxTransportOptions,
  ReportedPolicy,
  RequireTlsLevel,
  ResolverAddress,
  ResolverAddressInput,
  SendTlsReportsOptions,
  StsFailureType,
  StsLookup,
  StsPolicy,
  TlsaRecord,
  TlsFailure,
  TlsReport,
  TlsReportDelivery,
  TlsReporter,
  TlsReporterOptions,
  TlsReportFile,
  TlsRptResultType,
  TlsSessionRecord,
  TxtRecord,
} from './transports/mx/index.js'
export {
  addressGate,
  createDnsClient,
  DnsCache,
  DnsError,
  DnsErrorCode,
  MtaStsCache,
  mxReply,
  mxTransport,
  parseTlsRptRecord,
  sendTlsReports,
  tlsReporter,
  tlsReportFile,
} from './transports/mx/index.js'
export type { Route, RouteTransportOptions } from './transports/route.js'
export { routeTransport } from './transports/route.js'
export type { SmtpTransportOptions } from './transports/smtp.js'
export { smtpTransport } from './transports/smtp.js'
