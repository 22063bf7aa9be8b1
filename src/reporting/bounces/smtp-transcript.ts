/**
 * Reading SMTP dialogue out of a bounce's text: the remote server's reply (code, enhanced code
 * and words, continuation lines included) and the command it answered, whether the report shows
 * a transcript (`>>> DATA` / `<<< 550 ...`) or says it in words ("in reply to RCPT TO command",
 * "after end of data", "did not like our final DATA").
 */
import { replyIn } from './status-codes.js'
import type { SmtpPhase } from './types.js'

/** A quoted SMTP reply. */
export interface QuotedReply {
  /** The reply from its code to the end of its paragraph, on one line. */
  readonly text: string
  readonly code?: number
  readonly enhanced?: string
}

/** Where a reply (a code, optionally `<<<`, `said:`, `[` or `(#` in front) starts. */
const REPLY_START = /(?<![\w.:/@#=%&+-])[245]\d\d(?=[ -][^\n]|[,\]])/

/**
 * The first SMTP reply quoted in `text`, from its code to the end of its paragraph. `undefined`
 * when the text quotes no reply code (a report in the MTA's own words).
 *
 * @example
 * ```ts
 * quotedReply('<bob@example.org>:\nRemote host said: 550-5.7.26 Unauthenticated\n550-5.7.26 mail\n\nGiving up.')
 * // { text: '550-5.7.26 Unauthenticated mail', code: 550, enhanced: '5.7.26' }
 * ```
 */
export function quotedReply(text: string): QuotedReply | undefined {
  const start = REPLY_START.exec(text)
  if (!start) return undefined
  const rest = text.slice(start.index)
  const end = rest.search(/\n[ \t]*\n/)
  const paragraph = oneLine(end < 0 ? rest : rest.slice(0, end))
  const { code, enhanced } = replyIn(paragraph)
  return { text: paragraph, code, enhanced }
}

/**
 * A reply on one line: white space collapsed and the codes in front of continuation lines
 * (`550-5.7.1 ... 550-5.7.1 ...`) dropped after the first, so that the words read as written.
 *
 * @example
 * ```ts
 * oneLine('550-5.7.1 Messages with multiple\n 550 5.7.1 addresses in From:')  // '550-5.7.1 Messages with multiple addresses in From:'
 * ```
 */
export function oneLine(reply: string): string {
  const flat = reply.replace(/\s+/g, ' ').trim()
  const lead = /^([245]\d\d)[ -](?:([245]\.\d{1,3}\.\d{1,3}) )?/.exec(flat)
  if (!lead) return flat
  const again = new RegExp(String.raw`(?<=\S) ${lead[1]}[ -]${lead[2] ? `${lead[2].replace(/\./g, '\\.')} ` : ''}`, 'g')
  return lead[0] + flat.slice(lead[0].length).replace(again, ' ')
}

const COMMANDS: Readonly<Record<string, SmtpPhase>> = { MAIL: 'mail', RCPT: 'rcpt', DATA: 'data', EHLO: 'helo', HELO: 'helo', LHLO: 'helo' }

/** Phrases that say which command a reply answered. */
const PHASE_WORDS: ReadonlyArray<readonly [SmtpPhase, RegExp]> = [
  [
    'data',
    /in reply to (?:end of )?data|after (?:end of )?data\b|final data\b|\(data\)|for text command|smtp command\s*\n\s*data\b|failed after i sent the message|after sending the message/i,
  ],
  ['rcpt', /in reply to rcpt|after rcpt|rcpt to command|\[rcpt_to\]|our rcpt to|following rcpt|rejected recipient|smtp command\s*\n\s*rcpt/i],
  ['mail', /in reply to mail|after mail from|our mail from|sender was rejected|smtp command\s*\n\s*mail/i],
  ['connect', /after initial connection|in reply to (?:the )?greeting|our greeting|greeting failed/i],
  ['helo', /in reply to (?:ehlo|helo)|after (?:ehlo|helo)\b/i],
]

/**
 * The command a failing reply in `text` answered, if the text shows it.
 *
 * @example
 * ```ts
 * phaseIn('>>> RCPT To:<a@b>\n<<< 250 ok\n>>> DATA\n<<< 550 Unknown user')  // 'data'
 * phaseIn('550 user unknown (in reply to RCPT TO command)')              // 'rcpt'
 * ```
 */
export function phaseIn(text: string): SmtpPhase | undefined {
  // A transcript: the last command before the first failing reply.
  let command: SmtpPhase | undefined
  for (const line of text.split('\n')) {
    const sent = /^\s*>>>\s*([A-Z]{4})\b/i.exec(line)
    if (sent) command = COMMANDS[sent[1]!.toUpperCase()] ?? command
    else if (command && /^\s*<<<\s*[45]\d\d/.test(line)) return command
  }
  let found: { phase: SmtpPhase; at: number } | undefined
  for (const [phase, words] of PHASE_WORDS) {
    const at = text.search(words)
    if (at >= 0 && (!found || at < found.at)) found = { phase, at }
  }
  return found?.phase
}
