/**
 * SMTP AUTH (RFC 4954) for the relay: PLAIN, LOGIN and CRAM-MD5, offered only over TLS unless
 * explicitly allowed, checked by a pluggable {@link Authenticator}, with failed attempts counted
 * per client IP and per user name and a temporary lockout after too many. Every reply carries an
 * enhanced status code, and no reply or timing difference tells an unknown user from a wrong
 * password. The exchange runs inside smtp-server's command loop (see `commands.ts`).
 */

import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import type { SMTPServerSession } from 'smtp-server'
import { RelayError, SmtpError } from '../../core/errors.js'
import type { Authenticator, AuthIdentity, Session } from '../../core/types.js'
import type { Clock } from '../../shared/clock.js'
import { type Duration, toSeconds } from '../../shared/duration.js'
import { normalizeIp } from '../../shared/ip.js'
import type { Logger } from '../../shared/logger.js'
import { counters, type SharedStore } from '../../shared/store.js'
import type { CommandHooks, HookConnection } from './commands.js'
import { AUTH_IDENTITY } from './session.js'

/**
 * SASL mechanisms the relay implements.
 *
 * @category Auth
 */
export type AuthMechanism = 'PLAIN' | 'LOGIN' | 'CRAM-MD5'

/**
 * Throttling of failed AUTH attempts (Postfix anvil / fail2ban in one).
 *
 * @category Auth
 */
export interface AuthThrottleOptions {
  /** Failures from one client IP within `window` before that IP is locked out. Default 10. */
  ipFailures?: number
  /** Failures for one user name (existing or not) within `window` before it is locked out. Default 5. */
  userFailures?: number
  /** Default `'15m'`. */
  window?: Duration
  /** How long a lockout lasts; every attempt meanwhile gets `454 4.7.0`. Default `'15m'`. */
  lockout?: Duration
  /** Where the counters live; share them between relay processes with `{ redis }`. Default `'memory'`. */
  store?: SharedStore
}

/**
 * The relay's `auth` option: SMTP AUTH. Without it AUTH is not offered.
 *
 * @category Auth
 */
export interface RelayAuthOptions {
  /** Checks credentials; see {@link Authenticator}. */
  authenticator: Authenticator
  /** Offered mechanisms. Default `['PLAIN', 'LOGIN']`; `'CRAM-MD5'` needs `authenticator.secret`. */
  mechanisms?: readonly AuthMechanism[]
  /**
   * Offer AUTH before TLS (Postfix `smtpd_tls_auth_only = no`). Refused with a `RelayError` unless
   * every listener is on a loopback address. Default false: `538 5.7.11` until STARTTLS.
   */
  allowInsecure?: boolean
  /** Lockouts after repeated failures, per client IP and per user name. */
  throttle?: AuthThrottleOptions
}

const MECHANISMS: readonly AuthMechanism[] = ['PLAIN', 'LOGIN', 'CRAM-MD5']
/** RFC 4954 §4: servers must accept at least 12 288 octets; we accept no more. */
const MAX_LINE = 12_288
const utf8 = new TextDecoder('utf-8', { fatal: true })

const reply = {
  insecure: new SmtpError(538, '5.7.11', 'Encryption required for requested authentication mechanism'),
  already: new SmtpError(503, '5.5.1', 'Already authenticated'),
  inTransaction: new SmtpError(503, '5.5.1', 'AUTH not permitted during a mail transaction'),
  syntax: new SmtpError(501, '5.5.4', 'Syntax: AUTH mechanism [initial-response]'),
  unknown: new SmtpError(504, '5.5.4', 'Unrecognized authentication type'),
  aborted: new SmtpError(501, '5.7.0', 'Authentication aborted'),
  undecodable: new SmtpError(501, '5.5.2', 'Cannot decode response'),
  tooLong: new SmtpError(500, '5.5.6', 'Authentication exchange line is too long'),
  invalid: new SmtpError(535, '5.7.8', 'Authentication credentials invalid'),
  temporary: new SmtpError(454, '4.7.0', 'Temporary authentication failure, try again later'),
}

/** Checks the `auth` option when the relay is built. */
export function checkAuthOptions(options: RelayAuthOptions, hosts: readonly string[], hasTls: boolean): readonly AuthMechanism[] {
  if (typeof options.authenticator !== 'function') throw new RelayError('ERR_RELAY_INVALID_OPTION', 'auth.authenticator must be a function')
  const mechanisms = [...new Set<AuthMechanism>(options.mechanisms ?? ['PLAIN', 'LOGIN'])]
  const unknown = mechanisms.find((m) => !MECHANISMS.includes(m))
  if (unknown || !mechanisms.length) throw new RelayError('ERR_RELAY_INVALID_OPTION', `auth.mechanisms: unknown or empty (${String(unknown)})`)
  if (mechanisms.includes('CRAM-MD5') && typeof options.authenticator.secret !== 'function') {
    throw new RelayError('ERR_RELAY_INVALID_OPTION', 'CRAM-MD5 needs an authenticator with secret(); hashed passwords cannot support it')
  }
  const exposed = hosts.find((h) => !isLoopback(h))
  if (options.allowInsecure && exposed !== undefined) {
    throw new RelayError(
      'ERR_RELAY_INVALID_OPTION',
      `auth.allowInsecure would send passwords in clear text on ${exposed}; it is allowed on loopback listeners only`,
    )
  }
  if (!options.allowInsecure && !hasTls) throw new RelayError('ERR_RELAY_INVALID_OPTION', 'auth needs tls (AUTH is offered only over TLS)')
  return mechanisms
}

function isLoopback(host: string): boolean {
  const ip = normalizeIp(host)
  return ip === '::1' || ip.startsWith('127.') || host === 'localhost'
}

/** The AUTH part of a relay's command hooks; one per relay, so failures count across its listeners. */
export function createAuth(
  options: RelayAuthOptions,
  mechanisms: readonly AuthMechanism[],
  ctx: { hostname: string; logger: Logger; clock: Clock; view(session: SMTPServerSession): Session },
): Pick<CommandHooks, 'authOffered' | 'auth'> & { close(): Promise<void> } {
  const { authenticator } = options
  const t = options.throttle ?? {}
  const store = counters(t.store, ctx.clock)
  const window = toSeconds(t.window ?? '15m', 'auth.throttle.window')
  const lockout = toSeconds(t.lockout ?? '15m', 'auth.throttle.lockout')
  const limits = { ip: t.ipFailures ?? 10, user: t.userFailures ?? 5 }
  const counter = (scope: keyof typeof limits) => store.get({ prefix: `auth-${scope}`, points: limits[scope], seconds: window })
  const userKey = (user: string) => user.normalize('NFC').trim().toLowerCase()

  const isLocked = async (scope: keyof typeof limits, key: string) => ((await (await counter(scope)).get(key))?.consumedPoints ?? 0) >= limits[scope]
  async function recordFailure(scope: keyof typeof limits, key: string, fields: Record<string, unknown>): Promise<void> {
    const limiter = await counter(scope)
    if ((await limiter.add(key, 1)).consumedPoints < limits[scope]) return
    await limiter.block(key, lockout)
    ctx.logger.warn({ ...fields, scope, lockout }, 'authentication locked out after repeated failures')
  }

  async function verify(conn: HookConnection, mechanism: AuthMechanism, user: string, check: (session: Session) => Promise<AuthIdentity | null>) {
    const ip = normalizeIp(conn.session.remoteAddress)
    const fields = { session: conn.session.id, client: ip, user, mechanism }
    if (await isLocked('user', userKey(user))) {
      ctx.logger.info({ ...fields, scope: 'user' }, 'authentication refused: locked out')
      return reply.temporary
    }
    const identity = await check(ctx.view(conn.session)).catch((err: unknown) => {
      ctx.logger.error({ ...fields, err }, 'authenticator failed')
      return reply.temporary
    })
    if (identity instanceof SmtpError) return identity
    if (!identity || typeof identity.user !== 'string' || !identity.user) {
      ctx.logger.info(fields, 'authentication failed')
      await Promise.all([recordFailure('ip', ip, fields), recordFailure('user', userKey(user), fields)])
      return reply.invalid
    }
    await (await counter('user')).delete(userKey(user))
    ;(conn.session as unknown as Record<symbol, AuthIdentity>)[AUTH_IDENTITY] = identity
    conn.authenticated(identity.user)
    ctx.logger.info({ ...fields, user: identity.user }, 'client authenticated')
    return undefined
  }

  /** Runs one mechanism's exchange; resolves with the `done` of the last line read. */
  async function exchange(conn: HookConnection, mechanism: AuthMechanism, initial: string | undefined, done: () => void): Promise<() => void> {
    let current = done
    try {
      /** Sends a 334 challenge, lets smtp-server read the next line, and decodes it. */
      const ask = (challenge: string) =>
        new Promise<string | SmtpError>((resolve) => {
          conn.expectLine((line, next) => {
            current = next
            resolve(text(decode(line, true)))
          })
          conn.reply(334, challenge)
          current()
        })
      const first = initial === undefined ? undefined : text(decode(initial, false))
      if (first instanceof SmtpError) return (answer(conn, first), current)

      let user: string | SmtpError
      let check: (session: Session) => Promise<AuthIdentity | null>
      if (mechanism === 'CRAM-MD5') {
        if (first !== undefined) return (answer(conn, reply.syntax), current)
        const challenge = `<${randomBytes(16).toString('hex')}.${Math.floor(Date.now() / 1000)}@${ctx.hostname}>`
        const response = await ask(Buffer.from(challenge).toString('base64'))
        if (response instanceof SmtpError) return (answer(conn, response), current)
        // RFC 2195: the user name (which may contain spaces), a space, the hex HMAC-MD5 digest.
        const space = response.lastIndexOf(' ')
        user = response.slice(0, Math.max(space, 0))
        const digest = Buffer.from(response.slice(space + 1).toLowerCase())
        check = async (session) => {
          const secret = await authenticator.secret!(user as string, session)
          const expected = Buffer.from(
            createHmac('md5', secret ?? randomBytes(16))
              .update(challenge)
              .digest('hex'),
          )
          const ok = secret !== null && expected.length === digest.length && timingSafeEqual(expected, digest)
          return ok ? authenticator(user as string, secret, session) : null
        }
      } else if (mechanism === 'PLAIN') {
        // RFC 4616: authorization identity NUL login NUL password.
        const message = first ?? (await ask(''))
        if (message instanceof SmtpError) return (answer(conn, message), current)
        const [authzid, login, password, extra] = message.split('\0')
        if (password === undefined || extra !== undefined) return (answer(conn, reply.undecodable), current)
        // No proxy authorization: an authorization identity other than the login fails like a wrong password.
        user = authzid && authzid !== login ? reply.invalid : login!
        check = async (session) => authenticator(login!, password, session)
      } else {
        user = first ?? (await ask('VXNlcm5hbWU6'))
        if (user instanceof SmtpError) return (answer(conn, user), current)
        const password = await ask('UGFzc3dvcmQ6')
        if (password instanceof SmtpError) return (answer(conn, password), current)
        check = async (session) => authenticator(user as string, password, session)
      }
      if (user instanceof SmtpError) return (answer(conn, user), current)
      if (!user || /[\x00-\x1f\x7f]/.test(user)) return (answer(conn, reply.undecodable), current)
      answer(conn, await verify(conn, mechanism, user, check))
      return current
    } catch (err) {
      // The store or something else failed mid-exchange: answer the line being handled.
      ctx.logger.error({ session: conn.session.id, err }, 'authentication failed unexpectedly')
      answer(conn, reply.temporary)
      return current
    }
  }

  return {
    authOffered: (conn) => conn.secure || options.allowInsecure === true,
    auth(conn, args, done) {
      const mechanism = args[0]?.toUpperCase() as AuthMechanism | undefined
      const refusal =
        !conn.secure && !options.allowInsecure
          ? reply.insecure
          : conn.session.user
            ? reply.already
            : conn.session.envelope?.mailFrom
              ? reply.inTransaction
              : !mechanism || args.length > 2
                ? reply.syntax
                : !mechanisms.includes(mechanism)
                  ? reply.unknown
                  : undefined
      if (refusal) return (answer(conn, refusal), done())
      const client = normalizeIp(conn.session.remoteAddress)
      isLocked('ip', client)
        .then((locked) => {
          if (!locked) return exchange(conn, mechanism!, args[1], done)
          ctx.logger.info({ session: conn.session.id, client, mechanism, scope: 'ip' }, 'authentication refused: locked out')
          answer(conn, reply.temporary)
          return done
        })
        .catch((err: unknown) => {
          ctx.logger.error({ session: conn.session.id, err }, 'authentication failed unexpectedly')
          answer(conn, reply.temporary)
          return done
        })
        .then((finish) => finish())
    },
    close: () => store.close(),
  }
}

function answer(conn: HookConnection, error: SmtpError | undefined): void {
  if (error) conn.reply(error.code, `${error.enhanced} ${error.response}`)
  else conn.reply(235, '2.7.0 Authentication successful')
}

/** Decodes one base64 response; `*` cancels (RFC 4954 §4), `=` is an empty initial response. */
function decode(line: string, continuation: boolean): Buffer | SmtpError {
  const text = line.trim()
  if (text.length > MAX_LINE) return reply.tooLong
  if (continuation && text === '*') return reply.aborted
  if (!continuation && text === '=') return Buffer.alloc(0)
  if (text.length % 4 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) return reply.undecodable
  return Buffer.from(text, 'base64')
}

/** The decoded bytes as UTF-8 text, or the error to answer. */
function text(data: Buffer | SmtpError): string | SmtpError {
  if (data instanceof SmtpError) return data
  try {
    return utf8.decode(data)
  } catch {
    return reply.undecodable
  }
}
