/**
 * smime-encrypt: encrypts outgoing mail for its recipients with S/MIME 4.0 (RFC 8551), for
 * senders that must not send certain mail in clear (health, legal, finance). Each recipient's
 * certificate comes from a map or a lookup function; the message is encrypted once for all of
 * them (AES-256-CBC, one RecipientInfo each, RSA-OAEP or RSA key transport) into
 * `application/pkcs7-mime; smime-type=enveloped-data`. What is encrypted is the original
 * top-level MIME entity; From, To, Subject, Date and the trace fields stay outside. The message
 * is encrypted as it streams, so memory does not depend on its size.
 *
 * A recipient without a certificate is refused with `554 5.7.1` (at RCPT when the lookup can
 * answer then), skipped with a DSN to the sender, or sent a copy in clear: `withoutCertificate`.
 *
 * Where it belongs: last among the stages that change the body, after smime-sign (sign, then
 * encrypt), before DKIM signing. Place it after stages that rewrite recipients.
 */
import type { X509Certificate } from 'node:crypto'
import { RelayError, reject, SmtpError, toSmtpError } from '../core/errors.js'
import type { Address, DeliveryReport, Message, Next, Stage, Transaction } from '../core/types.js'
import { requireFeature } from '../shared/optional.js'
import { invalid } from '../smime/certificates.js'
import { wrapEntity } from '../smime/entity.js'
import { envelopeTransform, type KeyTransport, openEnvelope } from '../smime/envelope.js'
import { certificateFinder, type RecipientCertificates } from '../smime/recipients.js'

export type { CertificateLookup, RecipientCertificates } from '../smime/recipients.js'
export type { KeyTransport }

/**
 * Options of {@link smimeEncrypt}.
 *
 * @category Stages
 */
export interface SmimeEncryptOptions {
  /**
   * Recipients' certificates: a map by address (`bob@example.org`) or domain (`example.org`, a
   * domain's gateway certificate), checked when the chain is built; or a lookup function.
   */
  certificates: RecipientCertificates
  /**
   * A recipient without a usable certificate (none, or expired):
   * - `'reject'` (default): refused with `554 5.7.1` at RCPT; if the lookup could only answer at
   *   DATA, the whole message is refused there with `554 5.7.1`.
   * - `'skip'`: accepted, but left out; it is reported failed with `554 5.7.1`, so the sender gets a
   *   DSN (in clear if the sender has no certificate either). The others get the message encrypted.
   * - `'send-unencrypted'`: it gets its own copy in clear; the others get the message encrypted.
   */
  withoutCertificate?: 'reject' | 'skip' | 'send-unencrypted'
  /** How the content key is encrypted for each recipient. Default `'rsa-oaep'` (with SHA-256). */
  keyTransport?: KeyTransport
}

const FIELDS = [
  ['Content-Type', 'application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"'],
  ['Content-Transfer-Encoding', 'base64'],
  ['Content-Disposition', 'attachment; filename="smime.p7m"'],
] as const

const cannotEncrypt = (text: string, who: readonly Address[]) =>
  new SmtpError(554, '5.7.1', text, { reason: `no usable S/MIME certificate for ${who.map((a) => a.address).join(', ')}` })

/**
 * Creates the S/MIME encryption stage.
 *
 * @example
 * ```ts
 * import { smimeEncrypt } from 'relaychain/stages/smime-encrypt'
 *
 * const encrypt = smimeEncrypt({
 *   certificates: async (address) => directory.smimeCertificate(address), // PEM, or null
 *   withoutCertificate: 'send-unencrypted',
 * })
 * createRelay({ stages: [policy, smimeSign({ certificates }), encrypt], transport })
 * ```
 *
 * @category Stages
 */
export function smimeEncrypt(options: SmimeEncryptOptions): Stage {
  requireFeature('smime')
  const policy = options.withoutCertificate ?? 'reject'
  const keyTransport = options.keyTransport ?? 'rsa-oaep'
  if (!['reject', 'skip', 'send-unencrypted'].includes(policy)) throw invalid(`smime-encrypt: unknown withoutCertificate ${JSON.stringify(policy)}`)
  if (!['rsa-oaep', 'rsa-pkcs1'].includes(keyTransport)) throw invalid(`smime-encrypt: unknown keyTransport ${JSON.stringify(keyTransport)}`)
  const find = certificateFinder(options.certificates)
  // Per transaction, what the lookup answered at RCPT, for DATA.
  const answers = new WeakMap<Transaction, Map<string, X509Certificate | null>>()
  const certificateOf = async (tx: Transaction, address: string) => {
    const known = answers.get(tx) ?? answers.set(tx, new Map()).get(tx)!
    const key = address.toLowerCase()
    if (!known.has(key)) known.set(key, await find(address, tx))
    return known.get(key)!
  }

  const encrypt = async (msg: Message, certs: readonly X509Certificate[]) => {
    const unique = [...new Map(certs.map((c) => [c.fingerprint256, c])).values()]
    const envelope = await openEnvelope(unique, keyTransport)
    wrapEntity(msg, FIELDS, envelopeTransform(envelope))
  }

  /** Refuses a recipient without a certificate at RCPT, if the lookup can answer then. */
  async function refuseWithoutCertificate(tx: Transaction, to: Address): Promise<void> {
    // A lookup that cannot answer now is asked again at DATA.
    const cert = await certificateOf(tx, to.address).catch(() => undefined)
    if (cert === null) throw cannotEncrypt('Cannot encrypt for this recipient', [to])
  }

  return {
    name: 'smime-encrypt',
    modifies: 'body',
    seals: 'body',
    rcptTo: policy === 'reject' ? refuseWithoutCertificate : undefined,
    async data(msg, next) {
      const rcpts = msg.envelope.rcptTo
      const found = await Promise.all(
        rcpts.map((rcpt) =>
          certificateOf(msg, rcpt.address).catch((err: unknown) => {
            throw reject.tempFail(err, `S/MIME certificate lookup failed for ${rcpt.address}`)
          }),
        ),
      )
      const certs = found.filter((cert) => cert !== null)
      const withCert = rcpts.filter((_, i) => found[i])
      const without = rcpts.filter((_, i) => !found[i])
      if (!without.length) {
        await encrypt(msg, certs)
        return next()
      }
      // A notice from the null sender (the DSN telling a sender of a skipped recipient) is not skipped itself.
      const rule = policy === 'skip' && !msg.envelope.mailFrom ? 'send-unencrypted' : policy
      if (rule === 'reject' || (rule === 'skip' && !withCert.length)) throw cannotEncrypt('Cannot encrypt for every recipient', without)
      if (!withCert.length) return next()
      // Mixed: the recipients with a certificate get an encrypted fork, the others their own copy.
      const inClear = rule === 'send-unencrypted'
      const encrypted = await msg.fork(withCert, { takeBody: !inClear })
      await encrypt(encrypted, certs)
      const reports = [await deliver(next, encrypted)]
      if (inClear) reports.push(await deliver(next, await msg.fork(without)))
      else
        reports.push({ accepted: [], rejected: without.map((rcpt) => ({ rcpt, error: cannotEncrypt('Cannot encrypt for this recipient', [rcpt]) })) })
      return {
        accepted: reports.flatMap((r) => r.accepted),
        rejected: reports.flatMap((r) => r.rejected),
        response: reports.map((r) => r.response).find(Boolean) ?? '',
      }
    },
  }
}

/** Passes one group on; a failure of the whole group is reported per recipient, as for the others. */
async function deliver(next: Next, part: Message): Promise<DeliveryReport> {
  try {
    return await next(part)
  } catch (err) {
    if (err instanceof RelayError) throw err
    return { accepted: [], rejected: part.envelope.rcptTo.map((rcpt) => ({ rcpt, error: toSmtpError(err) })) }
  }
}
