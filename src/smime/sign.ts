/**
 * Detached CMS signatures (RFC 5652 SignedData, RFC 8551 §2) over a digest the caller streamed:
 * pkijs never sees the content, so signing a message of any size takes constant memory. The
 * signer's certificate chain goes into the signature, so a verifier needs only the root.
 */
import { type KeyObject, webcrypto, type X509Certificate } from 'node:crypto'
import { type CertificateInput, checkCurrent, invalid, type PrivateKeyInput, parseCertificates, parsePrivateKey } from './certificates.js'
import { loadPkijs } from './pkijs.js'

/**
 * A signing certificate and its key.
 *
 * @category Stages
 */
export interface SmimeSigner {
  /** The signer's certificate, then the intermediate CAs (as in a TLS "fullchain" file). */
  cert: CertificateInput
  /** The private key of the first certificate: RSA, or EC on P-256, P-384 or P-521. */
  key: PrivateKeyInput
  /** The key's passphrase, if it is encrypted. */
  passphrase?: string
}

/** A signer checked at build time; pkijs objects and the WebCrypto key are made on first use. */
export interface Signer {
  readonly chain: readonly X509Certificate[]
  readonly key: KeyObject
  loaded?: Promise<{ certificates: import('pkijs').Certificate[]; key: webcrypto.CryptoKey }>
}

const CURVES: Record<string, string> = { prime256v1: 'P-256', secp384r1: 'P-384', secp521r1: 'P-521' }
const ID_DATA = '1.2.840.113549.1.7.1'
const ID_SIGNED_DATA = '1.2.840.113549.1.7.2'
const ATTR = { contentType: '1.2.840.113549.1.9.3', messageDigest: '1.2.840.113549.1.9.4', signingTime: '1.2.840.113549.1.9.5' }

/** Checks a signer: the certificate matches the key, the chain is in order, all are valid now. */
export function checkSigner(input: SmimeSigner, what: string): Signer {
  const chain = parseCertificates(input.cert, what)
  const key = parsePrivateKey(input.key, input.passphrase, what)
  const cert = chain[0]!
  if (!cert.checkPrivateKey(key)) throw invalid(`${what}: the key does not belong to the (first) certificate`)
  if (key.asymmetricKeyType !== 'rsa' && !(key.asymmetricKeyType === 'ec' && CURVES[key.asymmetricKeyDetails?.namedCurve ?? ''])) {
    throw invalid(`${what}: the key must be RSA or EC on P-256, P-384 or P-521`)
  }
  chain.forEach((c, i) => {
    checkCurrent(c, what)
    const issuer = chain[i + 1]
    if (issuer && !(c.checkIssued(issuer) && c.verify(issuer.publicKey)))
      throw invalid(`${what}: certificate ${i + 2} did not issue certificate ${i + 1}`)
  })
  return { chain, key }
}

function load(signer: Signer): NonNullable<Signer['loaded']> {
  signer.loaded ??= (async () => {
    const { pkijs } = await loadPkijs()
    const curve = CURVES[signer.key.asymmetricKeyDetails?.namedCurve ?? '']
    const algorithm = curve ? { name: 'ECDSA', namedCurve: curve } : { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }
    const der = signer.key.export({ format: 'der', type: 'pkcs8' })
    return {
      certificates: signer.chain.map((c) => {
        // pkijs re-encodes a certificate from its fields on every use (0.7 ms); reuse the encoding.
        const cert = pkijs.Certificate.fromBER(c.raw)
        const schema = cert.toSchema()
        cert.toSchema = () => schema
        return cert
      }),
      key: await webcrypto.subtle.importKey('pkcs8', der, algorithm, false, ['sign']),
    }
  })()
  return signer.loaded
}

/** Loads what signing needs, so that a failure shows before any byte was passed on. */
export async function prepareSigner(signer: Signer): Promise<void> {
  await load(signer)
}

/** A DER `ContentInfo` with a detached SHA-256 `SignedData` over content whose digest is `digest`. */
export async function signDigest(signer: Signer, digest: Buffer): Promise<Buffer> {
  const [{ pkijs, asn1js }, { certificates, key }] = await Promise.all([loadPkijs(), load(signer)])
  const cert = certificates[0]!
  // In DER order (a SET OF is sorted by encoding): some verifiers re-encode them to check the signature.
  const attributes = [
    new pkijs.Attribute({ type: ATTR.contentType, values: [new asn1js.ObjectIdentifier({ value: ID_DATA })] }),
    new pkijs.Attribute({ type: ATTR.signingTime, values: [new asn1js.UTCTime({ valueDate: new Date() })] }),
    new pkijs.Attribute({ type: ATTR.messageDigest, values: [new asn1js.OctetString({ valueHex: new Uint8Array(digest) })] }),
  ]
  const signed = new pkijs.SignedData({
    version: 1,
    encapContentInfo: new pkijs.EncapsulatedContentInfo({ eContentType: ID_DATA }),
    signerInfos: [
      new pkijs.SignerInfo({
        version: 1,
        sid: new pkijs.IssuerAndSerialNumber({ issuer: cert.issuer, serialNumber: cert.serialNumber }),
        signedAttrs: new pkijs.SignedAndUnsignedAttributes({ type: 0, attributes }),
      }),
    ],
    certificates,
  })
  await signed.sign(key, 0, 'SHA-256')
  const info = new pkijs.ContentInfo({ contentType: ID_SIGNED_DATA, content: signed.toSchema(true) })
  return Buffer.from(info.toSchema().toBER())
}
