/** `staticAuthenticator()`: users and passwords from a map in code, for tests, demos and CRAM-MD5. */
import { createHash, timingSafeEqual } from 'node:crypto'
import type { Authenticator, AuthIdentity } from '../core/types.js'

/**
 * Users of {@link staticAuthenticator}: a password, or a password and the senders the user owns.
 *
 * @category Auth
 */
export type StaticUsers = Readonly<
  Record<
    string,
    | string
    | {
        /** The user's password, in plaintext. */
        readonly password: string
        /** Envelope senders the user owns (see `AuthIdentity.senders`). */
        readonly senders?: readonly string[]
      }
  >
>

const digest = (value: string) => createHash('sha256').update(value).digest()

/**
 * An authenticator over a fixed map of users. Passwords are held in plaintext in memory, which
 * is what lets it offer CRAM-MD5 (`secret`); for production use {@link passwordFile}. User names
 * are matched exactly; passwords are compared in constant time, and an unknown user costs the
 * same comparison as a wrong password.
 *
 * @example
 * ```ts
 * createRelay({
 *   auth: { authenticator: staticAuthenticator({ alice: { password: 's3cret', senders: ['alice@example.com'] } }) },
 *   tls, stages: [relayPolicy()], transport,
 * })
 * ```
 *
 * @category Auth
 */
export function staticAuthenticator(users: StaticUsers): Authenticator {
  const table = new Map(
    Object.entries(users).map(([user, entry]) => {
      const { password, senders } = typeof entry === 'string' ? { password: entry, senders: undefined } : entry
      const identity: AuthIdentity = senders ? { user, senders: [...senders] } : { user }
      return [user, { password, hash: digest(password), identity }] as const
    }),
  )
  const unknown = digest('\0unknown user')
  const authenticate = (user: string, password: string): AuthIdentity | null => {
    const entry = table.get(user)
    const match = timingSafeEqual(digest(password), entry?.hash ?? unknown)
    return match && entry ? entry.identity : null
  }
  return Object.assign(authenticate, { secret: (user: string) => table.get(user)?.password ?? null })
}
