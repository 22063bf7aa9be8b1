/**
 * Types for the parts of mailauth 4.13 that ship without declarations and that the DKIM signer
 * imports directly (see `mailauth.ts` for why). Only what we call is declared.
 */
declare module 'mailauth/lib/dkim/body/index.js' {
  const body: {
    dkimBody(
      canonicalization: 'simple' | 'relaxed',
      hashAlgorithm: 'sha256',
      maxBodyLength: false,
    ): { update(chunk: Buffer): void; digest(encoding: 'base64'): string }
  }
  export = body
}

declare module 'mailauth/lib/dkim/header/index.js' {
  const header: {
    generateCanonicalizedHeader(
      type: 'DKIM',
      signingHeaderLines: { keys: string; headers: ReadonlyArray<{ key: string; casedKey: string; line: Buffer }> },
      options: {
        signingDomain: string
        selector: string
        algorithm: string
        canonicalization: string
        bodyHash: string
        signTime: Date
      },
    ): { canonicalizedHeader: Buffer; dkimHeaderOpts: Record<string, string | number> }
  }
  export = header
}

declare module 'mailauth/lib/tools.js' {
  const tools: {
    formatSignatureHeaderLine(type: 'DKIM', values: Record<string, string | number>, folded: boolean): string
  }
  export = tools
}
