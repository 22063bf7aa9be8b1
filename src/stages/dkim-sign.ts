/**
 * DKIM signing (RFC 6376; Ed25519 per RFC 8463): each message whose From domain has a key gets
 * one DKIM-Signature per key (the usual pair is RSA-2048 plus Ed25519), so that receivers, and
 * DMARC on top of DKIM, can tell that the mail comes from that domain. Messages from domains
 * without a key pass unsigned.
 *
 * Where it belongs: after every stage that changes the message (disclaimer, address rewrite,
 * S/MIME). It seals the body and the signed header fields, and the pipeline refuses a stage that
 * modifies the message after it; only trace stages (new fields at the top) may follow. On
 * forwarded mail, `arcSeal` goes before it, so that ARC records the message as received.
 */

import { domainTable } from '../core/address.js'
import { RelayError } from '../core/errors.js'
import type { Awaitable, Message, Stage } from '../core/types.js'
import { type DkimKey, type SigningKey, signingKey, toDomain } from '../dkim/keys.js'
import { loadDkimParts } from '../dkim/mailauth.js'
import { bodyHashTap, CANONICALIZATIONS, DEFAULT_HEADERS, type DkimCanonicalization, fromDomain, signatureValue } from '../dkim/sign.js'

export type { DkimAlgorithm, DkimDnsRecord, DkimKey, PrivateKeyInput } from '../dkim/keys.js'
// For users of the subpath export relaychain/stages/dkim-sign: the key helper and its types.
export { dkimDnsRecord } from '../dkim/keys.js'
export type { DkimCanonicalization } from '../dkim/sign.js'

/**
 * Keys per From domain: one key, or several for several signatures.
 *
 * @category Stages
 */
export type DkimKeyMap = Readonly<Record<string, DkimKey | readonly DkimKey[]>>

/**
 * What a key resolver is told besides the From domain.
 *
 * @category Stages
 */
export interface DkimKeyContext {
  /** The message being signed: its headers, envelope and session (to pick keys per listener or user). */
  readonly message: Message
  /** The signing time (`t=`): pick keys by date with it, e.g. to rotate selectors. */
  readonly date: Date
}

/**
 * Picks the keys for a From domain (lower case, A-labels); nothing or `[]` leaves the message
 * unsigned. Return the same objects for the same keys: each is read once, on first use, and an
 * unreadable one fails the message with `451 4.3.0`.
 *
 * @category Stages
 */
export type DkimKeyResolver = (domain: string, context: DkimKeyContext) => Awaitable<DkimKey | readonly DkimKey[] | undefined>

/**
 * Options of {@link dkimSign}.
 *
 * @category Stages
 */
export interface DkimSignOptions {
  /** Keys per From domain, read and checked when the chain is built; or a resolver. */
  keys: DkimKeyMap | DkimKeyResolver
  /** Default `'relaxed/relaxed'`. */
  canonicalization?: DkimCanonicalization
  /**
   * Header fields to sign, every instance present. Must include From. Default: From, Sender,
   * Reply-To, Subject, Date, Message-ID, To, Cc, MIME-Version, Content-Type,
   * Content-Transfer-Encoding, Content-ID, Content-Description, the Resent-* fields,
   * In-Reply-To, References, the List-* fields (List-Unsubscribe-Post included) and BIMI-Selector.
   */
  headers?: readonly string[]
  /**
   * Fields signed once more than they occur, so that a field of that name added later breaks
   * the signature. Default From, Subject, To, Date.
   */
  oversign?: readonly string[]
  /** The signing time. Default: now. */
  clock?: () => Date
}

const FIELD_NAME = /^[\x21-\x39\x3b-\x7e]+$/

/**
 * Signs messages with DKIM. The body is spooled once (memory, then a temp file) and hashed as it
 * is spooled; the signatures are made in Node's thread pool. The `l=` tag is never used. Keys in a map are read when the chain is
 * built: an unreadable or unsuitable key is a `RelayError` `ERR_RELAY_INVALID_OPTION` then.
 *
 * @example
 * ```ts
 * import { readFileSync } from 'node:fs'
 * const signer = dkimSign({
 *   keys: {
 *     'example.com': [
 *       { selector: 'rsa2026', privateKey: readFileSync('/etc/relay/dkim/rsa2026.pem') },
 *       { selector: 'ed2026', privateKey: readFileSync('/etc/relay/dkim/ed2026.pem') },
 *     ],
 *   },
 * })
 * createRelay({ stages: [relayPolicy({ networks: ['192.0.2.0/24'] }), disclaimer, signer], transport })
 * ```
 *
 * @category Stages
 */
export function dkimSign(options: DkimSignOptions): Stage {
  const canonicalization = options.canonicalization ?? 'relaxed/relaxed'
  if (!CANONICALIZATIONS.includes(canonicalization)) invalid(`canonicalization must be one of ${CANONICALIZATIONS.join(', ')}`)
  const oversign = [...(options.oversign ?? ['From', 'Subject', 'To', 'Date'])]
  const headerNames = [...(options.headers ?? DEFAULT_HEADERS), ...oversign]
  const bad = headerNames.find((name) => !FIELD_NAME.test(name))
  if (bad !== undefined) invalid(`invalid header field name ${JSON.stringify(bad)}`)
  const signed = new Set(headerNames.map((name) => name.toLowerCase()))
  if (!signed.has('from')) invalid('the From field must be signed (RFC 6376 section 5.4)')
  const clock = options.clock ?? (() => new Date())
  const lookup = typeof options.keys === 'function' ? resolverLookup(options.keys) : mapLookup(options.keys)
  const bodyCanonicalization = canonicalization.endsWith('/simple') ? 'simple' : 'relaxed'

  return {
    name: 'dkim-sign',
    // Adds DKIM-Signature fields at the top, nothing else.
    modifies: 'trace',
    seals: 'message',
    async data(msg, next) {
      const domain = fromDomain(msg.headers)
      const date = clock()
      const keys = domain === undefined ? [] : await lookup(domain, { message: msg, date })
      if (!keys.length) return next()
      const parts = await loadDkimParts()
      // Hashed while it is spooled (the spool is what the transport then sends).
      const tap = bodyHashTap(bodyCanonicalization, parts)
      await msg.body.spool({ onChunk: tap.onChunk })
      const spec = { canonicalization, signed, oversign, bodyHash: tap.digest(), date }
      const fields = msg.headers.fields()
      const values = await Promise.all(keys.map((key) => signatureValue(parts, fields, key, spec)))
      // Prepending in reverse leaves the first key's signature on top.
      for (const value of values.reverse()) msg.headers.add('DKIM-Signature', value)
      return next()
    },
  }
}

type Lookup = (domain: string, context: DkimKeyContext) => Awaitable<readonly SigningKey[]>

function mapLookup(map: DkimKeyMap): Lookup {
  const entries = Object.entries(map).map(([name, entry]) => {
    // `.example.com` covers the subdomains; their mail is signed as the parent unless a key says otherwise.
    const domain = toDomain(name.startsWith('.') ? name.slice(1) : name)
    return [
      name.startsWith('.') ? `.${domain}` : domain,
      listOf(entry).map((key) => signingKey(key, key.domain ? toDomain(key.domain) : domain)),
    ] as const
  })
  const seen = new Set<string>()
  for (const [name] of entries) {
    if (seen.has(name)) invalid(`the key map names ${name} twice`)
    seen.add(name)
  }
  const keys = domainTable(entries, 'dkimSign keys')
  return (domain) => keys.get(domain) ?? []
}

function resolverLookup(resolve: DkimKeyResolver): Lookup {
  // Keyed by the resolver's own objects: each key is read once, and the cache goes with them.
  const read = new WeakMap<DkimKey, SigningKey>()
  return async (domain, context) =>
    listOf(await resolve(domain, context)).map((key) => {
      const signWith = key.domain ? toDomain(key.domain) : domain
      let parsed = read.get(key)
      if (!parsed) read.set(key, (parsed = signingKey(key, signWith)))
      return parsed.domain === signWith ? parsed : { ...parsed, domain: signWith }
    })
}

function listOf(entry: DkimKey | readonly DkimKey[] | undefined): readonly DkimKey[] {
  return entry === undefined ? [] : Array.isArray(entry) ? entry : [entry as DkimKey]
}

function invalid(message: string): never {
  throw new RelayError('ERR_RELAY_INVALID_OPTION', `dkimSign: ${message}`)
}
