/** Starting a relay for a test: loopback, port 0, greeting at once, reverse lookups off. */
import { createTransport, type Transporter } from 'nodemailer'
import { createRelay, type Relay, RelayError, type RelayOptions, type Stage } from '../../src/index.js'

/** Grants relay permission for every recipient: the one-line policy the core tests use. */
export const allowAll: Stage = { name: 'allow-all', grantsRelay: true, rcptTo: () => ({ relay: true }) }

/** Grants relay permission for recipients in the given domains. */
export function allowDomains(...domains: string[]): Stage {
  return {
    name: 'allow-domains',
    grantsRelay: true,
    rcptTo: (_tx, to) => (domains.some((d) => to.address.toLowerCase().endsWith(`@${d}`)) ? { relay: true } : undefined),
  }
}

export interface TestRelay {
  relay: Relay
  port: number
  /** A nodemailer client for this relay (plain text, no pooling). */
  client(options?: Record<string, unknown>): Transporter
  close(): Promise<void>
}

export async function startRelay(
  options: (Partial<RelayOptions> & Pick<RelayOptions, 'transport'>) | (Partial<RelayOptions> & Pick<RelayOptions, 'pipeline'>),
): Promise<TestRelay> {
  const relay = createRelay({
    hostname: 'relay.test',
    listeners: [{ port: 0, mode: 'submission' }],
    ...options,
  } as RelayOptions)
  const [address] = await relay.listen()
  const clients: Transporter[] = []
  return {
    relay,
    port: address!.port,
    client(extra = {}) {
      const client = createTransport({ host: '127.0.0.1', port: address!.port, secure: false, ignoreTLS: true, ...extra })
      clients.push(client)
      return client
    },
    async close() {
      for (const c of clients) c.close()
      await relay.close({ timeout: 5000 })
    },
  }
}

/** What nodemailer puts on a refused send: the reply line the client saw. */
export async function refusal(promise: Promise<unknown>): Promise<{ response: string; responseCode: number }> {
  try {
    await promise
  } catch (err) {
    const e = err as { response?: string; responseCode?: number }
    return { response: String(e.response), responseCode: Number(e.responseCode) }
  }
  throw new Error('expected the send to be refused')
}

/** The RelayError `fn` throws (a chain refused when it is built). */
export function relayError(fn: () => unknown): RelayError {
  try {
    fn()
  } catch (err) {
    if (err instanceof RelayError) return err
    throw err
  }
  throw new Error('expected a RelayError')
}
