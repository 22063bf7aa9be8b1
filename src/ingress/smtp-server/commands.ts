/**
 * Lets the relay answer AUTH, MAIL and RCPT itself where smtp-server cannot be configured to.
 *
 * smtp-server strips source routes and converts punycode domains to Unicode before its callbacks
 * see an address, refuses `user@example.com.` instead of normalising it, and writes its own
 * replies without enhanced status codes; its AUTH is offered in clear text whenever STARTTLS is
 * not configured and has no place to throttle; its XCLIENT trusts exact addresses only and
 * greets the named client before anything could check it. For servers that carry
 * {@link COMMAND_HOOKS} in their options we therefore wrap five command handlers: EHLO (AUTH and
 * XCLIENT are listed only when the hooks offer them), AUTH (handled entirely by the hooks), MAIL
 * and RCPT (the hooks see the raw path first and may refuse it or hand smtp-server a normalised
 * command), XCLIENT (refused unless the hooks allow it; once smtp-server applied it, the new 220
 * greeting waits until the hooks admitted the named client, or becomes their refusal). As with the greeting delay,
 * nothing is patched unless the handlers are still the code these wrappers were written for (their
 * whole source, see `guard.ts`); the relay refuses to start without them.
 */
import type { SMTPServerSession } from 'smtp-server'
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js'
import type { SmtpError } from '../../core/errors.js'
import { checkSource } from './guard.js'

/** The option key under which a server's {@link CommandHooks} are stored. */
export const COMMAND_HOOKS = Symbol.for('relaychain.commandHooks')

/** What a hook may do with a connection. */
export interface HookConnection {
  readonly session: SMTPServerSession
  /** True once the connection is encrypted. */
  readonly secure: boolean
  /** Writes one reply line. */
  reply(code: number, text: string): void
  /** Routes the client's next line (an AUTH continuation) to `handler`. */
  expectLine(handler: (line: string, done: () => void) => void): void
  /** Marks the session authenticated as `user` (Received then says ESMTPSA). */
  authenticated(user: string): void
}

/** The hooks of one server. */
export interface CommandHooks {
  /** Whether EHLO lists AUTH for this connection. */
  authOffered(conn: HookConnection): boolean
  /** Handles an AUTH command (`args` are the words after AUTH); calls `done` once answered. */
  auth(conn: HookConnection, args: string[], done: () => void): void
  /**
   * Checks a MAIL or RCPT command before smtp-server parses it. Returns the refusal, or the
   * command line smtp-server should parse instead (the path normalised).
   */
  address(session: SMTPServerSession, kind: 'MAIL' | 'RCPT', line: string): SmtpError | string
  /** Whether this connection may use XCLIENT (its host is trusted by its listener). */
  xclientAllowed(session: SMTPServerSession): boolean
  /**
   * Called after an XCLIENT command changed the session's client, before its new greeting:
   * `done()` greets it, `done(refusal)` answers the refusal and closes the connection.
   */
  xclient(session: SMTPServerSession, done: (refusal?: SmtpError) => void): void
}

type Handler = (this: Internals, command: Buffer, callback: () => void) => void

interface Internals {
  secure: boolean
  _sendGreeting(): void
  close(): void
  session: SMTPServerSession & { disabledCommands?: string[]; transmissionType?: string }
  _server: { options: Record<string | symbol, unknown> & { disabledCommands: string[] } }
  _nextHandler: Handler | false
  _transmissionType(): string
  send(code: number, data: string, context?: false): void
}

/**
 * Whole-source hashes (ESM, CommonJS) of the smtp-server 3.21.6 methods the wrappers wrap or rely
 * on: `_onCommand` routes continuation lines through `_nextHandler`, `_transmissionType` names
 * the protocol after AUTH.
 */
const SOURCES: Record<string, readonly string[]> = {
  handler_EHLO: ['52604867ec58d764'],
  handler_AUTH: ['870e30b54df251cf', '90c88470a205ca52'],
  handler_MAIL: ['d430b50f693cd4e3'],
  handler_RCPT: ['75ede0fc2d41bf4a'],
  // Ends with _resetSession(), _sendGreeting(), callback() once the command was applied.
  handler_XCLIENT: ['9b929b238d24ca82', '93e2421fb780ab6f'],
  _sendGreeting: ['89edc8599bd7ed7a'],
  _onCommand: ['cba82a7fbac1c9e9'],
  _transmissionType: ['3fbf354e6ed7abe2'],
}

let installed = false

/**
 * Installs the wrappers once. Throws `ERR_RELAY_INCOMPATIBLE_SERVER`, naming the method and the
 * installed version, if any of them is not the code they were written for.
 */
export function installCommandHooks(): void {
  if (installed) return
  const proto = SMTPConnection.prototype as unknown as Record<string, Handler>
  for (const [name, hashes] of Object.entries(SOURCES)) checkSource(`SMTPConnection.prototype.${name}`, proto[name], hashes)
  const hooksOf = (conn: Internals) => conn._server.options[COMMAND_HOOKS] as CommandHooks | undefined
  const wrap = (name: string, wrapper: (original: Handler, hooks: CommandHooks) => Handler) => {
    const original = proto[name]!
    proto[name] = function (this: Internals, command, callback) {
      const hooks = hooksOf(this)
      return hooks ? wrapper(original, hooks).call(this, command, callback) : original.call(this, command, callback)
    }
  }

  wrap(
    'handler_EHLO',
    (original, hooks) =>
      function ehlo(command, callback) {
        const hidden = [...(hooks.authOffered(view(this)) ? [] : ['AUTH']), ...(hooks.xclientAllowed(this.session) ? [] : ['XCLIENT'])]
        if (!hidden.length) return original.call(this, command, callback)
        // Hide them from this reply only: the commands stay, so that they can be answered 538 / 550.
        const session = this.session
        const saved = session.disabledCommands
        const restore = () => void (session.disabledCommands = saved)
        session.disabledCommands = [...(saved ?? this._server.options.disabledCommands), ...hidden]
        try {
          original.call(this, command, () => (restore(), callback()))
        } finally {
          restore()
        }
      },
  )
  wrap(
    'handler_AUTH',
    (_original, hooks) =>
      function auth(command, callback) {
        hooks.auth(view(this), command.toString().trim().split(/\s+/).slice(1), callback)
      },
  )
  wrap(
    'handler_XCLIENT',
    (original, hooks) =>
      function xclient(command, callback) {
        if (!hooks.xclientAllowed(this.session)) {
          this.send(550, '5.7.0 Error: insufficient authorization', false)
          return callback()
        }
        // smtp-server greets the named client at the end of a successful XCLIENT: hold that
        // greeting (an own property shadows the prototype's) until the hooks answered.
        let greeted = false
        this._sendGreeting = () => void (greeted = true)
        original.call(this, command, () => {
          Reflect.deleteProperty(this, '_sendGreeting')
          if (!greeted) return callback() // refused by smtp-server (syntax, in a transaction …)
          hooks.xclient(this.session, (refusal) => {
            if (!refusal) this._sendGreeting()
            else {
              this.send(refusal.code, `${refusal.enhanced} ${refusal.response}`, false)
              this.close()
            }
            callback()
          })
        })
      },
  )
  for (const kind of ['MAIL', 'RCPT'] as const) {
    wrap(
      `handler_${kind}`,
      (original, hooks) =>
        function address(command, callback) {
          const result = hooks.address(this.session, kind, command.toString())
          if (typeof result === 'string') return original.call(this, Buffer.from(result), callback)
          this.send(result.code, `${result.enhanced} ${result.response}`)
          callback()
        },
    )
  }
  installed = true
}

/** True if the hooks are installed on the installed smtp-server (a test fails otherwise, so we notice). */
export function commandHooksInstalled(): boolean {
  try {
    installCommandHooks()
    return true
  } catch {
    return false
  }
}

function view(conn: Internals): HookConnection {
  return {
    session: conn.session,
    secure: conn.secure,
    reply: (code, text) => conn.send(code, text, false),
    expectLine(handler) {
      conn._nextHandler = (command, callback) => handler(command.toString(), callback)
    },
    authenticated(user) {
      conn.session.user = user
      conn.session.transmissionType = conn._transmissionType()
    },
  }
}
