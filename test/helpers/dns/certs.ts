/**
 * A small PKI for the DANE tests, made with `openssl` (EC P-256, valid for 30 days from now):
 *
 *   root CA ─▶ intermediate CA ─▶ leaf (mx.example.test, *.pool.example.test)
 *   root CA ─▶ direct leaf (mx.example.test)
 *   self-signed "other" (mx.example.test, a different key: what an attacker would present)
 *   intermediate CA ─▶ "not a CA" certificate ─▶ sneaky leaf (the middle one lacks CA:TRUE)
 *
 * Plus `tlsa()` to compute a record's association data with openssl itself, independently of
 * the code under test.
 */
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)

export interface TestCert {
  /** PEM certificate. */
  pem: string
  /** DER certificate. */
  der: Buffer
  /** PEM private key. */
  key: string
  /** Path of the PEM certificate (for openssl). */
  file: string
}

export interface TestPki {
  root: TestCert
  intermediate: TestCert
  leaf: TestCert
  directLeaf: TestCert
  other: TestCert
  notCa: TestCert
  sneakyLeaf: TestCert
  /** The association data openssl computes for `cert` with this selector and matching type. */
  tlsa(cert: TestCert, selector: 0 | 1, matchingType: 0 | 1 | 2): Promise<Buffer>
  cleanup(): Promise<void>
}

const CA_EXT = 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n'
const leafExt = (names: string[]) =>
  `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=${names.map((n) => `DNS:${n}`).join(',')}\n`

/**
 * Makes the PKI in a temp dir (removed by `cleanup()`).
 *
 * @example
 * ```ts
 * const pki = await makeTestPki()
 * verifyDane([{ usage: 3, selector: 1, matchingType: 1, data: await pki.tlsa(pki.leaf, 1, 1) }], [pki.leaf.der])
 * ```
 */
export async function makeTestPki(): Promise<TestPki> {
  const dir = await mkdtemp(join(tmpdir(), 'relaychain-dane-'))
  let serial = 1
  const computed = new Map<string, Promise<Buffer>>()
  const load = async (name: string): Promise<TestCert> => {
    const file = join(dir, `${name}.pem`)
    const pem = await readFile(file, 'utf8')
    const { stdout } = await run('openssl', ['x509', '-in', file, '-outform', 'DER'], { encoding: 'buffer' })
    return { pem, der: stdout, key: await readFile(join(dir, `${name}.key`), 'utf8'), file }
  }
  const selfSigned = async (name: string, subject: string, ext: string) => {
    await writeFile(join(dir, `${name}.ext`), ext)
    await run('openssl', [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      join(dir, `${name}.key`),
      '-out',
      join(dir, `${name}.pem`),
      '-days',
      '30',
      '-subj',
      subject,
      '-set_serial',
      String(serial++),
      '-extensions',
      'v3',
      '-config',
      await config(name, ext),
    ])
    return load(name)
  }
  const config = async (name: string, ext: string) => {
    const file = join(dir, `${name}.cnf`)
    await writeFile(file, `[req]\ndistinguished_name=dn\n[dn]\n[v3]\n${ext}`)
    return file
  }
  const issue = async (name: string, subject: string, ext: string, issuer: TestCert) => {
    await run('openssl', [
      'req',
      '-new',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      join(dir, `${name}.key`),
      '-out',
      join(dir, `${name}.csr`),
      '-subj',
      subject,
    ])
    const issuerKey = issuer.file.replace(/\.pem$/, '.key')
    await run('openssl', [
      'x509',
      '-req',
      '-in',
      join(dir, `${name}.csr`),
      '-CA',
      issuer.file,
      '-CAkey',
      issuerKey,
      '-set_serial',
      String(serial++),
      '-days',
      '30',
      '-out',
      join(dir, `${name}.pem`),
      '-extfile',
      await config(name, ext),
      '-extensions',
      'v3',
    ])
    return load(name)
  }
  try {
    const root = await selfSigned('root', '/CN=relaychain test root CA', CA_EXT)
    const [intermediate, directLeaf, other] = await Promise.all([
      issue('intermediate', '/CN=relaychain test intermediate CA', CA_EXT, root),
      issue('direct', '/CN=mx.example.test', leafExt(['mx.example.test']), root),
      selfSigned('other', '/CN=mx.example.test', leafExt(['mx.example.test'])),
    ])
    const [leaf, notCa] = await Promise.all([
      issue('leaf', '/CN=mx.example.test', leafExt(['mx.example.test', '*.pool.example.test']), intermediate),
      issue('notca', '/CN=relaychain test not a CA', 'basicConstraints=CA:FALSE\n', intermediate),
    ])
    const sneakyLeaf = await issue('sneaky', '/CN=mx.example.test', leafExt(['mx.example.test']), notCa)
    return {
      root,
      intermediate,
      leaf,
      directLeaf,
      other,
      notCa,
      sneakyLeaf,
      tlsa(cert, selector, matchingType) {
        const key = `${cert.file} ${selector} ${matchingType}`
        if (!computed.has(key)) computed.set(key, associationData(cert, selector, matchingType))
        return computed.get(key)!
      },
      cleanup: () => rm(dir, { recursive: true, force: true }),
    }
  } catch (err) {
    await rm(dir, { recursive: true, force: true })
    throw err
  }

  async function associationData(cert: TestCert, selector: 0 | 1, matchingType: 0 | 1 | 2): Promise<Buffer> {
    const { stdout: bytes } =
      selector === 0
        ? await run('openssl', ['x509', '-in', cert.file, '-outform', 'DER'], { encoding: 'buffer' })
        : await run('sh', ['-c', `openssl x509 -in '${cert.file}' -noout -pubkey | openssl pkey -pubin -outform DER`], { encoding: 'buffer' })
    if (matchingType === 0) return bytes
    const input = `${cert.file}.${selector}${matchingType}.der`
    await writeFile(input, bytes)
    const { stdout } = await run('openssl', ['dgst', matchingType === 1 ? '-sha256' : '-sha512', '-binary', input], { encoding: 'buffer' })
    return stdout
  }
}
