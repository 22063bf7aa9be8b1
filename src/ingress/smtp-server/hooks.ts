/**
 * The command hooks of one relay (see `commands.ts`): address checks at MAIL and RCPT always,
 * AUTH when the relay has an authenticator, XCLIENT from the hosts a listener trusts. Shared by all its listeners, so that AUTH throttling
 * counts a client's failures on every port together.
 */

import type { SMTPServerSession } from 'smtp-server'
import type { Session } from '../../core/types.js'
import type { Clock } from '../../shared/clock.js'
import type { Logger } from '../../shared/logger.js'
import { type AddressOptions, addressHook } from './address-check.js'
import { type AuthMechanism, checkAuthOptions, createAuth, type RelayAuthOptions } from './auth.js'
import { type CommandHooks, installCommandHooks } from './commands.js'

/** The hooks, the mechanisms to advertise, and what to release on close. */
export interface RelayHooks {
  readonly hooks: CommandHooks
  readonly mechanisms: readonly AuthMechanism[]
  close(): Promise<void>
}

/** Builds the hooks; throws a `RelayError` for bad auth options or an smtp-server that cannot be hooked. */
export function relayHooks(
  options: {
    auth?: RelayAuthOptions | undefined
    addresses?: AddressOptions | undefined
    hasTls: boolean
    hosts: readonly string[]
    maxSize: number
  },
  ctx: {
    hostname: string
    logger: Logger
    clock: Clock
    view(session: SMTPServerSession): Session
    xclient: Pick<CommandHooks, 'xclientAllowed' | 'xclient'>
  },
): RelayHooks {
  installCommandHooks()
  const mechanisms = options.auth ? checkAuthOptions(options.auth, options.hosts, options.hasTls) : []
  const auth = options.auth && createAuth(options.auth, mechanisms, ctx)
  return {
    hooks: {
      // Without an authenticator AUTH stays a disabled command; these two are never called then.
      authOffered: auth?.authOffered ?? (() => false),
      auth: auth?.auth ?? ((conn, _args, done) => (conn.reply(502, '5.5.1 Command not implemented'), done())),
      address: addressHook(options.addresses ?? {}, ctx.logger, options.maxSize),
      ...ctx.xclient,
    },
    mechanisms,
    close: async () => auth?.close(),
  }
}
