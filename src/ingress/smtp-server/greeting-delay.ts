/**
 * Makes smtp-server's pre-greeting delay configurable per server.
 *
 * smtp-server waits a hard-coded 100 ms before its 220 greeting so that it can catch clients
 * that talk before being greeted (spam bots on port 25). On submission ports that is pure
 * latency, and with one connection per message it caps a client at ~9 messages/s. There is no
 * option for it, so we replace `SMTPConnection.prototype.init` with a copy that reads the delay
 * from the server's options — but only after checking that `init` is still exactly the code we
 * copied. If a new smtp-server version changes it, nothing is patched, the built-in 100 ms stays,
 * and `greetingDelayPatched()` reports false (a test fails on it, so we notice).
 */
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js'

/** The option key under which a server's delay (ms) is stored. */
export const GREETING_DELAY = Symbol.for('relaychain.greetingDelay')

/** The line of smtp-server 3.21's `init()` this patch replaces. */
const FINGERPRINT = 'setTimeout(() => this.connectionReady(), 100)'

interface ConnectionInternals {
  name: string
  _server: { options: Record<string | symbol, unknown>; connections: { size: number } }
  _setListeners(callback: () => void): void
  connectionReady(): void
  send(code: number, data: string, context?: string | false): void
}

let state: boolean | undefined

/** Installs the patch once; returns whether it is active. */
export function installGreetingDelay(): boolean {
  if (state !== undefined) return state
  const proto = SMTPConnection.prototype as unknown as ConnectionInternals & { init(): void }
  const original = proto.init
  const compatible =
    typeof original === 'function' &&
    original.toString().includes(FINGERPRINT) &&
    typeof proto._setListeners === 'function' &&
    typeof proto.connectionReady === 'function'
  if (!compatible) return (state = false)
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
  return (state = true)
}

/** True if the delay is configurable with this smtp-server version. */
export function greetingDelayPatched(): boolean {
  return installGreetingDelay()
}
