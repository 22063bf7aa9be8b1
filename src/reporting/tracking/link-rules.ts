/**
 * Which links a tracking rewrite may touch, decided before the caller's `rewrite` is asked: only
 * web links (`http:` and `https:`, written absolute or resolved against the document's
 * `<base href>`). Everything else is left exactly as written: other schemes (`mailto:`, `tel:`,
 * `sms:`, `javascript:`, `data:` …), fragment-only and empty references, relative references in a
 * document without a usable base (there is nothing to resolve them against: mail has no URL of its
 * own, and `//host/…` has no scheme either), relative values that do not resolve, and elements
 * that carry one of the marker attributes below. An http(s) link is offered as written, even one a
 * URL parser would refuse (a template's bare `http://`).
 */

/**
 * Marks a link that must never be tracked: `<a href="…" data-relay-notrack>`. Any value counts.
 *
 * @category Reporting
 */
export const NOTRACK_ATTRIBUTE = 'data-relay-notrack'
/**
 * Marks the unsubscribe link (the convention of the test corpus and several ESPs); left alone too.
 *
 * @category Reporting
 */
export const UNSUBSCRIBE_ATTRIBUTE = 'data-unsubscribe'

/** Why a link is not offered for rewriting. */
export type LeaveReason = 'scheme' | 'fragment' | 'empty' | 'relative' | 'invalid' | 'marked'

/** A link's target, or why it is left alone. */
export type Trackable = { readonly url: string; readonly leave?: undefined } | { readonly url?: undefined; readonly leave: LeaveReason }

const SCHEME = /^([a-zA-Z][a-zA-Z0-9+.-]*):/
// The URL parser drops ASCII tab and newlines anywhere and C0 controls/space at both ends.
const STRIPPED = /[\t\n\r]/g
const EDGES = /^[\x00-\x20]+|[\x00-\x20]+$/g

// Spaces and controls left inside a value: percent-encoded, as a browser would request them.
const CONTROLS = /[\x00-\x20\x7f]/g
const percent = (c: string) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`

/**
 * The value as a URL parser sees it: controls and spaces at the ends and tabs/newlines inside removed.
 *
 * @example
 * ```ts
 * cleanHref(' https://a.example/\n x ') // 'https://a.example/ x'
 * ```
 */
export function cleanHref(value: string): string {
  return value.replace(EDGES, '').replace(STRIPPED, '')
}

/**
 * The usable base URL of a document: its `<base href>` if that is an absolute URL.
 *
 * @example
 * ```ts
 * documentBase('https://shop.example/mail/')?.href // 'https://shop.example/mail/'
 * documentBase('/mail/') // undefined
 * ```
 */
export function documentBase(href: string | undefined): URL | undefined {
  if (href === undefined) return undefined
  try {
    return new URL(cleanHref(href))
  } catch {
    return undefined
  }
}

/**
 * The http(s) URL a link points to, or why it is left alone. An absolute URL is returned as
 * written (cleaned, and inner spaces or controls percent-encoded); a relative one is resolved
 * against `base`.
 *
 * @example
 * ```ts
 * trackableUrl('orders/1', {}, new URL('https://shop.example/mail/')) // { url: 'https://shop.example/mail/orders/1' }
 * trackableUrl('mailto:a@example.com', {}, undefined)               // { leave: 'scheme' }
 * ```
 */
export function trackableUrl(value: string, attributes: Readonly<Record<string, string>>, base: URL | undefined): Trackable {
  if (Object.hasOwn(attributes, NOTRACK_ATTRIBUTE) || Object.hasOwn(attributes, UNSUBSCRIBE_ATTRIBUTE)) return { leave: 'marked' }
  const href = cleanHref(value)
  if (!href) return { leave: 'empty' }
  if (href.startsWith('#')) return { leave: 'fragment' }
  const scheme = SCHEME.exec(href)?.[1]?.toLowerCase()
  if (scheme !== undefined) {
    // As written, even when a URL parser would refuse it (`http://` placeholders): the reader
    // clicked a web link either way, and the redirector fails no worse than the link itself.
    return scheme === 'http' || scheme === 'https' ? { url: href.replace(CONTROLS, percent) } : { leave: 'scheme' }
  }
  if (!base) return { leave: 'relative' }
  let resolved: URL
  try {
    resolved = new URL(href, base)
  } catch {
    return { leave: 'invalid' }
  }
  if (resolved.protocol !== 'http:' && resolved.protocol !== 'https:') return { leave: 'scheme' }
  return { url: resolved.href }
}
