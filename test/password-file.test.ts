import { mkdtemp, readFile, rm, utimes, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import bcrypt from 'bcryptjs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { hashPassword, type Logger, passwordFile, RelayError, type Session, staticAuthenticator } from '../src/index.js'

const session = {} as Session
let dir: string
let bcryptHash: string
let argonHash: string

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'relaychain-passwd-'))
  // Low cost: these tests check formats and behaviour, not hash strength.
  bcryptHash = await hashPassword('bcrypt-pass', 'bcrypt', 4)
  argonHash = await hashPassword('argon-pass')
})
afterAll(() => rm(dir, { recursive: true, force: true }))

async function file(name: string, text: string): Promise<string> {
  const path = join(dir, name)
  await writeFile(path, text)
  return path
}

describe('passwordFile', () => {
  it('authenticates bcrypt (including htpasswd $2y$) and Argon2id entries, with the senders of each line', async () => {
    const htpasswd = bcryptHash.replace(/^\$2b\$/, '$2y$')
    const path = await file('ok', `# comment\n\nalice:${bcryptHash}:alice@example.com, @sales.example.com\nbob:${argonHash}\ncarol:${htpasswd}\n`)
    const auth = passwordFile(path)
    expect(await auth('alice', 'bcrypt-pass', session)).toEqual({ user: 'alice', senders: ['alice@example.com', '@sales.example.com'] })
    expect(await auth('bob', 'argon-pass', session)).toEqual({ user: 'bob' })
    expect(await auth('carol', 'bcrypt-pass', session)).toEqual({ user: 'carol' })
    expect(await auth('alice', 'argon-pass', session)).toBeNull()
    expect(await auth('bob', 'wrong', session)).toBeNull()
    expect(await auth('nobody', 'bcrypt-pass', session)).toBeNull()
    expect(auth.secret).toBeUndefined()
  })

  it('refuses a plaintext entry with a RelayError naming the line but not the password', async () => {
    const path = await file('plain', `alice:${bcryptHash}\nbob:hunter2\n`)
    let error: unknown
    try {
      passwordFile(path)
    } catch (err) {
      error = err
    }
    expect(error).toBeInstanceOf(RelayError)
    expect((error as RelayError).code).toBe('ERR_RELAY_INVALID_OPTION')
    expect((error as RelayError).message).toBe(`${path}:2: not a bcrypt or Argon2 hash (plaintext passwords are refused)`)
    expect(() => passwordFile(join(dir, 'missing'))).toThrow(/cannot read password file/)
    expect(() => passwordFile(`${path}x`)).toThrow(RelayError)
  })

  it('refuses a user listed twice and malformed lines', async () => {
    const dup = await file('dup2', `alice:${bcryptHash}\nalice:${argonHash}\n`)
    expect(() => passwordFile(dup)).toThrow(/appears twice/)
    const bad = await file('bad', `alice:${bcryptHash}:a@b:extra\n`)
    expect(() => passwordFile(bad)).toThrow(/expected user:hash/)
  })

  it('reloads the file when it changes, and keeps the old contents if the new ones are invalid', async () => {
    const path = await file('reload', `alice:${bcryptHash}\n`)
    const errors: string[] = []
    const logger: Logger = { debug() {}, info() {}, warn() {}, error: (_f, m) => void errors.push(m) }
    const auth = passwordFile(path, { checkInterval: 0, logger })
    expect(await auth('alice', 'bcrypt-pass', session)).toEqual({ user: 'alice' })
    const later = new Date(Date.now() + 10_000)
    await writeFile(path, `alice:${argonHash}\n`)
    await utimes(path, later, later)
    expect(await auth('alice', 'bcrypt-pass', session)).toBeNull()
    expect(await auth('alice', 'argon-pass', session)).toEqual({ user: 'alice' })
    await writeFile(path, 'alice:plaintext\n')
    await utimes(path, new Date(later.getTime() + 10_000), new Date(later.getTime() + 10_000))
    expect(await auth('alice', 'argon-pass', session)).toEqual({ user: 'alice' })
    expect(errors).toEqual(['password file could not be reloaded; keeping the previous contents'])
  })

  it('makes hashes the libraries verify', async () => {
    expect(await bcrypt.compare('bcrypt-pass', bcryptHash)).toBe(true)
    expect(argonHash).toMatch(/^\$argon2id\$v=19\$m=65536,t=3,p=4\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/)
  })

  it('verifies the Argon2id, Argon2i and Argon2d hashes of files written with the argon2 package relaychain used before', async () => {
    const fixture = new URL('./fixtures/passwd/node-argon2.txt', import.meta.url)
    const auth = passwordFile(fixture.pathname)
    const users = (await readFile(fixture, 'utf8'))
      .trim()
      .split('\n')
      .map((line) => line.split(':')[0]!)
    expect(users).toEqual(['argon2id', 'argon2i', 'argon2d', 'argon2id-low'])
    for (const user of users) {
      expect(await auth(user, 'old-argon-pass', session)).toEqual({ user })
      expect(await auth(user, 'old-argon-pas', session)).toBeNull()
    }
  })
})

describe('staticAuthenticator', () => {
  it('checks passwords, answers null for unknown users, and exposes secrets for CRAM-MD5', async () => {
    const auth = staticAuthenticator({ alice: 'x', bob: { password: 'y', senders: ['@example.com'] } })
    expect(await auth('alice', 'x', session)).toEqual({ user: 'alice' })
    expect(await auth('bob', 'y', session)).toEqual({ user: 'bob', senders: ['@example.com'] })
    expect(await auth('alice', 'y', session)).toBeNull()
    expect(await auth('carol', 'x', session)).toBeNull()
    expect(await auth.secret?.('alice', session)).toBe('x')
    expect(await auth.secret?.('carol', session)).toBeNull()
  })
})
