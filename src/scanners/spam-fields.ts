/**
 * The header fields SpamAssassin adds to a message it considers spam (`X-Spam-Flag`,
 * `X-Spam-Score`, `X-Spam-Level`, `X-Spam-Status` with the rules that matched), which mail
 * clients and filters downstream understand, whichever scanner gave the verdict.
 */
import type { Message } from '../core/types.js'
import type { SpamVerdict } from './types.js'

/** The fields SpamAssassin adds to spam, and the Subject prefix. */
export function tagAsSpam(msg: Message, verdict: SpamVerdict, subjectPrefix: string | undefined): void {
  const score = verdict.score.toFixed(1)
  const required = verdict.threshold !== undefined ? ` required=${verdict.threshold.toFixed(1)}` : ''
  const tests = Object.keys(verdict.symbols ?? {})
  msg.headers.add('X-Spam-Status', fold(`Yes, score=${score}${required}`, tests.length ? `tests=${tests.join(',')}` : ''))
  msg.headers.add('X-Spam-Level', '*'.repeat(Math.max(0, Math.min(50, Math.floor(verdict.score)))))
  msg.headers.add('X-Spam-Score', score)
  msg.headers.add('X-Spam-Flag', 'YES')
  if (!subjectPrefix) return
  const subject = msg.headers.get('subject') ?? ''
  // Relayed twice, a message keeps one prefix.
  if (!subject.startsWith(subjectPrefix)) msg.headers.set('Subject', subject ? `${subjectPrefix} ${subject}` : subjectPrefix)
}

/** `first`, then `list` (comma-separated) folded so that no line grows past 78 characters. */
function fold(first: string, list: string): string {
  let out = first
  let line = `X-Spam-Status: ${first}`.length
  for (const [i, word] of list.split(/(?<=,)/).entries()) {
    if (!word) continue
    const sep = i === 0 ? ' ' : ''
    if (line + sep.length + word.length > 78) {
      out += `\r\n\t${word}`
      line = 8 + word.length
    } else {
      out += sep + word
      line += sep.length + word.length
    }
  }
  return out
}
