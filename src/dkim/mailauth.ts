/**
 * mailauth, loaded on first use so that importing relaychain stays cheap.
 *
 * DKIM signing uses three of mailauth's internal modules instead of its `dkimSign()`: the body
 * canonicalisation and hash, the header canonicalisation, and the signature field formatter.
 * `dkimSign()` reads the PEM private key again for every message (0.5 ms of CPU for RSA-2048,
 * more than the signature itself) and cannot over-sign header fields (its `h=` lists only fields
 * that exist). The version is pinned (`~4.13.3`), so these paths are stable.
 */
/// <reference path="./mailauth-modules.d.ts" />
import type * as Mailauth from 'mailauth'

/** What the DKIM signer uses. */
export interface DkimParts {
  dkimBody: typeof import('mailauth/lib/dkim/body/index.js')['dkimBody']
  generateCanonicalizedHeader: typeof import('mailauth/lib/dkim/header/index.js')['generateCanonicalizedHeader']
  formatSignatureHeaderLine: typeof import('mailauth/lib/tools.js')['formatSignatureHeaderLine']
}

let dkimParts: Promise<DkimParts> | undefined
let root: Promise<typeof Mailauth> | undefined

/** The DKIM signing parts of mailauth. */
export function loadDkimParts(): Promise<DkimParts> {
  dkimParts ??= Promise.all([
    import('mailauth/lib/dkim/body/index.js'),
    import('mailauth/lib/dkim/header/index.js'),
    import('mailauth/lib/tools.js'),
  ]).then(([body, header, tools]) => ({
    dkimBody: body.default.dkimBody,
    generateCanonicalizedHeader: header.default.generateCanonicalizedHeader,
    formatSignatureHeaderLine: tools.default.formatSignatureHeaderLine,
  }))
  return dkimParts
}

/** mailauth's public API (authentication and ARC sealing). */
export function loadMailauth(): Promise<typeof Mailauth> {
  root ??= import('mailauth').then((m) => (m as typeof Mailauth & { default?: typeof Mailauth }).default ?? m)
  return root
}
