/**
 * Optional peer dependencies. `npm install relaychain` brings what a relay with `relayPolicy`,
 * `smtpTransport`, DKIM and the content stages needs, nothing more; the packages of the features
 * only some relays use are optional peer dependencies, installed by the application that uses
 * them: a Redis store, S/MIME, password files. A factory that needs one checks that it resolves
 * when the chain is built, and the import on first use is checked again; either way a missing
 * package is a `RelayError` `ERR_RELAY_MISSING_DEPENDENCY` that names the `npm install` command.
 */
import { createRequire } from 'node:module'
import { RelayError } from '../core/errors.js'

/**
 * The optional features and the packages each needs, with the version ranges that
 * `peerDependencies` in package.json declares (a test keeps the two equal).
 */
export const OPTIONAL_FEATURES = {
  redis: { what: 'a Redis store given as a URL (store: { redis })', packages: { ioredis: '^6.0.0' } },
  'redis-counters': {
    what: 'Redis counters (rateLimit and AUTH throttling with store: { redis })',
    packages: { ioredis: '^6.0.0', 'rate-limiter-flexible': '^11.4.0' },
  },
  smime: { what: 'S/MIME (smimeSign, smimeEncrypt)', packages: { pkijs: '^4.0.0', asn1js: '^4.0.0' } },
  argon2: { what: 'Argon2 password hashes (passwordFile, hashPassword)', packages: { '@node-rs/argon2': '^2.0.2' } },
  bcrypt: { what: 'bcrypt password hashes (passwordFile, hashPassword)', packages: { bcryptjs: '^3.0.3' } },
  pg: { what: 'the PostgreSQL queue store (pgStore)', packages: { pg: '^8.11.0' } },
} as const

/** A feature whose packages are optional. */
export type OptionalFeature = keyof typeof OPTIONAL_FEATURES

const require = createRequire(import.meta.url)

/** True if `name` resolves from relaychain's own location, as `import()` would find it. */
function installed(name: string): boolean {
  try {
    require.resolve(name)
    return true
  } catch (err) {
    // An ESM-only package without a `require` condition exists, it just cannot be required.
    return (err as NodeJS.ErrnoException).code === 'ERR_PACKAGE_PATH_NOT_EXPORTED'
  }
}

/** The error for a feature used without its packages; `cause` is the failed import, if any. */
export function missingDependency(feature: OptionalFeature, cause?: unknown): RelayError {
  const { what, packages } = OPTIONAL_FEATURES[feature]
  const names = Object.keys(packages)
  const missing = names.filter((name) => !installed(name))
  const install = Object.entries(packages)
    .map(([name, range]) => `${name}@${range}`)
    .join(' ')
  return new RelayError(
    'ERR_RELAY_MISSING_DEPENDENCY',
    `${what} needs the optional package${missing.length === 1 ? '' : 's'} ${(missing.length ? missing : names).join(', ')}, ` +
      `which relaychain does not install itself: npm install ${install}`,
    cause === undefined ? undefined : { cause },
  )
}

/** Throws `ERR_RELAY_MISSING_DEPENDENCY` unless every package of `feature` is installed. Factories call it, so the error comes when the chain is built. */
export function requireFeature(feature: OptionalFeature): void {
  if (Object.keys(OPTIONAL_FEATURES[feature].packages).some((name) => !installed(name))) throw missingDependency(feature)
}

/**
 * Runs `load` (the feature's dynamic imports); a package that is not there becomes
 * `ERR_RELAY_MISSING_DEPENDENCY`, any other failure is passed on as it is.
 */
export async function loadFeature<T>(feature: OptionalFeature, load: () => Promise<T>): Promise<T> {
  try {
    return await load()
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (
      (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') &&
      Object.keys(OPTIONAL_FEATURES[feature].packages).some((n) => !installed(n))
    )
      throw missingDependency(feature, err)
    throw err
  }
}
