/**
 * The mechanics of a DKIM signature (RFC 6376): the signing domain from the From field, the body
 * hash over the spooled body, and the DKIM-Signature field over a header section, with
 * over-signing. Canonicalisation and formatting are mailauth's (see `mailauth.ts`).
 */
import { createHash, sign } from 'node:crypto'
import addressparser from 'nodemailer/lib/addressparser'
import type { HeaderBlock, HeaderField } from '../core/body/header-block.js'
import { crlfNormalizer } from '../core/body/line-endings.js'
import type { SpooledBody } from '../core/types.js'
import { type SigningKey, toDomain } from './keys.js'
import type { DkimParts } from './mailauth.js'

/**
 * Header canonicalisation / body canonicalisation (RFC 6376 §3.4).
 *
 * @category Stages
 */
export type DkimCanonicalization = 'relaxed/relaxed' | 'relaxed/simple' | 'simple/relaxed' | 'simple/simple'

export const CANONICALIZATIONS: readonly DkimCanonicalization[] = ['relaxed/relaxed', 'relaxed/simple', 'simple/relaxed', 'simple/simple']

/** The fields dkimSign signs by default (RFC 6376 §5.4.1's list, and the newer List and BIMI fields). */
export const DEFAULT_HEADERS: readonly string[] = [
  ...['From', 'Sender', 'Reply-To', 'Subject', 'Date', 'Message-ID', 'To', 'Cc', 'MIME-Version'],
  ...['Content-Type', 'Content-Transfer-Encoding', 'Content-ID', 'Content-Description'],
  ...['Resent-Date', 'Resent-From', 'Resent-Sender', 'Resent-To', 'Resent-Cc', 'Resent-Message-ID'],
  ...['In-Reply-To', 'References', 'List-Id', 'List-Help', 'List-Unsubscribe', 'List-Unsubscribe-Post'],
  ...['List-Subscribe', 'List-Post', 'List-Owner', 'List-Archive', 'BIMI-Selector'],
]

/** `a@b`, `<a@b>` or `Name <a@b>`: most From fields, read without the full address parser. */
const PLAIN_FROM = /^(?:[^"\\()<>@,;:]*<[^\s"\\()<>@,;:]+@([^\s"\\()<>@,;:]+)>|[^\s"\\()<>@,;:]+@([^\s"\\()<>@,;:]+))$/

/** The domain of the first mailbox of the From field (lower case, A-labels), if there is one. */
export function fromDomain(headers: HeaderBlock): string | undefined {
  const value = headers.get('from') ?? ''
  const plain = PLAIN_FROM.exec(value)
  const address = plain ? `@${plain[1] ?? plain[2]}` : (addressparser(value, { flatten: true })[0]?.address ?? '')
  const at = address.lastIndexOf('@')
  if (at < 0) return undefined
  try {
    return toDomain(address.slice(at + 1))
  } catch {
    return undefined
  }
}

/**
 * The body hash of a spooled body as every writer of ours sends it: with CRLF line endings (a
 * stage may have left a bare LF in the spool; the wire will not have it).
 */
export async function hashBody(body: SpooledBody, hasher: ReturnType<DkimParts['dkimBody']>): Promise<string> {
  const normalize = crlfNormalizer()
  for await (const chunk of body.open()) {
    const out = normalize(chunk as Buffer)
    if (out) hasher.update(out)
  }
  const tail = normalize(null)
  if (tail) hasher.update(tail)
  return hasher.digest('base64')
}

/** What a signature covers and how. */
export interface SignatureSpec {
  readonly canonicalization: DkimCanonicalization
  /** Lower-case names of the fields to sign, every instance present. */
  readonly signed: ReadonlySet<string>
  /** Names listed once more than they occur, so that adding one breaks the signature. */
  readonly oversign: readonly string[]
  readonly bodyHash: string
  readonly date: Date
}

/** The value of a DKIM-Signature field over `fields` (the header section as it will be sent). */
export function signatureValue(parts: DkimParts, fields: readonly HeaderField[], key: SigningKey, spec: SignatureSpec): string {
  // Instances are signed bottom-up (RFC 6376 §5.4.2); an over-signed name then matches no field
  // and stands for "no further instance".
  const rows = []
  for (let i = fields.length - 1; i >= 0; i--) {
    const field = fields[i]!
    const name = field.name.toLowerCase()
    if (spec.signed.has(name)) rows.push({ key: name, casedKey: field.name, line: withoutLineBreak(field.raw) })
  }
  const keys = [...rows.map((r) => r.casedKey), ...spec.oversign].join(': ')
  const { canonicalizedHeader, dkimHeaderOpts } = parts.generateCanonicalizedHeader(
    'DKIM',
    { keys, headers: rows },
    {
      signingDomain: key.domain,
      selector: key.selector,
      algorithm: key.algorithm,
      canonicalization: spec.canonicalization,
      bodyHash: spec.bodyHash,
      signTime: spec.date,
    },
  )
  // RSA signs the canonical header with SHA-256; Ed25519 signs its SHA-256 digest (RFC 8463 §3).
  const signature =
    key.algorithm === 'rsa-sha256'
      ? sign('sha256', canonicalizedHeader, key.key)
      : sign(null, createHash('sha256').update(canonicalizedHeader).digest(), key.key)
  const line = parts.formatSignatureHeaderLine('DKIM', { ...dkimHeaderOpts, b: signature.toString('base64') }, true)
  return line.slice(line.indexOf(':') + 1).trimStart()
}

function withoutLineBreak(raw: Buffer): Buffer {
  let end = raw.length
  if (raw[end - 1] === 0x0a) end--
  if (raw[end - 1] === 0x0d) end--
  return raw.subarray(0, end)
}
