/**
 * The DNS wire format, through `dns-packet`: building a query, deciding whether a reply belongs
 * to it, and turning a reply into a typed {@link DnsAnswer}.
 *
 * Queries ask for recursion (RD), set the AD bit (RFC 6840 §5.7: "tell me whether you
 * validated") and carry EDNS(0) with the DO bit (RFC 3225) and a 1232-octet UDP payload size
 * (the DNS flag day 2020 value, which avoids IP fragmentation). A reply is accepted only if it
 * is a response to a standard query with our id and exactly our question; anything else on the
 * socket is ignored, which is how spoofed and stale replies are dropped.
 */

import type { Answer, DecodedPacket } from 'dns-packet'
import dnsPacket from 'dns-packet'
import { DnsError, rcodeError } from './dns-errors.js'
import type { DnsAnswer, DnsRecordMap, DnsRecordType, MxRecord, TlsaRecord, TxtRecord } from './dns-types.js'

/** The UDP payload size we advertise. */
export const UDP_PAYLOAD_SIZE = 1232
/** The longest CNAME chain followed inside one answer. */
const MAX_CNAMES = 8
const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/

/** A decoded reply with the header fields dns-packet adds but does not declare. */
export type Reply = DecodedPacket & { rcode?: string; opcode?: string }

/**
 * A name in the form used for questions, comparisons and cache keys: lower case, no trailing
 * dot. Throws `ERR_DNS_INVALID_NAME` unless it is letters, digits, hyphens and underscores in
 * labels of 1–63 octets, 253 octets at most (A-labels for internationalised names).
 */
export function canonicalName(name: string, type: string): string {
  const lower = name.toLowerCase().replace(/\.$/, '')
  if (lower.length === 0 || lower.length > 253 || !lower.split('.').every((label) => LABEL.test(label))) {
    throw new DnsError('ERR_DNS_INVALID_NAME', name, type, 'not a valid domain name')
  }
  return lower
}

/** The bytes of a query for `name` (already canonical) and `type` with the given id. */
export function encodeQuery(id: number, name: string, type: DnsRecordType): Buffer {
  return dnsPacket.encode({
    type: 'query',
    id,
    flags: dnsPacket.RECURSION_DESIRED | dnsPacket.AUTHENTIC_DATA,
    questions: [{ type, name, class: 'IN' }],
    additionals: [
      {
        type: 'OPT',
        name: '.',
        udpPayloadSize: UDP_PAYLOAD_SIZE,
        extendedRcode: 0,
        ednsVersion: 0,
        flags: dnsPacket.DNSSEC_OK,
        flag_do: true,
        options: [],
      },
    ],
  })
}

/** The reply in `bytes` if it answers our query (`id`, `name`, `type`), else undefined. */
export function matchReply(bytes: Buffer, id: number, name: string, type: DnsRecordType): Reply | undefined {
  if (bytes.length < 12 || bytes.readUInt16BE(0) !== id) return undefined
  let reply: Reply
  try {
    reply = dnsPacket.decode(bytes) as Reply
  } catch {
    return undefined
  }
  const question = reply.questions?.[0]
  if (!reply.flag_qr || reply.opcode !== 'QUERY' || reply.questions?.length !== 1 || !question) return undefined
  if (question.type !== type || (question.class ?? 'IN') !== 'IN') return undefined
  return question.name.toLowerCase().replace(/\.$/, '') === name ? reply : undefined
}

const lower = (name: string): string => (name === '.' ? '.' : name.toLowerCase().replace(/\.$/, ''))

function convert(type: DnsRecordType, record: Answer): DnsRecordMap[DnsRecordType] {
  const value = record as unknown as { data: unknown }
  switch (type) {
    case 'MX': {
      const data = value.data as { preference?: number; exchange: string }
      return { preference: data.preference ?? 0, exchange: lower(data.exchange) } satisfies MxRecord
    }
    case 'TLSA': {
      const data = value.data as { usage: number; selector: number; matchingType: number; certificate: Buffer }
      return { usage: data.usage, selector: data.selector, matchingType: data.matchingType, data: data.certificate } satisfies TlsaRecord
    }
    case 'TXT': {
      const data = value.data as Buffer | string | Array<Buffer | string>
      const chunks = (Array.isArray(data) ? data : [data]).map((chunk) => chunk.toString())
      return chunks satisfies TxtRecord
    }
    default:
      return value.data as string
  }
}

/** Seconds a negative answer may be kept (RFC 2308 §5): the SOA's TTL, capped by its MINIMUM. */
export function negativeTtl(reply: Reply): number {
  for (const record of reply.authorities ?? []) {
    if (record.type === 'SOA') return Math.min(record.ttl ?? 0, record.data.minimum ?? 0)
  }
  return 0
}

/**
 * The typed answer to `type` at `name` in `reply`, following CNAMEs within the answer section.
 * Throws a `DnsError` for any response code but NOERROR, and for a CNAME chain that loops or is
 * too long.
 */
export function readReply<T extends DnsRecordType>(reply: Reply, name: string, type: T, authenticated: boolean): DnsAnswer<DnsRecordMap[T]> {
  const rcode = reply.rcode ?? 'NOERROR'
  if (rcode !== 'NOERROR') throw rcodeError(rcode, name, type, authenticated)
  const records = reply.answers ?? []
  let owner = name
  let ttl = Number.POSITIVE_INFINITY
  const seen = new Set<string>()
  for (;;) {
    const found = records.filter((r) => r.type === type && lower(r.name) === owner && (r.class ?? 'IN') === 'IN')
    if (found.length > 0) {
      for (const r of found) ttl = Math.min(ttl, (r as { ttl?: number }).ttl ?? 0)
      return { rcode: 'NOERROR', canonicalName: owner, answers: found.map((r) => convert(type, r) as DnsRecordMap[T]), authenticated, ttl }
    }
    const alias = records.find((r) => r.type === 'CNAME' && lower(r.name) === owner)
    if (!alias) break
    seen.add(owner)
    if (seen.size > MAX_CNAMES) throw new DnsError('ERR_DNS_BAD_RESPONSE', name, type, 'CNAME chain too long')
    owner = lower((alias as { data: unknown }).data as string)
    if (seen.has(owner)) throw new DnsError('ERR_DNS_BAD_RESPONSE', name, type, 'CNAME loop')
    ttl = Math.min(ttl, (alias as { ttl?: number }).ttl ?? 0)
  }
  return { rcode: 'NOERROR', canonicalName: owner, answers: [], authenticated, ttl: Math.min(ttl, negativeTtl(reply)) }
}
