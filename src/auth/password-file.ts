/**
 * `passwordFile()`: an authenticator over a file of user names and password hashes (bcrypt or
 * Argon2), the format of Apache's htpasswd: `user:hash`, optionally followed by `:senders`, a
 * comma-separated list of the addresses and `@domains` the user may send as. Plaintext and
 * unknown hash schemes are refused when the file is loaded. The file is re-read when it changes.
 * The hashers are optional peer dependencies, loaded on first use: `@node-rs/argon2` (prebuilt
 * per platform, no compiler needed; it verifies the PHC strings of every Argon2 library, the
 * `argon2` package's included) and `bcryptjs` (pure JavaScript). A file with entries whose hasher
 * is not installed is refused when loaded with `ERR_RELAY_MISSING_DEPENDENCY`.
 */
import { readFileSync, type Stats, statSync } from 'node:fs'
import { RelayError } from '../core/errors.js'
import type { Authenticator, AuthIdentity } from '../core/types.js'
import { type Duration, toMs } from '../shared/duration.js'
import type { Logger } from '../shared/logger.js'
import { loadFeature, requireFeature } from '../shared/optional.js'

/**
 * Options of {@link passwordFile}.
 *
 * @category Auth
 */
export interface PasswordFileOptions {
  /** How often, at most, the file is checked for changes (on the next AUTH attempt). Default `'1s'`. */
  checkInterval?: Duration
  /** Where a file that became invalid is reported (the previous contents stay in use). */
  logger?: Logger
}

/**
 * Hash schemes {@link hashPassword} can produce.
 *
 * @category Auth
 */
export type PasswordScheme = 'argon2id' | 'bcrypt'

interface Entry {
  readonly hash: string
  readonly identity: AuthIdentity
}

const SCHEMES = [
  [/^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$/, 'bcrypt'],
  [/^\$argon2(?:id|i|d)\$v=\d+\$[a-z]=\d+(?:,[a-z]=\d+)*\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/, 'argon2'],
] as const

const schemeOf = (hash: string) => SCHEMES.find(([pattern]) => pattern.test(hash))?.[1]

/** Argon2id as `@node-rs/argon2` numbers it (its `Algorithm` is a const enum, which isolated modules cannot read). */
const ARGON2ID = 2
/** The parameters of new Argon2id hashes: those of the `argon2` package relaychain used before (64 MiB, 3 passes, 4 lanes). */
const ARGON2_PARAMS = { algorithm: ARGON2ID, memoryCost: 65_536, timeCost: 3, parallelism: 4 }

const bcryptjs = () => loadFeature('bcrypt', () => import('bcryptjs'))
const argon2 = () => loadFeature('argon2', () => import('@node-rs/argon2'))

/**
 * Hashes a password for a password file: Argon2id (default; 64 MiB, 3 passes, 4 lanes) or bcrypt
 * (cost 12). Needs the optional package `@node-rs/argon2` or `bcryptjs`
 * (`ERR_RELAY_MISSING_DEPENDENCY` otherwise).
 *
 * @example
 * ```ts
 * await appendFile('relay.passwd', `alice:${await hashPassword('s3cret')}:alice@example.com\n`)
 * ```
 *
 * @category Auth
 */
export async function hashPassword(password: string, scheme: PasswordScheme = 'argon2id', cost = 12): Promise<string> {
  if (scheme === 'bcrypt') return (await bcryptjs()).hash(password, cost)
  return (await argon2()).hash(password, ARGON2_PARAMS)
}

async function verify(hash: string, password: string): Promise<boolean> {
  if (schemeOf(hash) === 'bcrypt') return (await bcryptjs()).compare(password, hash)
  return (await argon2()).verify(hash, password)
}

/** Parses a password file; throws a `RelayError` naming the line (never its content) on any bad entry. */
export function parsePasswordFile(text: string, path: string): Map<string, Entry> {
  const entries = new Map<string, Entry>()
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.trim()
    if (!line || line.startsWith('#')) return
    const where = `${path}:${index + 1}`
    const [user = '', hash = '', senders, extra] = line.split(':')
    if (!user || extra !== undefined) throw new RelayError('ERR_RELAY_INVALID_OPTION', `${where}: expected user:hash[:senders]`)
    if (!schemeOf(hash)) {
      throw new RelayError('ERR_RELAY_INVALID_OPTION', `${where}: not a bcrypt or Argon2 hash (plaintext passwords are refused)`)
    }
    if (entries.has(user)) throw new RelayError('ERR_RELAY_INVALID_OPTION', `${where}: user ${JSON.stringify(user)} appears twice`)
    const list = senders
      ?.split(',')
      .map((s) => s.trim())
      .filter(Boolean)
    entries.set(user, { hash, identity: list ? { user, senders: list } : { user } })
  })
  // Every scheme in the file must be verifiable, or its users could never log in.
  for (const { hash } of entries.values()) requireFeature(schemeOf(hash) === 'bcrypt' ? 'bcrypt' : 'argon2')
  return entries
}

/**
 * An authenticator over a password file (see the file header). Loads the file now — throwing a
 * `RelayError` for a missing file, plaintext or an unknown hash — and re-reads it when its
 * modification time or size changes; if the new contents are invalid, the old ones stay in use
 * and the problem is logged. An unknown user costs one hash verification like a wrong password,
 * so timing does not tell them apart.
 *
 * @example
 * ```ts
 * const relay = createRelay({
 *   auth: { authenticator: passwordFile('/etc/relay/passwd') },
 *   tls, stages: [relayPolicy({ senderLogin: true })], transport, listeners,
 * })
 * ```
 *
 * @category Auth
 */
export function passwordFile(path: string, options: PasswordFileOptions = {}): Authenticator {
  const interval = options.checkInterval === 0 ? 0 : toMs(options.checkInterval ?? '1s', 'checkInterval')
  const load = (): { entries: Map<string, Entry>; stat: Stats } => {
    try {
      const stat = statSync(path)
      return { entries: parsePasswordFile(readFileSync(path, 'utf8'), path), stat }
    } catch (err) {
      if (err instanceof RelayError) throw err
      throw new RelayError('ERR_RELAY_INVALID_OPTION', `cannot read password file ${path}: ${(err as Error).message}`, { cause: err })
    }
  }
  let current = load()
  let checked = Date.now()
  const dummies = new Map<string, Promise<string>>()

  function refresh(): void {
    if (Date.now() - checked < interval) return
    checked = Date.now()
    try {
      const stat = statSync(path)
      const { mtimeMs, size, ino } = current.stat
      if (stat.mtimeMs !== mtimeMs || stat.size !== size || stat.ino !== ino) current = load()
    } catch (err) {
      options.logger?.error({ path, err }, 'password file could not be reloaded; keeping the previous contents')
    }
  }

  /** A hash of the same scheme and cost as a real entry, to verify against for unknown users. */
  function dummyLike(hash: string | undefined): Promise<string> {
    const params = hash?.slice(0, hash.lastIndexOf('$')) ?? 'none'
    let dummy = dummies.get(params)
    if (!dummy) {
      const bcryptCost = hash && schemeOf(hash) === 'bcrypt' ? Number(hash.slice(4, 6)) : undefined
      dummy = hashPassword(`\0${Math.random()}`, bcryptCost ? 'bcrypt' : 'argon2id', bcryptCost)
      dummies.set(params, dummy)
    }
    return dummy
  }

  return async function checkPasswordFile(user: string, password: string): Promise<AuthIdentity | null> {
    refresh()
    const entry = current.entries.get(user)
    const hash = entry?.hash ?? (await dummyLike(current.entries.values().next().value?.hash))
    return (await verify(hash, password)) && entry ? entry.identity : null
  }
}
