/**
 * smime-sign: signs outgoing mail with S/MIME 4.0 (RFC 8551), for senders who must sign
 * (regulated industries, "this really came from us"). Each sender's certificate and key is
 * configured by address or domain; the sender is the address in the From field, which mail
 * clients check against the certificate. The message becomes a detached `multipart/signed`
 * (SHA-256, the signer's chain included) whose first part is the original top-level MIME entity
 * in canonical CRLF form; From, To, Subject, Date, Message-ID and the trace fields stay outside.
 * The digest is computed as the message streams through and the signature is appended at the end,
 * so memory does not depend on message size.
 *
 * Where it belongs: after every stage that changes the body (disclaimer, rewrites), before
 * smime-encrypt (sign, then encrypt) and before DKIM signing. The pipeline refuses other orders.
 */
import { createHash, randomBytes } from 'node:crypto'
import { reject } from '../core/errors.js'
import type { Stage } from '../core/types.js'
import { requireFeature } from '../shared/optional.js'
import { base64Lines } from '../smime/base64.js'
import { addressIn, addressMap, byAddress, invalid, isCurrent } from '../smime/certificates.js'
import { wrapEntity } from '../smime/entity.js'
import { checkSigner, prepareSigner, type Signer, type SmimeSigner, signDigest } from '../smime/sign.js'

export type { CertificateInput, PrivateKeyInput } from '../smime/certificates.js'
export type { SmimeSigner }

/**
 * Options of {@link smimeSign}.
 *
 * @category Stages
 */
export interface SmimeSignOptions {
  /**
   * Certificates and keys by sender: an address (`alice@example.com`), or a domain
   * (`example.com`) for every sender there; the address wins. Checked when the chain is built: a
   * key that does not match its certificate, a chain out of order or a certificate that is not
   * valid now is a `RelayError` `ERR_RELAY_INVALID_OPTION`.
   */
  certificates: Readonly<Record<string, SmimeSigner>>
  /**
   * A sender with no certificate, or one that has expired since: `'send-unsigned'` (default)
   * passes the message on as it is; `'reject'` refuses it with `550 5.7.1`.
   */
  withoutCertificate?: 'send-unsigned' | 'reject'
}

const SIGNATURE_HEADER =
  'Content-Type: application/pkcs7-signature; name="smime.p7s"\r\n' +
  'Content-Transfer-Encoding: base64\r\n' +
  'Content-Disposition: attachment; filename="smime.p7s"\r\n\r\n'

/**
 * Creates the S/MIME signing stage.
 *
 * @example
 * ```ts
 * import { readFileSync } from 'node:fs'
 * import { smimeSign } from 'relaychain/stages/smime-sign'
 *
 * const sign = smimeSign({
 *   certificates: {
 *     'alice@example.com': { cert: readFileSync('alice-fullchain.pem'), key: readFileSync('alice.key') },
 *   },
 *   withoutCertificate: 'reject',
 * })
 * createRelay({ stages: [policy, disclaimer, sign], transport })
 * ```
 *
 * @category Stages
 */
export function smimeSign(options: SmimeSignOptions): Stage {
  requireFeature('smime')
  const policy = options.withoutCertificate ?? 'send-unsigned'
  if (policy !== 'send-unsigned' && policy !== 'reject') throw invalid(`smime-sign: unknown withoutCertificate ${JSON.stringify(policy)}`)
  const signers = addressMap(options.certificates ?? {}, (input, key) => checkSigner(input, `smime-sign certificate for ${key}`))
  if (!signers.addresses.size && !signers.domains.size) throw invalid('smime-sign needs at least one certificate')

  return {
    name: 'smime-sign',
    modifies: 'body',
    seals: 'body',
    async data(msg, next) {
      const sender = addressIn(msg.headers.get('from')) ?? msg.envelope.mailFrom?.address
      const signer = sender === undefined ? undefined : byAddress(signers, sender)
      if (!signer?.chain.every((cert) => isCurrent(cert))) {
        if (policy === 'reject') throw reject.policy(`no valid S/MIME certificate for sender ${sender ?? '<>'}`)
        return next()
      }
      await prepareSigner(signer)
      const boundary = `=_smime_${randomBytes(12).toString('hex')}`
      const type = `multipart/signed; protocol="application/pkcs7-signature"; micalg=sha-256;\r\n\tboundary="${boundary}"`
      wrapEntity(msg, [['Content-Type', type]], signedMultipart(signer, boundary))
      return next()
    },
  }
}

/** Wraps the entity in `multipart/signed`, hashing it on the way through. */
function signedMultipart(signer: Signer, boundary: string) {
  return async function* sign(entity: AsyncIterable<Buffer>): AsyncIterable<Buffer> {
    yield Buffer.from(`This is a cryptographically signed message in MIME format.\r\n\r\n--${boundary}\r\n`)
    const hash = createHash('sha256')
    for await (const chunk of entity) {
      hash.update(chunk)
      yield chunk
    }
    const signature = base64Lines(await signDigest(signer, hash.digest()))
    // The CRLF before each delimiter belongs to the delimiter, not to the part before it.
    yield Buffer.concat([Buffer.from(`\r\n--${boundary}\r\n${SIGNATURE_HEADER}`), signature, Buffer.from(`--${boundary}--\r\n`)])
  }
}
