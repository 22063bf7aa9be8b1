/** A live, read-only view of an smtp-server session in relaychain's terms. */
import type { SMTPServerSession } from 'smtp-server'
import type { AuthIdentity, Session } from '../../core/types.js'

/** Where the relay keeps the identity of an authenticated session (on smtp-server's session object). */
export const AUTH_IDENTITY = Symbol('relaychain.authIdentity')

/** Exposes `session` as a {@link Session}; reads are live (EHLO, STARTTLS and AUTH change them). */
export class SessionView implements Session {
  readonly #s: SMTPServerSession
  readonly listener: string

  constructor(session: SMTPServerSession, listener: string) {
    this.#s = session
    this.listener = listener
  }

  get id(): string {
    return this.#s.id
  }
  get remoteAddress(): string {
    return this.#s.remoteAddress
  }
  get remotePort(): number {
    return this.#s.remotePort
  }
  get localAddress(): string {
    return this.#s.localAddress
  }
  get localPort(): number {
    return this.#s.localPort
  }
  get clientHostname(): string {
    return this.#s.clientHostname
  }
  get heloName(): string {
    return (this.#s.hostNameAppearsAs as string | false) || ''
  }
  get secure(): boolean {
    return this.#s.secure
  }
  get user(): string | undefined {
    const user: unknown = this.#s.user
    return typeof user === 'string' ? user : undefined
  }
  get auth(): AuthIdentity | undefined {
    // STARTTLS clears smtp-server's user; the identity goes with it.
    const identity = (this.#s as unknown as Record<symbol, AuthIdentity | undefined>)[AUTH_IDENTITY]
    return identity && identity.user === this.user ? identity : undefined
  }
  /** The protocol name for trace headers (`ESMTP`, `ESMTPS`, `ESMTPSA` …). */
  get protocol(): string {
    return this.#s.transmissionType || 'SMTP'
  }
  /** TLS protocol and cipher, if encrypted. */
  get tls(): { version: string; cipher: string } | undefined {
    const tls = this.#s.tlsOptions
    return tls ? { version: tls.version, cipher: tls.name } : undefined
  }
}
