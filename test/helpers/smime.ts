/**
 * S/MIME test fixtures (see test/fixtures/smime/README.md) and `openssl cms`, the independent
 * implementation every signature and envelope in the tests is checked with.
 */
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import type { SmimeSigner } from '../../src/stages/smime-sign.js'

export const FIXTURES = new URL('../fixtures/smime/', import.meta.url).pathname

export const fixture = (name: string): Buffer => readFileSync(FIXTURES + name)

/** The certificate chain and key of a fixture person (alice, erin: signers; bob, carol: recipients). */
export const credentials = (name: string): SmimeSigner => ({ cert: fixture(`${name}.pem`), key: fixture(`${name}.key`) })

export interface OpensslResult {
  ok: boolean
  stdout: Buffer
  stderr: string
}

/** Runs `openssl` with `input` on stdin. */
export function openssl(args: readonly string[], input?: Buffer): OpensslResult {
  const run = spawnSync('openssl', args, { input, maxBuffer: 256 * 1024 * 1024 })
  return { ok: run.status === 0, stdout: run.stdout, stderr: run.stderr.toString() }
}

/** `openssl cms -verify` against the test root CA only; `stdout` is the signed content. */
export function verify(message: Buffer): OpensslResult {
  return openssl(['cms', '-verify', '-CAfile', `${FIXTURES}root.pem`], message)
}

/** `openssl cms -decrypt` as `who`; `stdout` is the decrypted entity. */
export function decrypt(message: Buffer, who: string): OpensslResult {
  return openssl(['cms', '-decrypt', '-recip', `${FIXTURES}${who}.pem`, '-inkey', `${FIXTURES}${who}.key`], message)
}

/** The header section of a message as UTF-8 text (up to the first empty line). */
export function headerOf(message: Buffer): string {
  const text = message.toString()
  return text.slice(0, text.indexOf('\r\n\r\n') + 2)
}
