// The package check for optional peer dependencies. `missing`: in a project that installed only
// relaychain, each optional feature fails when built with ERR_RELAY_MISSING_DEPENDENCY and the
// npm install command. `installed`: with the peers installed (prebuilt, no compiler), they work.
import assert from 'node:assert/strict'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { hashPassword, passwordFile, rateLimit, smimeSign } from 'relaychain'

const mode = process.argv[2]
const file = join(mkdtempSync(join(tmpdir(), 'relaychain-check-')), 'passwd')
const oldArgon2 = '$argon2id$v=19$m=4096,p=1,t=2$Siw1j2Bs5EXWQOaf9LcmLw$rd37qekCQh3DNIUItm9EpnxnyfoO+TN5O45cKfV/9B0'

if (mode === 'missing') {
  writeFileSync(file, `alice:${oldArgon2}\n`)
  const cases = [
    [() => passwordFile(file), 'npm install @node-rs/argon2@'],
    [() => smimeSign({ certificates: {} }), 'npm install pkijs@'],
    [() => rateLimit({ store: { redis: 'redis://127.0.0.1:1' }, limits: [{ key: 'ip', messages: 1, window: '1m' }] }), 'npm install ioredis@'],
  ]
  for (const [build, command] of cases) assert.throws(build, (err) => err.code === 'ERR_RELAY_MISSING_DEPENDENCY' && err.message.includes(command))
  await assert.rejects(hashPassword('x'), (err) => err.code === 'ERR_RELAY_MISSING_DEPENDENCY')
  console.log('optional features without their packages: ERR_RELAY_MISSING_DEPENDENCY with the npm install command')
} else {
  const argon = await hashPassword('s3cret')
  const bcrypt = await hashPassword('s3cret', 'bcrypt', 4)
  writeFileSync(file, `alice:${argon}\nbob:${bcrypt}\ncarol:${oldArgon2}\n`)
  const auth = passwordFile(file)
  assert.deepEqual(await auth('alice', 's3cret', {}), { user: 'alice' })
  assert.deepEqual(await auth('bob', 's3cret', {}), { user: 'bob' })
  assert.deepEqual(await auth('carol', 'old-argon-pass', {}), { user: 'carol' })
  assert.equal(await auth('alice', 'wrong', {}), null)
  // Past the dependency check: the next complaint is about the options.
  assert.throws(
    () => smimeSign({ certificates: {} }),
    (err) => err.code === 'ERR_RELAY_INVALID_OPTION',
  )
  rateLimit({ store: { redis: 'redis://127.0.0.1:1' }, limits: [{ key: 'ip', messages: 1, window: '1m' }] })
  console.log(`optional features with their packages: Argon2id and bcrypt hash and verify (${process.version})`)
}
