/**
 * TLS on the relay's listeners: certificates per listener and by server name (SNI), replaced on
 * a running relay (by a call, or by watching the files) without dropping a session, and
 * protocol and cipher defaults that follow Postfix.
 */

import { mkdtempSync, readFileSync } from 'node:fs'
import { rename, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import type { TLSSocket } from 'node:tls'
import { describe, expect, it } from 'vitest'
import { createRelay, type Logger, RelayError, type RelayOptions } from '../../src/index.js'
import { POSTFIX_MEDIUM_CIPHERS } from '../../src/ingress/smtp-server/tls.js'
import { memoryTransport } from '../../src/testing/index.js'
import { afterTest } from '../helpers/after-test.js'
import { havePeer } from '../helpers/peers.js'
import { RawSmtp } from '../helpers/raw-smtp.js'
import { allowAll } from '../helpers/relay.js'
import { type SelfSigned, selfSigned } from '../helpers/tls-certs.js'

const haveOpenssl = havePeer('openssl', 'apt-get install -y openssl')
const pair = (c: SelfSigned) => ({ key: c.key, cert: c.cert })

async function start(options: Partial<RelayOptions>) {
  const transport = memoryTransport()
  const relay = createRelay({ hostname: 'relay.test', stages: [allowAll], transport, listeners: [{ port: 0, mode: 'submission' }], ...options })
  const bound = await relay.listen()
  afterTest(() => relay.close({ timeout: 2000 }))
  return { relay, transport, ports: bound.map((b) => b.port) }
}

/** The common name of the certificate a STARTTLS (or implicit TLS) handshake asking for `servername` gets. */
async function presented(port: number, servername?: string, implicit = false): Promise<string> {
  const options = { rejectUnauthorized: false, ...(servername ? { servername } : {}) }
  const client = implicit ? (await RawSmtp.connectTls(port, options)).client : (await RawSmtp.connect(port)).client
  try {
    if (!implicit) {
      await client.command('EHLO client.test')
      expect(await client.starttls(options)).toMatch(/^220/)
    }
    return String((client.socket as TLSSocket).getPeerCertificate().subject.CN)
  } finally {
    client.close()
  }
}

describe.skipIf(!haveOpenssl)('TLS listeners', () => {
  const [main, mail, pool, other, fresh] = ['relay.test', 'mail.example.test', '*.pool.example.test', 'other.example.test', 'relay-2027.test'].map(
    selfSigned,
  ) as [SelfSigned, SelfSigned, SelfSigned, SelfSigned, SelfSigned]

  it('picks the certificate by the server name the client asks for (SNI), on STARTTLS and implicit TLS, with the default for other names', async () => {
    const { ports } = await start({
      tls: { ...pair(main), sni: { 'Mail.Example.Test': pair(mail), '*.pool.example.test': pair(pool) } },
      listeners: [
        { port: 0, mode: 'submission' },
        { port: 0, mode: 'submissions' },
      ],
    })
    for (const [port, implicit] of [
      [ports[0]!, false],
      [ports[1]!, true],
    ] as const) {
      expect(await presented(port, 'mail.example.test', implicit)).toBe('mail.example.test')
      expect(await presented(port, 'mx3.pool.example.test', implicit)).toBe('*.pool.example.test')
      expect(await presented(port, 'pool.example.test', implicit)).toBe('relay.test')
      expect(await presented(port, 'unknown.test', implicit)).toBe('relay.test')
      expect(await presented(port, undefined, implicit)).toBe('relay.test')
    }
  })

  it("gives a listener its own certificates instead of the relay's", async () => {
    const { ports } = await start({
      tls: pair(main),
      listeners: [
        { port: 0, mode: 'submission' },
        { port: 0, mode: 'submission', name: 'other', tls: pair(other) },
        { port: 0, mode: 'submission', name: 'plain-only' },
      ],
    })
    expect(await presented(ports[0]!)).toBe('relay.test')
    expect(await presented(ports[1]!)).toBe('other.example.test')
  })

  it('replaces the certificates on a running relay: new handshakes get the new one, a session in progress keeps going', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'relaychain-tls-'))
    const files = { keyFile: join(dir, 'key.pem'), certFile: join(dir, 'cert.pem') }
    await Promise.all([writeFile(files.keyFile, main.key), writeFile(files.certFile, main.cert)])
    const { relay, transport, ports } = await start({ tls: files })
    const port = ports[0]!

    const { client: old } = await RawSmtp.connect(port)
    await old.command('EHLO old.test')
    await old.starttls({ rejectUnauthorized: false })
    await old.command('EHLO old.test')
    expect(await old.command('MAIL FROM:<a@example.com>')).toMatch(/^250/)

    await Promise.all([writeFile(files.keyFile, fresh.key), writeFile(files.certFile, fresh.cert)])
    relay.updateTls()
    expect(await presented(port)).toBe('relay-2027.test')
    relay.updateTls({ ...pair(other) })
    expect(await presented(port)).toBe('other.example.test')

    // A key that does not belong to the certificate is refused; the current certificates stay.
    const mismatch = (() => {
      try {
        relay.updateTls({ key: main.key, cert: fresh.cert })
      } catch (err) {
        return err
      }
    })()
    expect(mismatch).toBeInstanceOf(RelayError)
    expect((mismatch as RelayError).code).toBe('ERR_RELAY_INVALID_OPTION')
    expect((mismatch as RelayError).message).not.toContain('PRIVATE KEY')
    expect(await presented(port)).toBe('other.example.test')

    // The session that started before all this is still served, with its certificate.
    expect(String((old.socket as TLSSocket).getPeerCertificate().subject.CN)).toBe('relay.test')
    expect(await old.command('RCPT TO:<b@example.org>')).toMatch(/^250/)
    expect(await old.command('DATA')).toMatch(/^354/)
    expect(await old.command('Subject: during a reload\r\n\r\nstill here\r\n.')).toMatch(/^250 2\.0\.0 /)
    old.close()
    expect(transport.messages).toHaveLength(1)
  })

  it('watches certificate files and reloads them when they change; a pair that does not load is logged and the old one kept', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'relaychain-tls-'))
    const files = { keyFile: join(dir, 'key.pem'), certFile: join(dir, 'cert.pem') }
    await Promise.all([writeFile(files.keyFile, main.key), writeFile(files.certFile, main.cert)])
    const lines: Array<{ level: string; message: string }> = []
    const record = (level: string) => (_fields: Record<string, unknown>, message: string) => void lines.push({ level, message })
    const logger: Logger = { debug: record('debug'), info: record('info'), warn: record('warn'), error: record('error') }
    const { ports } = await start({ tls: { ...files, watch: { interval: 50 } }, logger })
    const port = ports[0]!
    expect(await presented(port)).toBe('relay.test')
    const replace = async (file: string, content: Buffer) => (await writeFile(`${file}.new`, content), rename(`${file}.new`, file))
    const until = async (check: () => Promise<boolean> | boolean) => {
      for (let i = 0; i < 100 && !(await check()); i++) await sleep(50)
    }

    // Rotation as certbot does it: new files renamed into place, the key first.
    await replace(files.keyFile, fresh.key)
    await replace(files.certFile, fresh.cert)
    await until(async () => (await presented(port)) === 'relay-2027.test')
    expect(await presented(port)).toBe('relay-2027.test')
    expect(lines).toContainEqual({ level: 'info', message: 'TLS certificates reloaded' })

    await replace(files.certFile, other.cert) // its key never comes
    await until(() => lines.some((l) => l.level === 'error'))
    expect(lines).toContainEqual({ level: 'error', message: 'TLS certificates could not be reloaded; keeping the previous ones' })
    expect(await presented(port)).toBe('relay-2027.test')
  })

  it('refuses, when the relay is built, a missing file, a key that does not match and a bad SNI name', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'relaychain-tls-'))
    const build = (tls: RelayOptions['tls']) => () => createRelay({ stages: [allowAll], transport: memoryTransport(), tls })
    expect(build({ keyFile: join(dir, 'missing.pem'), cert: main.cert })).toThrow(/tls: cannot read .*missing\.pem: ENOENT/)
    expect(build({ key: main.key, cert: other.cert })).toThrow(RelayError)
    expect(build({ ...pair(main), sni: { 'bad name': pair(other) } })).toThrow(/bad SNI name/)
    expect(build({ ...pair(main), sni: { 'a.test': { key: main.key, cert: other.cert } } })).toThrow(/tls sni a\.test/)
    const relay = createRelay({ stages: [allowAll], transport: memoryTransport(), listeners: [{ port: 0, mode: 'submission' }] })
    expect(() => relay.updateTls(pair(main))).toThrow(/built without its own tls option/)
  })

  it('defaults to what Postfix ships: protocols >=TLSv1 and the medium cipher grade (Camellia included, which Node leaves out)', async () => {
    expect(POSTFIX_MEDIUM_CIPHERS).toBe('aNULL:-aNULL:HIGH:MEDIUM:!SEED:!IDEA:!3DES:!RC2:!RC4:!RC5:!kDH:!kECDH:!aDSS:!MD5:+RC4:@STRENGTH')
    const rsa = {
      key: readFileSync(new URL('../fixtures/tls/key.pem', import.meta.url)),
      cert: readFileSync(new URL('../fixtures/tls/cert.pem', import.meta.url)),
    }
    const { ports } = await start({ tls: rsa })
    const { client } = await RawSmtp.connect(ports[0]!)
    await client.command('EHLO client.test')
    await client.starttls({ rejectUnauthorized: false, maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-CAMELLIA256-SHA384:CAMELLIA256-SHA' })
    expect((client.socket as TLSSocket).getCipher().name).toMatch(/CAMELLIA/)
    client.close()
  })
})
