/**
 * The mechanics of a DKIM signature (RFC 6376): the signing domain from the From field, the body
 * hash over the spooled body, and the DKIM-Signature field over a header section, with
 * over-signing. Header canonicalisation and formatting are mailauth's (see `mailauth.ts`); the relaxed
 * body canonicalisation is ours (`relaxed-body.ts`).
 */
import { createHash, sign } from 'node:crypto'
import addressparser from 'nodemailer/lib/addressparser'
import type { HeaderBlock, HeaderField } from '../core/body/header-block.js'
import { crlfNormalizer } from '../core/body/line-endings.js'
import { type SigningKey, toDomain } from './keys.js'
import type { DkimParts } from './mailauth.js'
import { type BodyHasher, relaxedBodyHash } from './relaxed-body.js'

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

/** Takes the body chunk by chunk as it is spooled, then gives its hash. */
export interface BodyHashTap {
  readonly onChunk: (chunk: Buffer) => void
  /** The body hash (`bh=`), once every chunk went by. */
  digest(): string
}

/**
 * The body hash as every writer of ours sends the body: with CRLF line endings (a stage may have
 * left a bare LF; the wire will not have it), and ending with a line break (SMTP adds one to a
 * body without it). Relaxed bodies are canonicalised by `relaxed-body.ts`, simple ones by mailauth.
 */
export function bodyHashTap(canonicalization: 'simple' | 'relaxed', parts: DkimParts): BodyHashTap {
  const normalize = crlfNormalizer()
  const hasher: BodyHasher = canonicalization === 'relaxed' ? relaxedBodyHash() : parts.dkimBody('simple', 'sha256', false)
  return {
    onChunk(chunk) {
      const out = normalize(chunk)
      if (out) hasher.update(out)
    },
    digest() {
      const tail = normalize(null)
      if (tail) hasher.update(tail)
      return hasher.digest('base64')
    },
  }
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

/**
 * The value of a DKIM-Signature field over `fields` (the header section as it will be sent). The
 * signature itself is made in Node's thread pool, off the event loop (RSA-2048 costs about as much
 * CPU as relaying a small message).
 */
export async function signatureValue(parts: DkimParts, fields: readonly HeaderField[], key: SigningKey, spec: SignatureSpec): Promise<string> {
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
  const signature = await signInPool(key, canonicalizedHeader)
  const line = parts.formatSignatureHeaderLine('DKIM', { ...dkimHeaderOpts, b: signature.toString('base64') }, true)
  return line.slice(line.indexOf(':') + 1).trimStart()
}

/** RSA signs the canonical header with SHA-256; Ed25519 signs its SHA-256 digest (RFC 8463 §3). */
function signInPool(key: SigningKey, header: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const done = (err: Error | null, signature: Buffer) => (err ? reject(err) : resolve(signature))
    if (key.algorithm === 'rsa-sha256') sign('sha256', header, key.key, done)
    else sign(null, createHash('sha256').update(header).digest(), key.key, done)
  })
}

function withoutLineBreak(raw: Buffer): Buffer {
  let end = raw.length
  if (raw[end - 1] === 0x0a) end--
  if (raw[end - 1] === 0x0d) end--
  return raw.subarray(0, end)
}
