/**
 * The PROXY protocol (HAProxy, version 1 text and version 2 binary): the header a load balancer
 * sends before the client's first byte, naming the client it accepted the connection from.
 * smtp-server reads version 1 only and trusts exact addresses; the relay's listener reads both
 * versions itself, from peers in configured networks only, so that the client address every
 * part of the relay sees (admission limits, stages, rate limits, logs, Received) is the real one.
 *
 * A header is read within a deadline and a size bound, and refused if malformed: a source that
 * is not an IP address of the announced family, a port out of range, an unknown version or
 * command. `LOCAL` (v2) and `UNKNOWN` (v1), a balancer's own health checks, keep the addresses
 * of the TCP connection. Bytes after the header stay on the socket for SMTP.
 */
import { isIPv4, isIPv6, type Socket } from 'node:net'

/** Where a proxied connection really comes from, and the address it reached at the balancer. */
export interface ProxyHeader {
  readonly version: 1 | 2
  /** Undefined for a `LOCAL` / `UNKNOWN` header: the connection is the balancer's own. */
  readonly source?: { readonly address: string; readonly port: number }
  readonly destination?: { readonly address: string; readonly port: number }
}

const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a])
const V1_PREFIX = Buffer.from('PROXY ')
/** The longest v1 line (RFC-like spec: 107 bytes with CRLF). */
const V1_MAX = 107
/** v2 headers carry TLVs after the addresses; more than this is not a balancer's header. */
const V2_MAX = 16 + 2048

class ProxyHeaderError extends Error {
  override name = 'ProxyHeaderError'
}

const invalid = (why: string) => new ProxyHeaderError(`invalid PROXY header: ${why}`)

function port(text: string): number {
  if (!/^\d{1,5}$/.test(text) || Number(text) > 65535) throw invalid(`bad port ${JSON.stringify(text.slice(0, 8))}`)
  return Number(text)
}

/** Parses a v1 line (without CRLF). */
function parseV1(line: string): ProxyHeader {
  const [, family, src, dst, sport, dport, extra] = line.split(' ')
  if (family === 'UNKNOWN') return { version: 1 }
  const valid = family === 'TCP4' ? isIPv4 : family === 'TCP6' ? isIPv6 : undefined
  if (!valid || extra !== undefined || !src || !dst || !sport || !dport) throw invalid('expected PROXY TCP4|TCP6 source destination sport dport')
  if (!valid(src) || !valid(dst)) throw invalid(`not ${family} addresses`)
  return { version: 1, source: { address: src, port: port(sport) }, destination: { address: dst, port: port(dport) } }
}

/** Parses a whole v2 header. */
function parseV2(header: Buffer): ProxyHeader {
  const versionCommand = header[12]!
  if (versionCommand >> 4 !== 2) throw invalid(`version ${versionCommand >> 4}`)
  const command = versionCommand & 0x0f
  if (command === 0) return { version: 2 } // LOCAL
  if (command !== 1) throw invalid(`command ${command}`)
  const family = header[13]!
  const body = header.subarray(16)
  if (family === 0x11 && body.length >= 12) {
    const ip = (at: number) => Array.from(body.subarray(at, at + 4)).join('.')
    return { version: 2, source: { address: ip(0), port: body.readUInt16BE(8) }, destination: { address: ip(4), port: body.readUInt16BE(10) } }
  }
  if (family === 0x21 && body.length >= 36) {
    const ip = (at: number) => ipv6(body.subarray(at, at + 16))
    return { version: 2, source: { address: ip(0), port: body.readUInt16BE(32) }, destination: { address: ip(16), port: body.readUInt16BE(34) } }
  }
  if (family === 0x00) return { version: 2 } // UNSPEC: the receiver keeps the connection's addresses
  throw invalid(`address family 0x${family.toString(16)} is not TCP over IPv4 or IPv6`)
}

function ipv6(bytes: Buffer): string {
  // An IPv4-mapped address reads as Node writes it.
  if (bytes.subarray(0, 10).every((b) => b === 0) && bytes.readUInt16BE(10) === 0xffff) return `::ffff:${Array.from(bytes.subarray(12)).join('.')}`
  const groups: string[] = []
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16))
  // The canonical short form (longest run of zero groups as ::), as Node reports addresses.
  const text = groups.join(':')
  const runs = [...text.matchAll(/(?:^|:)0(?::0)+(?::|$)/g)].sort((a, b) => b[0].length - a[0].length)
  const run = runs[0]
  return run ? `${text.slice(0, run.index)}::${text.slice(run.index + run[0].length)}` : text
}

/** How far `buffer` is into a header: a whole one (its length), not yet, or not a PROXY header at all. */
function headerLength(buffer: Buffer): number | 'more' {
  const v2 = V2_SIGNATURE.subarray(0, Math.min(buffer.length, 12))
  if (buffer.subarray(0, v2.length).equals(v2)) {
    if (buffer.length < 16) return 'more'
    const total = 16 + buffer.readUInt16BE(14)
    if (total > V2_MAX) throw invalid(`${total} bytes`)
    return buffer.length >= total ? total : 'more'
  }
  const v1 = V1_PREFIX.subarray(0, Math.min(buffer.length, V1_PREFIX.length))
  if (!buffer.subarray(0, v1.length).equals(v1)) throw invalid('neither PROXY v1 nor v2')
  const lf = buffer.indexOf(0x0a)
  if (lf < 0) {
    if (buffer.length >= V1_MAX) throw invalid('v1 line too long')
    return 'more'
  }
  if (lf + 1 > V1_MAX || buffer[lf - 1] !== 0x0d) throw invalid('v1 line too long or not ended by CRLF')
  return lf + 1
}

/**
 * Reads the PROXY header from a fresh (paused) socket: resolves with it, leaving whatever follows
 * on the socket; rejects if the header is malformed, the peer closes, or `timeout` ms pass.
 */
export function readProxyHeader(socket: Socket, timeout: number): Promise<ProxyHeader> {
  return new Promise((resolve, reject) => {
    let buffer: Buffer = Buffer.alloc(0)
    const finish = (err: Error | undefined, header?: ProxyHeader) => {
      clearTimeout(timer)
      socket.off('readable', onReadable)
      socket.off('end', onEnd)
      socket.off('close', onEnd)
      if (err) reject(err)
      else resolve(header!)
    }
    const onEnd = () => finish(invalid('the connection closed before the header was complete'))
    const onReadable = () => {
      for (let chunk = socket.read() as Buffer | null; chunk !== null; chunk = socket.read() as Buffer | null) {
        buffer = buffer.length ? Buffer.concat([buffer, chunk]) : chunk
        let length: number | 'more'
        try {
          length = headerLength(buffer)
          if (length === 'more') continue
          const header = buffer[0] === 0x0d ? parseV2(buffer.subarray(0, length)) : parseV1(buffer.toString('latin1', 0, length - 2))
          if (length < buffer.length) socket.unshift(buffer.subarray(length))
          return finish(undefined, header)
        } catch (err) {
          return finish(err as Error)
        }
      }
    }
    const timer = setTimeout(() => finish(invalid(`no complete header within ${timeout} ms`)), timeout).unref()
    socket.on('readable', onReadable)
    socket.once('end', onEnd)
    socket.once('close', onEnd)
  })
}
