/** Throwaway self-signed certificates for the TLS listener tests, made with `openssl` (EC P-256, valid two days). */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface SelfSigned {
  /** The common name, also the certificate's only DNS name. */
  readonly name: string
  readonly key: Buffer
  readonly cert: Buffer
}

/** A self-signed certificate for `name`. */
export function selfSigned(name: string): SelfSigned {
  const dir = mkdtempSync(join(tmpdir(), 'relaychain-cert-'))
  const [key, cert] = [join(dir, 'key.pem'), join(dir, 'cert.pem')]
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      '2',
      '-subj',
      `/CN=${name}`,
    ],
    { stdio: 'ignore' },
  )
  return { name, key: readFileSync(key), cert: readFileSync(cert) }
}
