/**
 * relaychain: embeddable SMTP relay chains. Build a chain of stages in code and stream each
 * message through it to a transport.
 *
 * @module relaychain
 */
export { createRelay } from './relay.js'
export type { BoundAddress, ListenerMode, ListenerOptions, Relay, RelayErrorContext, RelayLimits, RelayOptions, RelayTlsOptions } from './relay.js'
export { createPipeline } from './pipeline.js'
export type { Pipeline, PipelineOptions, RcptResult } from './pipeline.js'
export type { StageTimings } from './compose.js'
export { RelayError, RelayErrorCode, SmtpError, reject, toSmtpError } from './errors.js'
export type { EnhancedCode, SmtpErrorOptions } from './errors.js'
export { HeaderBlock } from './body/header-block.js'
export type { HeaderField } from './body/header-block.js'
export { toCrlf } from './body/line-endings.js'
export type { BareLineEndingPolicy } from './body/line-endings.js'
export type { SpoolOptions } from './body/spool.js'
export type { TraceMode } from './relay/received.js'
export type { AddressOptions } from './relay/address.js'
export type { AuthMechanism, AuthThrottleOptions, RelayAuthOptions } from './relay/auth.js'
export { staticAuthenticator } from './auth/static.js'
export type { StaticUsers } from './auth/static.js'
export { hashPassword, passwordFile } from './auth/password-file.js'
export type { PasswordFileOptions, PasswordScheme } from './auth/password-file.js'
export { popBeforeSmtp } from './policy/pop-before-smtp.js'
export type { ClientAuthorizationStore, PopBeforeSmtp, PopBeforeSmtpOptions } from './policy/pop-before-smtp.js'
export type { Clock } from './policy/clock.js'
export type { Duration } from './policy/duration.js'
export type { SharedStore } from './policy/store.js'
export { relayPolicy } from './stages/relay-policy.js'
export type { RelayPolicyOptions } from './stages/relay-policy.js'
export { rateLimit } from './stages/rate-limit.js'
export type { RateLimitOptions, RateLimitRule } from './stages/rate-limit.js'
export { consoleLogger, noopLogger } from './logger.js'
export type { ConsoleLoggerOptions, Logger, LogLevel } from './logger.js'
export { smtpTransport } from './transports/smtp.js'
export type { SmtpTransportOptions } from './transports/smtp.js'
export { fileTransport } from './transports/file.js'
export type { FileEnvelopeRecord, FileTransportOptions } from './transports/file.js'
export { routeTransport } from './transports/route.js'
export type { Route, RouteTransportOptions } from './transports/route.js'
export { smimeSign } from './stages/smime-sign.js'
export type { CertificateInput, PrivateKeyInput, SmimeSigner, SmimeSignOptions } from './stages/smime-sign.js'
export { smimeEncrypt } from './stages/smime-encrypt.js'
export type { CertificateLookup, KeyTransport, RecipientCertificates, SmimeEncryptOptions } from './stages/smime-encrypt.js'
export { dkimSign } from './stages/dkim-sign.js'
export type { DkimKeyContext, DkimKeyMap, DkimKeyResolver, DkimSignOptions } from './stages/dkim-sign.js'
export { arcSeal } from './stages/arc-seal.js'
export type { ArcSealOptions } from './stages/arc-seal.js'
export { dkimDnsRecord } from './dkim/keys.js'
export type { DkimAlgorithm, DkimDnsRecord, DkimKey } from './dkim/keys.js'
export type { DkimCanonicalization } from './dkim/sign.js'
export { spamScan } from './stages/spam-scan.js'
export type { SpamScanOptions, SpamScanResult, SpamThresholds } from './stages/spam-scan.js'
export { virusScan } from './stages/virus-scan.js'
export type { VirusScanOptions, VirusScanResult } from './stages/virus-scan.js'
export { archiveTap } from './stages/archive-tap.js'
export type { ArchiveOutcome, ArchiveRecord, ArchiveTapOptions } from './stages/archive-tap.js'
export { headers } from './stages/headers.js'
export type { HeaderMatcher, HeadersOptions, HeaderValue } from './stages/headers.js'
export { spamd } from './scanners/spamd.js'
export type { SpamdOptions } from './scanners/spamd.js'
export { rspamd } from './scanners/rspamd.js'
export type { RspamdOptions } from './scanners/rspamd.js'
export { clamd } from './scanners/clamd.js'
export type { ClamdOptions } from './scanners/clamd.js'
export type { ScanInput, SpamAction, SpamScanner, SpamVerdict, VirusScanner, VirusVerdict } from './scanners/types.js'
export { disclaimer } from './stages/disclaimer.js'
export type { DisclaimerContent, DisclaimerOptions } from './stages/disclaimer.js'
export { addressRewrite } from './stages/address-rewrite.js'
export type { AddressHeaderField, AddressRewriteOptions } from './stages/address-rewrite.js'
export type { AddressMap, AddressMapFunction, AddressMapResult, AddressMapRule } from './address/map.js'
export type { SrsOptions } from './address/srs.js'
export type {
  Address,
  AuthIdentity,
  Authenticator,
  Awaitable,
  BodyTransform,
  DeliveryReport,
  Envelope,
  Message,
  MessageBody,
  MessageState,
  Modifies,
  Seals,
  Next,
  RcptVerdict,
  RejectedRecipient,
  Session,
  SpooledBody,
  Stage,
  Transaction,
  Transport,
} from './types.js'
