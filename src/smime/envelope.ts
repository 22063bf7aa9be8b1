/**
 * CMS EnvelopedData (RFC 5652 §6) written as a stream: the content is encrypted with AES-256-CBC
 * chunk by chunk (Node's cipher) into BER with indefinite lengths, as `openssl cms -stream` does,
 * so neither the message nor its ciphertext is ever held whole. The content key is wrapped for
 * each recipient with RSAES-OAEP (SHA-256) or RSAES-PKCS1-v1_5; pkijs builds those
 * RecipientInfos. (pkijs's own encrypt() needs the whole content, and its AES-GCM variant is
 * not the AuthEnvelopedData that openssl and mail clients read.)
 */
import { type Cipher, constants, createCipheriv, publicEncrypt, randomBytes, type X509Certificate } from 'node:crypto'
import { base64Stream } from './base64.js'
import type { Wrap } from './entity.js'
import { loadPkijs } from './pkijs.js'

/**
 * How the content key is encrypted for each recipient.
 *
 * @category Stages
 */
export type KeyTransport = 'rsa-oaep' | 'rsa-pkcs1'

const OID = {
  aes256Cbc: '2.16.840.1.101.3.4.1.42',
  rsaEncryption: '1.2.840.113549.1.1.1',
  rsaesOaep: '1.2.840.113549.1.1.7',
  mgf1: '1.2.840.113549.1.1.8',
  sha256: '2.16.840.1.101.3.4.2.1',
}
const hex = (text: string) => Buffer.from(text.replace(/\s/g, ''), 'hex')
/** SEQUENCE, indefinite length; OBJECT IDENTIFIER envelopedData; [0], indefinite; SEQUENCE, indefinite; INTEGER 0. */
const CONTENT_INFO_START = hex('3080 06092a864886f70d010703 a080 3080 020100')
/** SEQUENCE, indefinite length; OBJECT IDENTIFIER data. */
const ENCRYPTED_CONTENT_INFO_START = hex('3080 06092a864886f70d010701')
/** [0] IMPLICIT OCTET STRING, constructed, indefinite length. */
const ENCRYPTED_CONTENT_START = hex('a080')
/** End-of-contents for the five indefinite lengths opened above. */
const END = hex('0000 0000 0000 0000 0000')

/** Recipient identifiers of certificates seen before (parsing one with pkijs takes about 1 ms). */
const ids = new WeakMap<X509Certificate, import('pkijs').IssuerAndSerialNumber>()

/** An envelope ready for content: its BER up to the encrypted content, and the content cipher. */
export interface OpenEnvelope {
  head: Buffer
  cipher: Cipher
}

/** Creates a content key and wraps it for each recipient (one RecipientInfo each). */
export async function openEnvelope(recipients: readonly X509Certificate[], transport: KeyTransport): Promise<OpenEnvelope> {
  const { pkijs, asn1js } = await loadPkijs()
  const key = randomBytes(32)
  const iv = randomBytes(16)
  const sha256 = new pkijs.AlgorithmIdentifier({ algorithmId: OID.sha256, algorithmParams: new asn1js.Null() })
  const keyEncryption =
    transport === 'rsa-oaep'
      ? new pkijs.AlgorithmIdentifier({
          algorithmId: OID.rsaesOaep,
          algorithmParams: new pkijs.RSAESOAEPParams({
            hashAlgorithm: sha256,
            maskGenAlgorithm: new pkijs.AlgorithmIdentifier({ algorithmId: OID.mgf1, algorithmParams: sha256.toSchema() }),
          }).toSchema(),
        })
      : new pkijs.AlgorithmIdentifier({ algorithmId: OID.rsaEncryption, algorithmParams: new asn1js.Null() })
  const padding = transport === 'rsa-oaep' ? constants.RSA_PKCS1_OAEP_PADDING : constants.RSA_PKCS1_PADDING
  const infos = recipients.map((recipient) => {
    let rid = ids.get(recipient)
    if (!rid) {
      const cert = pkijs.Certificate.fromBER(recipient.raw)
      ids.set(recipient, (rid = new pkijs.IssuerAndSerialNumber({ issuer: cert.issuer, serialNumber: cert.serialNumber })))
    }
    return new pkijs.KeyTransRecipientInfo({
      version: 0,
      rid,
      keyEncryptionAlgorithm: keyEncryption,
      encryptedKey: new asn1js.OctetString({
        valueHex: new Uint8Array(publicEncrypt({ key: recipient.publicKey, padding, oaepHash: 'sha256' }, key)),
      }),
    }).toSchema()
  })
  const contentEncryption = new pkijs.AlgorithmIdentifier({
    algorithmId: OID.aes256Cbc,
    algorithmParams: new asn1js.OctetString({ valueHex: new Uint8Array(iv) }),
  })
  const head = Buffer.concat([
    CONTENT_INFO_START,
    Buffer.from(new asn1js.Set({ value: infos }).toBER()),
    ENCRYPTED_CONTENT_INFO_START,
    Buffer.from(contentEncryption.toSchema().toBER()),
    ENCRYPTED_CONTENT_START,
  ])
  return { head, cipher: createCipheriv('aes-256-cbc', key, iv) }
}

/** The tag and length of a primitive OCTET STRING of `length` bytes. */
function octetStringHeader(length: number): Buffer {
  if (length < 0x80) return Buffer.from([0x04, length])
  const bytes: number[] = []
  for (let n = length; n > 0; n = Math.floor(n / 256)) bytes.unshift(n % 256)
  return Buffer.from([0x04, 0x80 | bytes.length, ...bytes])
}

/** The BER of the envelope around `content`, encrypted as it streams. */
async function* enveloped({ head, cipher }: OpenEnvelope, content: AsyncIterable<Buffer>): AsyncIterable<Buffer> {
  yield head
  for await (const chunk of content) {
    const encrypted = cipher.update(chunk)
    if (encrypted.length) yield Buffer.concat([octetStringHeader(encrypted.length), encrypted])
  }
  const last = cipher.final()
  yield Buffer.concat([octetStringHeader(last.length), last, END])
}

/** The content in, the envelope out, in base64 lines. */
export function envelopeTransform(envelope: OpenEnvelope): Wrap {
  return (content) => base64Stream(enveloped(envelope, content))
}
