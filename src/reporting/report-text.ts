/**
 * The human-readable text of a report, and where in it the returned original begins. Plain-text
 * bounces (Exim, qmail, Gmail, Exchange ...) and the notes in front of a DSN are what a person
 * would read; the copy of the original message that follows them must not be mistaken for the
 * reason (its own text may say anything), but its header holds the original Message-ID.
 */
import type { Report } from './message-parts.js'

/** Types of parts that carry headers of the original, not text of the report. */
const HEADER_TYPES = new Set(['text/rfc822-headers', 'text/rfc822-header'])

/**
 * Lines that introduce the returned original (or its header) in plain-text bounces, from the
 * wordings of sendmail, Exim, qmail, Postfix, Gmail, Lotus Notes, DragonFly, MXLogic and others.
 */
const ORIGINAL_MARKER = new RegExp(
  [
    `copy of (?:the |your )?(?:original )?(?:message|mail)`,
    String.raw`original (?:message|mail)(?: (?:follows|headers?|info|below)|\s*:|\s*-+\s*$)`,
    String.raw`^[ \t]*-+ *original (?:message|mail)`,
    `headers? of the original message (?:is |are )?follow`,
    `unsent message follows`,
    String.raw`^[ \t]*-+ *returned message`,
    `message headers follow`,
    `original mail as follows`,
    `attachment contains the original`,
  ].join('|'),
  'im',
)

/** A header field at the start of a line: the original begins here even without a marker. */
const HEADER_LINE = /^(?:Received|Return-Path|DKIM-Signature|ARC-Seal|X-Google-Smtp-Source|Authentication-Results):/im

/** The report's text split where the returned original starts. */
export interface ReportText {
  /** What the reporting MTA wrote: notices, reasons, transcripts. */
  readonly notice: string
  /** The rest: the returned original (or its header), possibly empty. */
  readonly returned: string
}

/**
 * The text of the report's text parts (HTML reduced to text when there is no plain text), split at the original.
 *
 * @example
 * ```ts
 * const { notice, returned } = reportText(await readReport(qmailBounce))
 * // notice: "Hi. This is the qmail-send program ... <bob@example.org>: ...", returned: "--- Below this line is a copy ..."
 * ```
 */
export function reportText(report: Report): ReportText {
  const texts = report.parts.filter((p) => p.type.startsWith('text/') && !HEADER_TYPES.has(p.type))
  const plain = texts.filter((p) => p.type !== 'text/html')
  const text = (plain.length ? plain.map((p) => p.text) : texts.map((p) => htmlToText(p.text))).join('\n').replace(/\r\n?/g, '\n')
  const marker = ORIGINAL_MARKER.exec(text)
  const header = HEADER_LINE.exec(text)
  const cut = Math.min(marker ? lineStart(text, marker.index) : text.length, header ? header.index : text.length)
  return { notice: text.slice(0, cut), returned: text.slice(cut) }
}

/** `html` without the named elements and their content; an element left open runs to the end. */
function withoutElements(html: string, names: readonly string[]): string {
  const lower = html.toLowerCase()
  // The next opening tag of each name, looked up again only once passed: linear overall.
  const next = new Map(names.map((n) => [n, lower.indexOf(`<${n}`)]))
  let out = ''
  let at = 0
  for (;;) {
    for (const [n, i] of next) if (i >= 0 && i < at) next.set(n, lower.indexOf(`<${n}`, at))
    const open = [...next].filter(([, i]) => i >= 0).sort((a, b) => a[1] - b[1])[0]
    if (!open) return out + html.slice(at)
    const [name, start] = open
    const close = lower.indexOf(`</${name}`, start)
    out += html.slice(at, start)
    if (close < 0) return out
    const end = lower.indexOf('>', close)
    at = end < 0 ? html.length : end + 1
  }
}

function lineStart(text: string, index: number): number {
  return text.lastIndexOf('\n', index) + 1
}

/**
 * Enough of HTML to text for a bounce notice: style, script and head dropped, tags out, line
 * breaks kept, common entities decoded. Linear in the input, however broken the markup.
 */
function htmlToText(html: string): string {
  return withoutElements(html, ['style', 'script', 'head'])
    .replace(/<br\s*\/?>|<\/(?:p|div|tr|li|h\d|table)\s*>/gi, '\n')
    .replace(/<[^<>]*>/g, '')
    .replace(/&nbsp;/gi, ' ')
    .replace(/&lt;/gi, '<')
    .replace(/&gt;/gi, '>')
    .replace(/&quot;/gi, '"')
    .replace(/&#(\d+);/g, (_, n: string) => String.fromCodePoint(Number(n)))
    .replace(/&amp;/gi, '&')
}
