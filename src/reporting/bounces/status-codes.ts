/**
 * What the numbers in an SMTP reply say: RFC 3463 enhanced status codes (class.subject.detail)
 * and RFC 5321 basic reply codes, found in free text and mapped to bounce categories. The
 * subject/detail table follows RFC 3463, RFC 7372 (the X.7.20-X.7.26 authentication codes),
 * RFC 7505 (null MX), RFC 7293 (X.7.17/18) and the IANA registry; anything it does not know
 * falls back to its subject (X.7.* = policy), and an unknown subject to nothing.
 */
import type { BounceCategory } from './types.js'

/** An enhanced status code, not inside an IP address or a longer dotted number (`4.16.55.1`). */
const ENHANCED = /(?<![\w.])([245])\.(\d{1,3})\.(\d{1,3})(?![\w-]|\.\d)/
/** A basic reply code where a reply starts: not part of a number, an address, a time or a path. */
const REPLY = /(?<![\w.:/@#=%&+-])([245][0-5]\d)(?=[ \-,\]:;)]|$)/m
/** A reply code directly followed by its enhanced code: the remote server's own words. */
const REPLY_WITH_ENHANCED = /(?<![\w.:/@#=%&+-])([245][0-5]\d)[ -]{1,3}['"]?#?([245]\.\d{1,3}\.\d{1,3})(?![\w-]|\.\d)/

/**
 * `5.1.1`-style code in a value such as `5.1.1 (bad destination mailbox)`, normalised; `undefined` if none.
 *
 * @example
 * ```ts
 * statusOf('5.01.001 (bad destination mailbox)')  // '5.1.1'
 * statusOf('relayed via 10.2.4.5')                 // undefined
 * ```
 */
export function statusOf(value: string | undefined): string | undefined {
  const found = value === undefined ? null : ENHANCED.exec(value)
  return found ? `${found[1]}.${Number(found[2])}.${Number(found[3])}` : undefined
}

/**
 * The reply code and enhanced code of the first SMTP reply quoted in `text`, and where it starts. An enhanced code
 * that directly follows a reply code wins over one found elsewhere: in
 * `5.1.0 - Unknown address error 550-'5.7.1 ... Access denied'` the remote said 5.7.1.
 *
 * @example
 * ```ts
 * replyIn("5.1.0 - Unknown address error 550-'5.7.1 Access denied'")  // { code: 550, enhanced: '5.7.1', at: 30 }
 * ```
 */
export function replyIn(text: string): { code?: number; enhanced?: string; at: number } {
  const paired = REPLY_WITH_ENHANCED.exec(text)
  if (paired) return { code: Number(paired[1]), enhanced: statusOf(paired[2]), at: paired.index }
  const code = REPLY.exec(text)
  return { code: code ? Number(code[1]) : undefined, enhanced: statusOf(text), at: code?.index ?? 0 }
}

/** Categories of the RFC 3463 subject.detail pairs that name a cause. */
const DETAIL: Readonly<Record<string, BounceCategory>> = {
  '1.1': 'user-unknown',
  '1.2': 'host-unknown',
  '1.3': 'protocol',
  '1.6': 'has-moved',
  '1.7': 'policy',
  '1.8': 'policy',
  '1.10': 'host-unknown',
  '2.0': 'filtered',
  '2.1': 'mailbox-disabled',
  '2.2': 'mailbox-full',
  '2.3': 'message-too-big',
  '2.4': 'system',
  '3.0': 'system',
  '3.1': 'system',
  '3.2': 'system',
  '3.3': 'content',
  '3.4': 'message-too-big',
  '3.5': 'system',
  '4.0': 'network',
  '4.1': 'network',
  '4.2': 'network',
  '4.3': 'system',
  '4.4': 'host-unknown',
  '4.5': 'system',
  '4.6': 'network',
  '4.7': 'expired',
  '5.3': 'rate-limited',
  '7.8': 'relay-denied',
  '7.13': 'relay-denied',
  '7.14': 'relay-denied',
  '7.16': 'message-too-big',
  '7.17': 'has-moved',
  '7.18': 'has-moved',
  '7.20': 'auth-failure',
  '7.21': 'auth-failure',
  '7.22': 'auth-failure',
  '7.23': 'auth-failure',
  '7.24': 'auth-failure',
  '7.25': 'blocked',
  '7.26': 'auth-failure',
  '7.27': 'policy',
  '7.29': 'auth-failure',
}

/**
 * Subjects whose every unlisted detail still says something. Not X.5.0: servers put it on
 * anything (Outlook.com's "550 5.5.0 ... mailbox unavailable" is about the mailbox).
 */
const SUBJECT: Readonly<Record<string, BounceCategory>> = {
  '5': 'protocol',
  '6': 'content',
  '7': 'policy',
}

/**
 * The category an enhanced status code names, or `undefined` for X.0.0, X.1.0, X.5.0 and the like.
 *
 * @example
 * ```ts
 * categoryOfStatus('5.2.2')   // 'mailbox-full'
 * categoryOfStatus('5.7.606') // 'policy' (X.7.*)
 * ```
 */
export function categoryOfStatus(status: string | undefined): BounceCategory | undefined {
  if (!status) return undefined
  const [, subject = '', detail = ''] = status.split('.')
  if (subject === '5' && detail === '0') return undefined
  return DETAIL[`${subject}.${detail}`] ?? SUBJECT[subject]
}

/**
 * Categories of basic reply codes that name a cause on their own (RFC 5321 §4.2, RFC 7504).
 * 550, 553 and 554 are left out: they are used for everything.
 */
const REPLY_CODE: Readonly<Record<number, BounceCategory>> = {
  421: 'system',
  451: 'system',
  452: 'system',
  455: 'protocol',
  500: 'protocol',
  501: 'protocol',
  502: 'protocol',
  503: 'protocol',
  504: 'protocol',
  521: 'host-unknown',
  530: 'relay-denied',
  534: 'relay-denied',
  535: 'relay-denied',
  538: 'relay-denied',
  551: 'has-moved',
  552: 'mailbox-full',
  555: 'protocol',
  556: 'host-unknown',
}

/**
 * The category a basic reply code names on its own, if any.
 *
 * @example
 * ```ts
 * categoryOfReplyCode(551)  // 'has-moved'
 * categoryOfReplyCode(550)  // undefined
 * ```
 */
export function categoryOfReplyCode(code: number | undefined): BounceCategory | undefined {
  return code === undefined ? undefined : REPLY_CODE[code]
}
