/**
 * `startDnsServer(zones)`: an authoritative DNS server in Node for the DNS client's tests, on
 * 127.0.0.1 (or ::1) at a free port, over UDP and TCP on the same port, answering from
 * {@link TestZone}s: records, CNAMEs followed within the zones, NXDOMAIN and NODATA with the
 * zone's SOA, REFUSED outside the zones. No DNSSEC; `authenticatedData: true` sets the AD bit in
 * every reply, as a validating resolver would, to test who trusts it.
 *
 * Faults, per query name or for all (`'*'`), change between queries with `setFault()`:
 * `'timeout'` (never answers, UDP or TCP), `'servfail'`, `'refused'`, `'truncate'` (UDP replies
 * empty with TC set; TCP answers in full), `'spoof'` (before the real UDP reply, sends a reply
 * with the wrong id, one with the wrong question, and one from another port, all claiming the
 * name is at 192.0.2.66). UDP replies larger than the query's EDNS size (512 without EDNS) are
 * truncated as a real server would. Every query is logged in `queries`.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram'
import { once } from 'node:events'
import { createServer, type Server, type Socket as TcpSocket } from 'node:net'
import dnsPacket, { type Answer, type DecodedPacket, type Packet } from 'dns-packet'
import { soaLine, type TestZone } from './zones.js'

export type DnsFault = 'timeout' | 'servfail' | 'refused' | 'truncate' | 'spoof'

export interface LoggedQuery {
  transport: 'udp' | 'tcp'
  name: string
  type: string
  id: number
  flags: { rd: boolean; ad: boolean; do: boolean }
}

export interface TestDnsServer {
  readonly host: string
  readonly port: number
  /** `host:port` (`[::1]:port` for IPv6), as the DNS client's `server` option takes it. */
  readonly address: string
  readonly queries: LoggedQuery[]
  /** Sets (or with `undefined` clears) the fault for `name` (lower case, no trailing dot) or for all. */
  setFault(fault: DnsFault | undefined, name?: string): void
  close(): Promise<void>
}

export interface DnsServerOptions {
  host?: '127.0.0.1' | '::1'
  /** Set the AD bit in every reply. */
  authenticatedData?: boolean
}

/** True once `server` listens, false if it failed to (port taken). `events.once` would reject instead. */
const listened = (server: Server): Promise<boolean> =>
  new Promise((resolve) => {
    server.once('listening', () => resolve(true))
    server.once('error', () => resolve(false))
  })

const lower = (name: string) => name.toLowerCase().replace(/\.$/, '')
const inZone = (name: string, origin: string) => name === origin || name.endsWith(`.${origin}`)

/** The answer section, authority section and rcode for a question, from the zones. */
function resolve(zones: readonly TestZone[], qname: string, qtype: string): { rcode: number; answers: Answer[]; authorities: Answer[] } {
  const answers: Answer[] = []
  let name = lower(qname)
  for (let hops = 0; hops < 8; hops++) {
    const zone = zones.filter((z) => inZone(name, lower(z.origin))).sort((x, y) => y.origin.length - x.origin.length)[0]
    if (!zone) return { rcode: answers.length ? 0 : 5, answers, authorities: [] } // REFUSED outside the zones
    const ttl = zone.ttl ?? 300
    const at = zone.records.filter((r) => lower(r.name) === name)
    const soa = (): Answer[] => {
      const [, , , , mname = '', rname = ''] = soaLine(zone).split(' ')
      return [{ type: 'SOA', name: zone.origin, ttl, data: { mname, rname, serial: 1, refresh: 3600, retry: 600, expire: 86400, minimum: ttl } }]
    }
    const matching = at.filter((r) => r.type === qtype)
    if (matching.length > 0) {
      for (const r of matching) answers.push({ type: r.type, name: r.name, ttl: r.ttl ?? ttl, data: r.data } as Answer)
      return { rcode: 0, answers, authorities: [] }
    }
    const alias = at.find((r) => r.type === 'CNAME')
    if (alias && qtype !== 'CNAME') {
      answers.push({ type: 'CNAME', name: alias.name, ttl: alias.ttl ?? ttl, data: alias.data as string })
      name = lower(alias.data as string)
      // A loop is served as found, like an authoritative server does; the client must notice.
      if (answers.some((r) => lower(r.name) === name)) return { rcode: 0, answers, authorities: [] }
      continue
    }
    const exists = name === lower(zone.origin) || zone.records.some((r) => lower(r.name) === name || lower(r.name).endsWith(`.${name}`))
    return { rcode: exists ? 0 : 3, answers, authorities: soa() }
  }
  return { rcode: 2, answers: [], authorities: [] }
}

/**
 * Starts the server (see the file header).
 *
 * @example
 * ```ts
 * const server = await startDnsServer([testZone('example.test', [mx('example.test', 10, 'mx.example.test')])])
 * const dns = createDnsClient({ server: server.address })
 * ```
 */
export async function startDnsServer(zones: readonly TestZone[], options: DnsServerOptions = {}): Promise<TestDnsServer> {
  const host = options.host ?? '127.0.0.1'
  const faults = new Map<string, DnsFault>()
  const queries: LoggedQuery[] = []
  const faultFor = (name: string) => faults.get(lower(name)) ?? faults.get('*')

  function reply(query: DecodedPacket, transport: 'udp' | 'tcp'): Buffer | undefined {
    const question = query.questions?.[0]
    if (!question) return undefined
    const opt = query.additionals?.find((r) => r.type === 'OPT') as { udpPayloadSize?: number; flag_do?: boolean } | undefined
    queries.push({
      transport,
      name: question.name,
      type: question.type,
      id: query.id ?? 0,
      flags: { rd: query.flag_rd, ad: query.flag_ad, do: opt?.flag_do ?? false },
    })
    const fault = faultFor(question.name)
    if (fault === 'timeout') return undefined
    let { rcode, answers, authorities } = resolve(zones, question.name, question.type)
    if (fault === 'servfail' || fault === 'refused')
      ({ rcode, answers, authorities } = { rcode: fault === 'servfail' ? 2 : 5, answers: [], authorities: [] })
    const flags =
      dnsPacket.AUTHORITATIVE_ANSWER | (options.authenticatedData ? dnsPacket.AUTHENTIC_DATA : 0) | (query.flag_rd ? dnsPacket.RECURSION_DESIRED : 0)
    const packet = (tc: boolean, list: Answer[], auth: Answer[]): Packet => ({
      type: 'response',
      id: query.id,
      flags: flags | rcode | (tc ? dnsPacket.TRUNCATED_RESPONSE : 0),
      questions: [question],
      answers: list,
      authorities: auth,
      additionals: opt
        ? [{ type: 'OPT', name: '.', udpPayloadSize: 1232, flags: 0, extendedRcode: 0, ednsVersion: 0, flag_do: false, options: [] }]
        : [],
    })
    let bytes = dnsPacket.encode(packet(false, answers, authorities))
    const limit = opt ? Math.max(512, opt.udpPayloadSize ?? 512) : 512
    if (transport === 'udp' && (fault === 'truncate' || bytes.length > limit)) bytes = dnsPacket.encode(packet(true, [], []))
    return bytes
  }

  function spoof(udp: Socket, query: DecodedPacket, to: RemoteInfo, other: Socket) {
    const question = query.questions![0]!
    const fake = (id: number, name: string): Buffer =>
      dnsPacket.encode({
        type: 'response',
        id,
        flags: dnsPacket.AUTHORITATIVE_ANSWER,
        questions: [{ ...question, name }],
        answers: [{ type: 'A', name, ttl: 300, data: '192.0.2.66' }],
      })
    udp.send(fake(((query.id ?? 0) + 1) & 0xffff, question.name), to.port, to.address)
    udp.send(fake(query.id ?? 0, `evil.${question.name}`), to.port, to.address)
    other.send(fake(query.id ?? 0, question.name), to.port, to.address)
  }

  // UDP first on port 0, then TCP on the same port; try again if that port is taken for TCP.
  let udp: Socket | undefined
  let tcp: Server | undefined
  for (let attempt = 0; attempt < 10 && !tcp; attempt++) {
    const socket = createSocket(host === '::1' ? 'udp6' : 'udp4')
    socket.bind(0, host)
    await once(socket, 'listening')
    const server = createServer()
    server.listen(socket.address().port, host)
    const ok = await listened(server)
    if (ok) (udp = socket), (tcp = server)
    else socket.close()
  }
  if (!udp || !tcp) throw new Error('startDnsServer: no free port for UDP and TCP together')
  const spoofer = createSocket(host === '::1' ? 'udp6' : 'udp4')
  spoofer.bind(0, host)
  await once(spoofer, 'listening')

  const udpSocket = udp
  udpSocket.on('message', (bytes, from) => {
    let query: DecodedPacket
    try {
      query = dnsPacket.decode(bytes)
    } catch {
      return
    }
    const answer = reply(query, 'udp')
    if (!answer) return
    if (faultFor(query.questions?.[0]?.name ?? '') === 'spoof') spoof(udpSocket, query, from, spoofer)
    udpSocket.send(answer, from.port, from.address)
  })
  const connections = new Set<TcpSocket>()
  tcp.on('connection', (socket) => {
    connections.add(socket)
    socket.on('close', () => connections.delete(socket))
    socket.on('error', () => {})
    let buffer = Buffer.alloc(0)
    socket.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk])
      while (buffer.length >= 2 && buffer.length >= 2 + buffer.readUInt16BE(0)) {
        const message = buffer.subarray(2, 2 + buffer.readUInt16BE(0))
        buffer = buffer.subarray(2 + message.length)
        let query: DecodedPacket
        try {
          query = dnsPacket.decode(message)
        } catch {
          socket.destroy()
          return
        }
        const answer = reply(query, 'tcp')
        if (answer) socket.write(Buffer.concat([Buffer.from([answer.length >> 8, answer.length & 255]), answer]))
      }
    })
  })

  const port = udpSocket.address().port
  const tcpServer = tcp
  let closed = false
  return {
    host,
    port,
    address: host === '::1' ? `[::1]:${port}` : `${host}:${port}`,
    queries,
    setFault(fault, name = '*') {
      if (fault) faults.set(lower(name), fault)
      else faults.delete(lower(name))
    },
    async close() {
      if (closed) return
      closed = true
      for (const socket of connections) socket.destroy()
      await Promise.all([
        new Promise<void>((done) => tcpServer.close(() => done())),
        new Promise<void>((done) => udpSocket.close(() => done())),
        new Promise<void>((done) => spoofer.close(() => done())),
      ])
    },
  }
}
