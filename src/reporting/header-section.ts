/**
 * Header sections found inside reports: the field groups of a message/delivery-status or
 * message/feedback-report part, and the header of a returned original message. They are parsed
 * with the relay's own HeaderBlock, so folding, field-name case and malformed lines are treated
 * exactly as at ingress; values come back unfolded and trimmed.
 */
import addressparser from 'nodemailer/lib/addressparser'
import { HeaderBlock } from '../core/body/header-block.js'
import { HeaderScanner } from '../core/body/split-header.js'

/**
 * The header section at the start of `raw` (a message, or the body of a headers-only part).
 *
 * @example
 * ```ts
 * headerSection(Buffer.from('Message-ID:\n <a@b>\nTo: x@y\n\nbody')).get('message-id') // '<a@b>'
 * ```
 */
export function headerSection(raw: Buffer): HeaderBlock {
  const scanner = new HeaderScanner()
  const end = scanner.scan(raw) ?? scanner.end(raw)
  return HeaderBlock.parse(raw.subarray(0, end.headEnd), raw.subarray(end.headEnd, end.sepEnd))
}

/**
 * The blank-line separated field groups of a report body (RFC 3464 §2.1: one per-message group,
 * then one group per recipient). A line of only spaces counts as blank: some MTAs write them.
 *
 * @example
 * ```ts
 * fieldGroups(Buffer.from('Reporting-MTA: dns; mx\n\nFinal-Recipient: rfc822; a@b\nAction: failed\n'))
 *   .map((g) => g.get('action'))           // [undefined, 'failed']
 * ```
 */
export function fieldGroups(body: Buffer): HeaderBlock[] {
  return body
    .toString('latin1')
    .split(/\r?\n(?:[ \t]*\r?\n)+/)
    .map((group) => group.replace(/^(?:[ \t]*\r?\n)+/, ''))
    .filter((group) => group.length > 0)
    .map((group) => headerSection(Buffer.from(`${group}\n`, 'latin1')))
    .filter((section) => !section.empty)
}

/**
 * The address in a report field or header value: drops an RFC 3464 address type
 * (`rfc822;`), a display name and angle brackets. `undefined` if nothing address-like is left.
 *
 * @example
 * ```ts
 * addressIn('rfc822; <bob@example.org>')   // 'bob@example.org'
 * ```
 */
export function addressIn(value: string | undefined): string | undefined {
  if (!value) return undefined
  const untyped = value.replace(/^\s*(?:rfc822|utf-8|x-[\w-]+)\s*;\s*/i, '').trim()
  const angled = /<([^<>\s]*@[^<>\s]*)>/.exec(untyped)
  const address = (angled?.[1] ?? untyped.replace(/^<|>$/g, '')).trim()
  return address.length > 0 ? address : undefined
}

/**
 * An address with a dotted domain, in text. The quantifiers are bounded (RFC 5321 limits: 64
 * for the local part, 63 per label) so that a long run of bytes without an `@` costs linear time.
 */
export const ADDRESS = String.raw`[^\s<>()[\],;:"'*@]{1,64}@[^\s<>()[\],;:"'*@.]{1,63}(?:\.[^\s<>()[\],;:"'*@.]{1,63})+`

const WHOLE_ADDRESS = new RegExp(`^${ADDRESS}$`)

/**
 * Every address in an address list such as To or Original-Rcpt-To, in order, without
 * duplicates, read with nodemailer's addressparser (as the relay's address rewriting does), so
 * that an address-like display name is not taken for one. Names without a dotted domain
 * (`<Undisclosed Recipients>`, `redacted@`) are left out.
 *
 * @example
 * ```ts
 * addressesIn('"ann@isp.example" <ann@mail.example>, <Undisclosed Recipients>') // ['ann@mail.example']
 * ```
 */
export function addressesIn(value: string | undefined): string[] {
  if (!value) return []
  return [
    ...new Set(
      addressparser(value, { flatten: true })
        .map((a) => a.address)
        .filter((a) => WHOLE_ADDRESS.test(a)),
    ),
  ]
}
