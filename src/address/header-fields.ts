/**
 * Rewriting the addresses in an address header field (From, To, Cc, Reply-To, Sender) while
 * keeping everything else byte for byte: display names (RFC 2047 encoded words included),
 * comments, quoting and folding. nodemailer's addressparser says which addresses the field
 * holds; a small scanner that skips quoted strings and comments finds where each addr-spec
 * stands, and only those spans are replaced. If the two disagree (a malformed field), the field
 * is rebuilt from the parser's result, display names kept as they were written.
 */
import addressparser, { type Address as ParsedAddress } from 'nodemailer/lib/addressparser'

/** A new address for an old one, or `undefined` to keep it. */
export type AddressRewriter = (address: string) => Promise<string | undefined>

/** The field value with its addresses rewritten, or `undefined` if nothing changed. */
export async function rewriteAddressField(value: string, rewrite: AddressRewriter): Promise<string | undefined> {
  const parsed = addressparser(value.replace(/\r\n(?=[ \t])/g, ''))
  const addresses = flatten(parsed)
  const replacements = new Map<string, string>()
  for (const address of new Set(addresses)) {
    const next = await rewrite(address)
    if (next !== undefined && next !== address) replacements.set(address, next)
  }
  if (!replacements.size) return undefined
  const spans = locate(value)
  const found = spans.map(([start, end]) => value.slice(start, end).replace(/\s+/g, ''))
  if (found.length !== addresses.length || found.some((f, i) => f.toLowerCase() !== addresses[i]!.toLowerCase())) {
    return format(parsed, replacements)
  }
  let out = value
  for (let i = spans.length - 1; i >= 0; i--) {
    const next = replacements.get(addresses[i]!)
    if (next) out = out.slice(0, spans[i]![0]) + next + out.slice(spans[i]![1])
  }
  return out
}

function flatten(list: readonly ParsedAddress[]): string[] {
  return list.flatMap((a) => (a.group ? flatten(a.group) : a.address ? [a.address] : []))
}

/** Spans `[start, end)` of the addr-specs in a field value, in order. */
function locate(value: string): Array<[number, number]> {
  const spans: Array<[number, number]> = []
  let angle: [number, number] | undefined
  let first = -1
  let last = -1
  const endMailbox = () => {
    if (angle) spans.push(angle)
    else if (first >= 0 && value.slice(first, last).includes('@')) spans.push([first, last])
    angle = undefined
    first = last = -1
  }
  const token = (start: number, end: number) => {
    if (first < 0) first = start
    last = end
  }
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!
    if (c === '"' || c === '[') {
      const end = closing(value, i, c === '"' ? '"' : ']')
      token(i, end)
      i = end - 1
    } else if (c === '(') {
      i = closing(value, i, ')') - 1
    } else if (c === '<') {
      const close = value.indexOf('>', i)
      let start = i + 1
      const end = close < 0 ? value.length : close
      // An obsolete source route (`<@a.example,@b.example:user@c.example>`) is not part of the address.
      const route = value.slice(start, end).trimStart().startsWith('@') ? value.lastIndexOf(':', end) : -1
      if (route > start) start = route + 1
      angle = trimSpan(value, start, end)
      i = end
    } else if (c === ',' || c === ';') {
      endMailbox()
    } else if (c === ':') {
      first = last = -1 // a group's display name
    } else if (!/\s/.test(c)) {
      token(i, i + 1)
    }
  }
  endMailbox()
  return spans
}

/** The index after the character that closes the construct opened at `start` (quotes and comments may hold escapes; comments nest). */
function closing(value: string, start: number, close: string): number {
  let depth = 0
  for (let i = start + 1; i < value.length; i++) {
    const c = value[i]
    if (c === '\\') i++
    else if (close === ')' && c === '(') depth++
    else if (c === close && depth-- === 0) return i + 1
  }
  return value.length
}

function trimSpan(value: string, start: number, end: number): [number, number] {
  while (start < end && /\s/.test(value[start]!)) start++
  while (end > start && /\s/.test(value[end - 1]!)) end--
  return [start, end]
}

/** Rebuilds a field from parsed addresses. Names are written as parsed: encoded words stay encoded. */
function format(list: readonly ParsedAddress[], replacements: ReadonlyMap<string, string>): string {
  return list
    .map((a) => {
      if (a.group) return `${phrase(a.name)}: ${format(a.group, replacements)};`
      const address = replacements.get(a.address) ?? a.address
      return a.name ? `${phrase(a.name)} <${address}>` : address
    })
    .join(', ')
}

function phrase(name: string): string {
  if (
    /^(?:[\w!#$%&'*+\-/=?^`{|}~.]+|=\?[^?\s]+\?[bqBQ]\?[^?\s]*\?=)(?:\s+(?:[\w!#$%&'*+\-/=?^`{|}~.]+|=\?[^?\s]+\?[bqBQ]\?[^?\s]*\?=))*$/u.test(name)
  )
    return name
  return `"${name.replace(/[\\"]/g, '\\$&')}"`
}
