/**
 * XCLIENT (Postfix's extension, https://www.postfix.org/XCLIENT_README.html) from trusted hosts:
 * a front-end MTA or proxy names the client it relays for, and the session becomes that
 * client's. smtp-server parses and applies the command (`useXClient`); the command hooks
 * (`commands.ts`) refuse it from anyone but the listener's trusted hosts and hold the new
 * greeting until this module admitted the named client: the per-client connection limits apply
 * to it (the trusted host itself is exempt from them), and the connect hooks of the chain run
 * again, for the real client, with the same replies as at connect.
 */
import type { SMTPServerSession } from 'smtp-server'
import { SmtpError } from '../../core/errors.js'
import type { CommandHooks } from './commands.js'
import type { RelaySmtpServer } from './server.js'

/** What the hooks need of the listener a session belongs to. */
export interface XclientListener {
  readonly server: RelaySmtpServer
  /** The hosts that may use XCLIENT on this listener; undefined: nobody. */
  readonly xclient: ((ip: string) => boolean) | undefined
  readonly handlers: { onXclient(session: SMTPServerSession): Promise<void> }
}

/** The XCLIENT command hooks of a relay; `find` gives the listener of a session. */
export function xclientHooks(find: (sessionId: string) => XclientListener | undefined): Pick<CommandHooks, 'xclientAllowed' | 'xclient'> {
  return {
    xclientAllowed(session) {
      const trusted = find(session.id)?.xclient
      // The host that sends the command: the client before any XCLIENT changed it.
      const host = (session.xClient?.get('ADDR:DEFAULT') as string | undefined) ?? session.remoteAddress
      return trusted?.(host) === true
    },
    xclient(session, done) {
      const listener = find(session.id)
      const accepted = listener?.server.acceptedOf(session.id)
      if (!listener || !accepted) return done(new SmtpError(421, '4.3.2', 'Service not available, closing transmission channel'))
      if (session.xClient?.has('ADDR')) {
        const refused = accepted.listener.admitClient(accepted, session.remoteAddress)
        if (refused) return done(new SmtpError(421, '4.7.0', refused.replace(/^421 4\.7\.0 /, '')))
      }
      listener.handlers.onXclient(session).then(
        () => done(),
        (err: SmtpError) => done(err),
      )
    },
  }
}
