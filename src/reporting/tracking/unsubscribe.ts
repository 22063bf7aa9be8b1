/**
 * Recognising the unsubscribe link, for `rewrite` to leave it alone (an unsubscribe click that
 * lands on a tracker first is one more hop that can fail, and some receivers judge senders by
 * it). Whether to track it is the caller's decision; {@link rewriteHtml} itself only leaves links
 * marked with `data-unsubscribe`. Recognised: the message's own `List-Unsubscribe` URLs (RFC 2369 /
 * RFC 8058), link text such as "Unsubscribe" or "Opt out" (in a few languages), unsubscribe-like
 * paths, and the unsubscribe merge tags of common ESPs left unrendered.
 */

/**
 * What is known about a link: its target and, for `<a>`, its text.
 *
 * @category Reporting
 */
export interface UnsubscribeCandidate {
  /** The link's target, as written or resolved. */
  readonly url: string
  /** The link text, when there is any. */
  readonly text?: string
}

const TEXT =
  /\b(unsubscribe|unsub|opt[\s-]?out|abmelden|austragen|d[ée]sabonner|d[ée]sinscri(re|ption)|se d[ée]sinscrire|darse de baja|cancelar (la )?suscripci[oó]n|disiscriviti|cancella iscrizione|afmelden|uitschrijven|avregistrera|avsluta prenumeration)\b/i
const PATH = /unsub|opt-?out|d[ée]sabonne|d[ée]sinscri|abmeld|afmeld|uitschrijv/i
const MERGE_TAG =
  /\*\|UNSUB\|\*|\[unsubscribe\]|\{\{\s*unsubscribe[\w.]*\s*\}\}|%unsubscribe(_url)?%|<%asm_(group_)?unsubscribe_raw_url%>|\$unsubscribe\b/i

/**
 * The URLs of a `List-Unsubscribe` header value, in order: `<https://…>, <mailto:…>`.
 *
 * @example
 * ```ts
 * listUnsubscribeUrls('<https://news.example/u/42>, <mailto:u-42@news.example>')
 * // ['https://news.example/u/42', 'mailto:u-42@news.example']
 * ```
 *
 * @category Reporting
 */
export function listUnsubscribeUrls(header: string | undefined): string[] {
  if (!header) return []
  return [...header.matchAll(/<\s*([^<>]+?)\s*>/g)].map((m) => m[1]!.replace(/\s+/g, ''))
}

/**
 * Whether a link looks like the unsubscribe link. `listUnsubscribe` is the message's
 * `List-Unsubscribe` header value (or its URLs): a link to one of its http(s) URLs always counts.
 *
 * @example
 * ```ts
 * const listUnsubscribe = msg.headers.get('list-unsubscribe')
 * rewriteHtml(html, {
 *   rewrite: (link) => (isUnsubscribeLink(link, listUnsubscribe) ? undefined : tracked(link)),
 * })
 * ```
 *
 * @category Reporting
 */
export function isUnsubscribeLink(link: UnsubscribeCandidate, listUnsubscribe?: string | readonly string[]): boolean {
  const listed = typeof listUnsubscribe === 'string' || listUnsubscribe === undefined ? listUnsubscribeUrls(listUnsubscribe) : listUnsubscribe
  const target = normalise(link.url)
  if (target && listed.some((url) => normalise(url) === target)) return true
  if (link.text && TEXT.test(link.text)) return true
  if (MERGE_TAG.test(link.url)) return true
  let path = link.url
  try {
    const url = new URL(link.url)
    path = `${url.hostname}${url.pathname}${url.search}`
  } catch {
    // not absolute: look at it as written
  }
  return PATH.test(safeDecode(path))
}

function normalise(url: string): string | undefined {
  try {
    const parsed = new URL(url.trim())
    parsed.hash = ''
    return parsed.href
  } catch {
    return undefined
  }
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text)
  } catch {
    return text
  }
}
