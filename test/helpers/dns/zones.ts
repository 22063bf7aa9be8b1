/**
 * Test zones as plain data, shared by the Node authoritative server (`startDnsServer`) and the
 * validating resolver (`startValidatingResolver`), with small constructors so a test reads like
 * a zone file:
 *
 * ```ts
 * const zone = testZone('example.test', [mx('example.test', 10, 'mx.example.test'), a('mx.example.test', '127.0.0.1')])
 * ```
 *
 * Names are absolute, written without the trailing dot. SOA and NS records are added by the
 * servers. `zoneFileText()` renders a zone in RFC 1035 master-file syntax for the DNSSEC tools.
 */

/** The record types the test servers serve. */
export type TestRecordType = 'MX' | 'A' | 'AAAA' | 'TXT' | 'TLSA' | 'CNAME'

/** The data of each record type, in dns-packet's shape. */
export interface TestRecordData {
  MX: { preference: number; exchange: string }
  A: string
  AAAA: string
  TXT: string[]
  TLSA: { usage: number; selector: number; matchingType: number; certificate: Buffer }
  CNAME: string
}

export type TestRecord = {
  [K in TestRecordType]: { name: string; type: K; ttl?: number; data: TestRecordData[K] }
}[TestRecordType]

/** How the validating resolver's harness treats a zone (the plain server ignores it). */
export type TestZoneSecurity = 'signed' | 'unsigned' | 'expired'

export interface TestZone {
  /** The apex, e.g. `secure.test`. */
  origin: string
  records: TestRecord[]
  /** Default TTL of records without one, and the SOA's negative TTL. Default 300. */
  ttl?: number
  /** `'signed'` (default): signed, with a DS in the parent; `'unsigned'`: an insecure delegation; `'expired'`: signatures expired a long time ago (DNSSEC-bogus). */
  security?: TestZoneSecurity
}

export const testZone = (origin: string, records: TestRecord[], options: Omit<TestZone, 'origin' | 'records'> = {}): TestZone => ({
  origin,
  records,
  ...options,
})

export const mx = (name: string, preference: number, exchange: string, ttl?: number): TestRecord => ({
  name,
  type: 'MX',
  ttl,
  data: { preference, exchange },
})
export const a = (name: string, address: string, ttl?: number): TestRecord => ({ name, type: 'A', ttl, data: address })
export const aaaa = (name: string, address: string, ttl?: number): TestRecord => ({ name, type: 'AAAA', ttl, data: address })
export const txt = (name: string, text: string | string[], ttl?: number): TestRecord => ({
  name,
  type: 'TXT',
  ttl,
  data: Array.isArray(text) ? text : [text],
})
export const cname = (name: string, target: string, ttl?: number): TestRecord => ({ name, type: 'CNAME', ttl, data: target })
export const tlsa = (name: string, usage: number, selector: number, matchingType: number, data: Buffer | string, ttl?: number): TestRecord => ({
  name,
  type: 'TLSA',
  ttl,
  data: { usage, selector, matchingType, certificate: typeof data === 'string' ? Buffer.from(data, 'hex') : data },
})
/** RFC 7505: the domain accepts no mail. */
export const nullMx = (name: string, ttl?: number): TestRecord => mx(name, 0, '.', ttl)

const fqdn = (name: string): string => (name === '.' ? '.' : `${name.replace(/\.$/, '')}.`)
const quoted = (text: string): string => `"${text.replace(/["\\]/g, (c) => `\\${c}`)}"`

function rdata(record: TestRecord): string {
  switch (record.type) {
    case 'MX':
      return `${record.data.preference} ${fqdn(record.data.exchange)}`
    case 'TXT':
      return record.data.map(quoted).join(' ')
    case 'TLSA':
      return `${record.data.usage} ${record.data.selector} ${record.data.matchingType} ${record.data.certificate.toString('hex')}`
    case 'CNAME':
      return fqdn(record.data)
    default:
      return record.data
  }
}

/** The SOA every test zone gets; `ns.<origin>` is its name server. */
export function soaLine(zone: TestZone): string {
  const ttl = zone.ttl ?? 300
  return `${fqdn(zone.origin)} ${ttl} IN SOA ns.${fqdn(zone.origin)} hostmaster.${fqdn(zone.origin)} 1 3600 600 86400 ${ttl}`
}

/** The zone as master-file text (SOA, NS, the records, and `extra` lines such as delegations). */
export function zoneFileText(zone: TestZone, extra: readonly string[] = []): string {
  const ttl = zone.ttl ?? 300
  const lines = [soaLine(zone), `${fqdn(zone.origin)} ${ttl} IN NS ns.${fqdn(zone.origin)}`, `ns.${fqdn(zone.origin)} ${ttl} IN A 127.0.0.1`]
  for (const record of zone.records) lines.push(`${fqdn(record.name)} ${record.ttl ?? ttl} IN ${record.type} ${rdata(record)}`)
  return [...lines, ...extra, ''].join('\n')
}
