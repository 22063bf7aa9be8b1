/**
 * Certificates for the MX delivery tests, made with `openssl` (EC P-256, 30 days): a test CA that
 * issues certificates for any names (MX hosts, `mta-sts.<domain>` policy hosts, TLS-RPT report
 * endpoints), and self-signed certificates (what a server without a proper certificate shows).
 * The CA's PEM goes to `mxTransport({ tls: { ca } })` as the extra trusted root.
 */
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)

export interface PemPair {
  readonly key: string
  readonly cert: string
}

export interface MxPki {
  /** The test CA: `cert` is what clients trust. */
  readonly ca: PemPair
  /** A certificate for `names` issued by the CA. */
  issue(names: readonly string[]): Promise<PemPair>
  /** A self-signed certificate for `names`. */
  selfSigned(names: readonly string[]): Promise<PemPair>
  cleanup(): Promise<void>
}

const ext = (names: readonly string[]) =>
  `[req]\ndistinguished_name=dn\n[dn]\n[v3]\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=${names.map((n) => `DNS:${n}`).join(',')}\n`

/** Makes the CA in a temp dir (removed by `cleanup()`). */
export async function makeMxPki(): Promise<MxPki> {
  const dir = await mkdtemp(join(tmpdir(), 'relaychain-mx-pki-'))
  let serial = 100
  const keyArgs = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes']
  const pair = async (name: string): Promise<PemPair> => ({
    key: await readFile(join(dir, `${name}.key`), 'utf8'),
    cert: await readFile(join(dir, `${name}.pem`), 'utf8'),
  })
  const conf = async (name: string, text: string) => {
    const file = join(dir, `${name}.cnf`)
    await writeFile(file, text)
    return file
  }
  const caConf = await conf(
    'ca',
    '[req]\ndistinguished_name=dn\n[dn]\n[v3]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n',
  )
  // biome-ignore format: one argument list
  await run('openssl', ['req', '-x509', ...keyArgs, '-keyout', join(dir, 'ca.key'), '-out', join(dir, 'ca.pem'), '-days', '30', '-subj', '/CN=relaychain MX test CA', '-set_serial', '1', '-extensions', 'v3', '-config', caConf])
  const ca = await pair('ca')
  try {
    return {
      ca,
      async issue(names) {
        const name = `leaf${serial++}`
        const config = await conf(name, ext(names))
        // biome-ignore format: one argument list
        await run('openssl', ['req', '-new', ...keyArgs, '-keyout', join(dir, `${name}.key`), '-out', join(dir, `${name}.csr`), '-subj', `/CN=${names[0]}`])
        // biome-ignore format: one argument list
        await run('openssl', ['x509', '-req', '-in', join(dir, `${name}.csr`), '-CA', join(dir, 'ca.pem'), '-CAkey', join(dir, 'ca.key'), '-set_serial', String(serial), '-days', '30', '-out', join(dir, `${name}.pem`), '-extfile', config, '-extensions', 'v3'])
        return pair(name)
      },
      async selfSigned(names) {
        const name = `self${serial++}`
        const config = await conf(name, ext(names))
        // biome-ignore format: one argument list
        await run('openssl', ['req', '-x509', ...keyArgs, '-keyout', join(dir, `${name}.key`), '-out', join(dir, `${name}.pem`), '-days', '30', '-subj', `/CN=${names[0]}`, '-set_serial', String(serial), '-extensions', 'v3', '-config', config])
        return pair(name)
      },
      cleanup: () => rm(dir, { recursive: true, force: true }),
    }
  } catch (err) {
    await rm(dir, { recursive: true, force: true })
    throw err
  }
}
