/**
 * `startMxHosts(specs)`: real SMTP servers (smtp-server) standing in for MX hosts, one per
 * loopback address (127.0.0.2, 127.0.0.3 …, or ::1), all on the same free port, since
 * `mxTransport({ port })` connects to one port everywhere. Each records what it received and how
 * (TLS, REQUIRETLS), and can be told to misbehave: greet with `421`, refuse MAIL or chosen
 * recipients, offer STARTTLS with any certificate or with a handshake that always fails
 * (`tls.broken`: TLS 1.0 only, which Node's client refuses), advertise REQUIRETLS.
 *
 * An MX host that is down is an address with no server on the port: connections are refused.
 */
import type { AddressInfo } from 'node:net'
import { SMTPServer, type SMTPServerOptions } from 'smtp-server'
import { GREETING_DELAY, installGreetingDelay } from '../../../src/ingress/smtp-server/greeting-delay.js'

export interface MxHostSpec {
  readonly ip: string
  /** Offer STARTTLS with this certificate; `broken`: every handshake fails. */
  readonly tls?: { readonly key: string; readonly cert: string; readonly broken?: boolean }
  /** Greet every connection with this reply instead of 220, e.g. `'421 4.3.2 Busy'`, and close. */
  readonly greeting?: string
  readonly mail?: (from: string) => string | undefined
  readonly rcpt?: (to: string) => string | undefined
  /** Advertise REQUIRETLS (after STARTTLS). */
  readonly requireTls?: boolean
  /** Called when a message's content starts to arrive. */
  readonly onData?: () => void
}

export interface ReceivedMessage {
  readonly mailFrom: string
  readonly rcptTo: readonly string[]
  readonly raw: Buffer
  /** The session was encrypted. */
  readonly secure: boolean
  /** MAIL FROM carried REQUIRETLS. */
  readonly requireTls: boolean
}

export interface MxHostServer {
  readonly ip: string
  readonly messages: ReceivedMessage[]
  /** TCP connections accepted so far. */
  connections: number
}

export interface MxHosts {
  readonly port: number
  host(ip: string): MxHostServer
  close(): Promise<void>
}

function replyError(reply: string): Error & { responseCode: number } {
  const match = /^(\d{3})\s+(.*)$/.exec(reply)
  return Object.assign(new Error(match ? match[2] : reply), { responseCode: match ? Number(match[1]) : 550 })
}

function server(spec: MxHostSpec, record: MxHostServer): SMTPServer {
  installGreetingDelay()
  const tls = spec.tls
  const options: SMTPServerOptions & { [GREETING_DELAY]: number } = {
    [GREETING_DELAY]: 0,
    authOptional: true,
    disabledCommands: tls ? ['AUTH'] : ['AUTH', 'STARTTLS'],
    ...(tls ? { key: tls.key, cert: tls.cert } : {}),
    ...(tls?.broken ? { minVersion: 'TLSv1', maxVersion: 'TLSv1' } : {}),
    hideREQUIRETLS: !spec.requireTls,
    disableReverseLookup: true,
    logger: false,
    onConnect(_session, callback) {
      record.connections++
      callback(spec.greeting ? replyError(spec.greeting) : undefined)
    },
    onMailFrom(address, _session, callback) {
      const reply = spec.mail?.(address.address)
      callback(reply ? replyError(reply) : undefined)
    },
    onRcptTo(address, _session, callback) {
      const reply = spec.rcpt?.(address.address)
      callback(reply ? replyError(reply) : undefined)
    },
    onData(stream, session, callback) {
      spec.onData?.()
      const chunks: Buffer[] = []
      stream.on('data', (chunk: Buffer) => chunks.push(chunk))
      stream.on('error', () => {})
      stream.on('end', () => {
        record.messages.push({
          mailFrom: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          rcptTo: session.envelope.rcptTo.map((r) => r.address),
          raw: Buffer.concat(chunks),
          secure: session.secure,
          requireTls: (session.envelope as { requireTLS?: boolean }).requireTLS === true,
        })
        callback(null, `Ok: ${record.ip} message ${record.messages.length}`)
      })
    },
  }
  const smtp = new SMTPServer(options)
  smtp.on('error', () => {})
  return smtp
}

async function listen(smtp: SMTPServer, ip: string, port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const onError = () => resolve(undefined)
    smtp.server.once('error', onError)
    smtp.listen(port, ip, () => {
      smtp.server.removeListener('error', onError)
      resolve((smtp.server.address() as AddressInfo).port)
    })
  })
}

const closeServer = (smtp: SMTPServer) =>
  new Promise<void>((resolve) => {
    smtp.close(() => resolve())
    for (const conn of (smtp as unknown as { connections: Set<{ close(): void }> }).connections) conn.close()
  })

/**
 * Starts one server per spec on a common free port (see the file header).
 *
 * @example
 * ```ts
 * const hosts = await startMxHosts([{ ip: '127.0.0.2' }, { ip: '127.0.0.3', greeting: '421 4.3.2 Busy' }])
 * const transport = mxTransport({ dns: dnsServer.address, port: hosts.port, allowNetworks: ['127.0.0.0/8'] })
 * ```
 */
export async function startMxHosts(specs: readonly MxHostSpec[]): Promise<MxHosts> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const records = specs.map((spec): MxHostServer => ({ ip: spec.ip, messages: [], connections: 0 }))
    const servers = specs.map((spec, i) => server(spec, records[i]!))
    const port = await listen(servers[0]!, specs[0]!.ip, 0)
    if (port === undefined) throw new Error(`cannot listen on ${specs[0]!.ip}`)
    const rest = await Promise.all(servers.slice(1).map((s, i) => listen(s, specs[i + 1]!.ip, port)))
    if (rest.every((p) => p === port)) {
      return {
        port,
        host(ip) {
          const found = records.find((r) => r.ip === ip)
          if (!found) throw new Error(`no MX stand-in on ${ip}`)
          return found
        },
        close: async () => {
          await Promise.all(servers.map(closeServer))
        },
      }
    }
    await Promise.all(servers.map(closeServer))
  }
  throw new Error('startMxHosts: no port free on every address')
}
