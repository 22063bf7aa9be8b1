/**
 * Uses every feature that has an optional peer dependency, in a process where those packages are
 * hidden (test/helpers/hide-packages.mjs), and prints one JSON line per feature: the error code
 * and message it failed with, or `ok`. The root import itself must work without any of them.
 */
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createRelay, hashPassword, passwordFile, popBeforeSmtp, rateLimit, smimeEncrypt, smimeSign, staticAuthenticator } from '../../src/index.js'
import { memoryTransport } from '../../src/testing/index.js'
import { allowAll } from './relay.js'
import { credentials, fixture } from './smime.js'

const dir = mkdtempSync(join(tmpdir(), 'relaychain-missing-'))
const file = (name: string, text: string) => (writeFileSync(join(dir, name), text), join(dir, name))
const argon = '$argon2id$v=19$m=4096,p=1,t=2$Siw1j2Bs5EXWQOaf9LcmLw$rd37qekCQh3DNIUItm9EpnxnyfoO+TN5O45cKfV/9B0'
const bcrypt = `$2b$04$${'a'.repeat(53)}`

const tries: Record<string, () => unknown> = {
  'smime-sign': () => smimeSign({ certificates: { 'alice@example.com': credentials('alice') } }),
  'smime-encrypt': () => smimeEncrypt({ certificates: { 'bob@example.org': fixture('bob.pem') } }),
  'password-file-argon2': () => passwordFile(file('argon', `alice:${argon}\n`)),
  'password-file-bcrypt': () => passwordFile(file('bcrypt', `alice:${bcrypt}\n`)),
  'hash-password-argon2': () => hashPassword('x'),
  'hash-password-bcrypt': () => hashPassword('x', 'bcrypt', 4),
  'rate-limit-redis': () => rateLimit({ store: { redis: 'redis://127.0.0.1:1' }, limits: [{ key: 'ip', messages: 1, window: '1m' }] }),
  'pop-before-smtp-redis': () => popBeforeSmtp({ store: { redis: 'redis://127.0.0.1:1' } }),
  'auth-throttle-redis': () =>
    createRelay({
      stages: [allowAll],
      transport: memoryTransport(),
      auth: { authenticator: staticAuthenticator({ a: 'b' }), allowInsecure: true, throttle: { store: { redis: 'redis://127.0.0.1:1' } } },
    }),
}

for (const [name, run] of Object.entries(tries)) {
  try {
    await run()
    console.log(JSON.stringify({ name, ok: true }))
  } catch (err) {
    const { code, message } = err as { code?: string; message?: string }
    console.log(JSON.stringify({ name, code, message }))
  }
}
