/**
 * The packages of optional features (Redis, S/MIME, password hashing) are optional peer
 * dependencies: relaychain imports without them, and a feature used without its packages fails
 * when it is built with `ERR_RELAY_MISSING_DEPENDENCY` naming the `npm install` command.
 */
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { Redis } from 'ioredis'
import { describe, expect, it } from 'vitest'
import type { RedisClient } from '../src/index.js'
import { OPTIONAL_FEATURES } from '../src/shared/optional.js'

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
  dependencies: Record<string, string>
  devDependencies: Record<string, string>
  peerDependencies: Record<string, string>
  peerDependenciesMeta: Record<string, { optional?: boolean }>
}
const optional = Object.fromEntries(Object.values(OPTIONAL_FEATURES).flatMap((f) => Object.entries(f.packages)))

describe('optional peer dependencies', () => {
  it('are declared optional peers (with the ranges the errors print), installed for development, and not dependencies', () => {
    expect(pkg.peerDependencies).toEqual(optional)
    for (const name of Object.keys(optional)) {
      expect(pkg.peerDependenciesMeta[name]).toEqual({ optional: true })
      expect(pkg.devDependencies[name], name).toBeDefined()
      expect(pkg.dependencies[name], name).toBeUndefined()
    }
    expect(pkg.dependencies.argon2).toBeUndefined()
  })

  it('take an ioredis client as RedisClient', () => {
    const client: RedisClient = new Redis({ lazyConnect: true })
    expect(client.status).toBe('wait')
    ;(client as Redis).disconnect()
  })

  it('fail when the feature is built, naming the npm install command, and the root imports without them', () => {
    const run = spawnSync(
      process.execPath,
      [
        '--import',
        'tsx',
        '--import',
        new URL('./helpers/hide-packages.mjs', import.meta.url).href,
        new URL('./helpers/missing-deps-child.ts', import.meta.url).pathname,
      ],
      { encoding: 'utf8', timeout: 30_000, env: { ...process.env, RELAYCHAIN_HIDE_PACKAGES: Object.keys(optional).join(',') } },
    )
    expect(run.stderr).toBe('')
    const results = Object.fromEntries(
      run.stdout
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as { name: string; code?: string; message?: string })
        .map((r) => [r.name, r]),
    )
    const smime = 'npm install pkijs@^4.0.0 asn1js@^4.0.0'
    const expected: Record<string, string> = {
      'smime-sign': smime,
      'smime-encrypt': smime,
      'password-file-argon2': 'npm install @node-rs/argon2@^2.0.2',
      'password-file-bcrypt': 'npm install bcryptjs@^3.0.3',
      'hash-password-argon2': 'npm install @node-rs/argon2@^2.0.2',
      'hash-password-bcrypt': 'npm install bcryptjs@^3.0.3',
      'rate-limit-redis': 'npm install ioredis@^6.0.0 rate-limiter-flexible@^11.4.0',
      'pop-before-smtp-redis': 'npm install ioredis@^6.0.0',
      'auth-throttle-redis': 'npm install ioredis@^6.0.0 rate-limiter-flexible@^11.4.0',
    }
    expect(Object.keys(results)).toEqual(Object.keys(expected))
    for (const [name, command] of Object.entries(expected)) {
      expect(results[name]?.code, name).toBe('ERR_RELAY_MISSING_DEPENDENCY')
      expect(results[name]?.message, name).toMatch(/ needs the optional packages? /)
      expect(results[name]?.message?.endsWith(`: ${command}`), `${name}: ${results[name]?.message}`).toBe(true)
    }
  })
})
