/**
 * Makes smtp-server's pre-greeting delay configurable per server.
 *
 * smtp-server waits a hard-coded 100 ms before its 220 greeting so that it can catch clients
 * that talk before being greeted (spam bots on port 25). On submission ports that is pure
 * latency, and with one connection per message it caps a client at ~9 messages/s. There is no
 * option for it, so we replace `SMTPConnection.prototype.init` with a copy that reads the delay
 * from the server's options — but only after checking that `init` is still exactly the code we
 * copied (its whole source, see `guard.ts`). If a new smtp-server version changes it, nothing is
 * patched and the relay refuses to start with an error naming the method and the version.
 */
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js'
import { checkSource } from './guard.js'

/** The option key under which a server's delay (ms) is stored. */
export const GREETING_DELAY = Symbol.for('relaychain.greetingDelay')

interface ConnectionInternals {
  name: string
  _server: { options: Record<string | symbol, unknown>; connections: { size: number } }
  _setListeners(callback: () => void): void
  connectionReady(): void
  send(code: number, data: string, context?: string | false): void
}

/** Whole-source hash of smtp-server 3.21.6's `init()` (the same in its ESM and CommonJS builds). */
const INIT_SOURCE = ['2036f072df5eeed3']

let installed = false

/**
 * Installs the patch once. Throws `ERR_RELAY_INCOMPATIBLE_SERVER`, naming the method and the
 * installed version, if `init()` is not the code this replacement was copied from.
 */
export function installGreetingDelay(): void {
  if (installed) return
  const proto = SMTPConnection.prototype as unknown as ConnectionInternals & { init(): void }
  const original = proto.init
  checkSource('SMTPConnection.prototype.init', original, INIT_SOURCE)
  proto.init = function init(this: ConnectionInternals) {
    const delay = this._server.options[GREETING_DELAY]
    if (typeof delay !== 'number') return original.call(this)
    this._setListeners(() => {
      const max = this._server.options.maxClients
      if (typeof max === 'number' && this._server.connections.size > max) {
        return this.send(421, `4.3.2 ${this.name} Too many connections, try again later`, false)
      }
      if (delay <= 0) return this.connectionReady()
      setTimeout(() => this.connectionReady(), delay).unref()
    })
  }
  installed = true
}

/** True if the delay is configurable with the installed smtp-server (a test fails otherwise, so we notice). */
export function greetingDelayPatched(): boolean {
  try {
    installGreetingDelay()
    return true
  } catch {
    return false
  }
}
