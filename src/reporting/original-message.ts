/**
 * The header of the original message a report is about, so that the relay can match the report
 * to what it sent: a message/rfc822 part (the whole original), a text/rfc822-headers part (its
 * header only), or, in plain-text bounces, the copy of it after the notice.
 */
import type { HeaderBlock } from '../core/body/header-block.js'
import { headerSection } from './header-section.js'
import type { Report, ReportPart } from './message-parts.js'

/** Types of parts that carry the original message or its header. */
export const ORIGINAL_TYPES: ReadonlySet<string> = new Set([
  'message/rfc822',
  'message/global',
  'text/rfc822-headers',
  'text/rfc822-header',
  'message/rfc822-headers',
  'message/global-headers',
])

/** The part holding the original, if any (the first non-empty one). */
function originalPart(report: Report): ReportPart | undefined {
  return report.parts.find((p) => ORIGINAL_TYPES.has(p.type) && p.body.some((b) => b !== 0x0a && b !== 0x0d && b !== 0x20))
}

/**
 * The original's header section: from its part, else from the text that follows a bounce's notice.
 *
 * @example
 * ```ts
 * const report = await readReport(raw)
 * originalHeader(report, reportText(report).returned)?.get('subject')
 * ```
 */
export function originalHeader(report: Report, returnedText = ''): HeaderBlock | undefined {
  const part = originalPart(report)
  if (part) return headerSection(withoutLeadingBlankLines(part.body))
  const start = returnedText.search(/^[\w-]+:/m)
  if (start < 0) return undefined
  const header = headerSection(Buffer.from(returnedText.slice(start), 'utf8'))
  return header.empty ? undefined : header
}

/**
 * The Message-ID of the original, verbatim, or `undefined` when it has none.
 *
 * @example
 * ```ts
 * originalMessageId(await readReport(arf))  // '<20260105091158.b64.6@acme.example>'
 * ```
 */
export function originalMessageId(report: Report, returnedText?: string): string | undefined {
  return originalHeader(report, returnedText)?.get('message-id') || undefined
}

function withoutLeadingBlankLines(body: Buffer): Buffer {
  let start = 0
  while (start < body.length && (body[start] === 0x0a || body[start] === 0x0d || body[start] === 0x20 || body[start] === 0x09)) start++
  return body.subarray(start)
}
