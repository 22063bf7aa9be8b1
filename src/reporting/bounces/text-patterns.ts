/**
 * What the words of an SMTP reply or a bounce's reason text say, for replies whose codes are
 * vague (`550 5.0.0`, a bare `554`) or misused (`550 5.1.1 ... over quota`). Patterns are tried
 * in order and the first match wins, so the more specific a cause the earlier it comes: a virus
 * before spam, reputation before rate limits ("rate limited due to IP reputation"), a disabled
 * account before a blocked one ("the recipient account is blocked").
 *
 * `strong` patterns name their cause unambiguously and outrank the enhanced status code;
 * `weak` ones ("service unavailable", "access denied") only speak when the code says nothing.
 * Written from the replies of the MTAs and providers in the test corpus and from their
 * documented wordings; never from another library's lists.
 */
import type { BounceCategory } from './types.js'

interface Pattern {
  readonly category: BounceCategory
  readonly test: RegExp
}

const STRONG: readonly Pattern[] = [
  { category: 'virus', test: /\bvirus|\bmalware\b|\binfected\b|\btrojan\b/i },
  {
    category: 'content',
    test: /not (?:rfc ?\d{4} )?compliant|\brfc ?(?:5322|2822|822)\b|multiple (?:addresses in from|from|subject|message-id|date|to) ?(?:headers?|:)|headers? (?:too (?:large|long)|error|are invalid)|improper use of 8-bit|8-?bit data|media error|invalid (?:mime|header)/i,
  },
  {
    category: 'auth-failure',
    test: /\b(?:spf|dkim|dmarc)\b|sender policy framework|authentication checks? failed|unauthenticated (?:e-?mail|message)|purported responsible address|sender ?id\b/i,
  },
  {
    category: 'blocked',
    test: /reputation|user complaints|blocked using|\b(?:dns)?[br]bl\b|spamhaus|spamcop|abuseat|sorbs\.|barracudacentral|(?:black|block|deny)[ -]?list(?:ed)?|(?<!not )listed (?:at|in|on|by)\b|\bptr\b|reverse (?:dns|lookup|resolution)|\brdns\b|mismatches client ip|may not be mail exchanger|weren't sent|not permitted to send/i,
  },
  {
    category: 'spam',
    test: /(?<![\w.-])spam(?!haus|cop)|spamsignature|\bUBE\b|unsolicited|bulk (?:e-?)?mail|junk mail|content (?:was )?(?:rejected|filtered)|message content rejected/i,
  },
  { category: 'greylisted', test: /gr[ae]y-?list/i },
  {
    category: 'rate-limited',
    test: /too many (?:connections|recipients|messages|concurrent|sessions|hops? (?!count))|rate limit|frequency limit|throttl|receiving mail (?:at|too) (?:a )?(?:rate|fast)|sent to too many|connection rate|exceeded .{0,30}\b(?:per (?:hour|day|minute)|sending limit)|try again later.{0,20}too many/i,
  },
  {
    category: 'filtered',
    test: /recipient(?:'s)? preferences|refused due to recipient|user (?:has )?(?:blocked|filtered)|not accepting (?:mail|messages) from/i,
  },
  {
    category: 'blocked',
    test: /(?:ip|host|client|network)\b.{0,40}\b(?:blocked|banned|not allowed|refused|rejected|denied)|banned sending|invalid ip for sending|client host rejected/i,
  },
  {
    category: 'relay-denied',
    test: /relay(?:ing)? (?:access )?(?:denied|not (?:permitted|allowed)|prohibited|refused)|not (?:configured|permitted|allowed|authorized) to relay|insecure mail relay|unable to relay|relay through this server|we do not relay|(?:smtp )?auth(?:entication)? (?:is )?required|authrequired|turn on smtp authentication|does not advertise auth/i,
  },
  // About our sender, not the recipient: "Sender address rejected: Domain not found" must not read as a dead domain.
  {
    category: 'policy',
    test: /sender (?:address |domain )?(?:rejected|unknown|invalid|not (?:allowed|permitted|accepted|found))|(?:domain of|unknown) sender|sender (?:address|domain) (?:does not exist|has null mx)/i,
  },
  {
    category: 'mailbox-disabled',
    test: /\b(?:account|mailbox|user)s?\b.{0,40}\b(?:is|are|has been|have been) (?:now )?(?:disabled|suspended|inactive|deactivated|blocked|locked|frozen|closed|expired|not active)|(?:disabled|suspended|inactive|frozen) (?:account|mailbox)|compte .{0,30}bloqu/i,
  },
  {
    category: 'mailbox-full',
    test: /mail ?(?:box|folder) (?:is )?full|over ?quota|quota (?:exceeded|full)|exceeds? (?:its |the |their |his |her )?(?:storage|quota)|storage (?:allocation|quota|space) exceeded|mailbox .{0,40}exceeded|full mailbox|disk quota/i,
  },
  {
    category: 'message-too-big',
    test: /message (?:size |length )?(?:exceeds|is too (?:large|big)|too (?:large|big))|too (?:large|big) for|(?:mail )?size (?:limit )?exceed|exceeds? (?:the )?(?:fixed |maximum |max )*(?:message )?size|size limit exceeded|line limit exceeded/i,
  },
  {
    category: 'has-moved',
    test: /no longer (?:on (?:this )?server|with|at|valid|available|in use|here)|has moved|moved (?:permanently|away)|not our user|user not local|no forwarding address/i,
  },
  {
    category: 'host-unknown',
    test: /host (?:or domain name )?(?:unknown|not found)|domain(?: name)?(?: of (?:the )?recipient)?(?: address)? (?:not found|does not exist|is not reachable|not reachable|unknown)|unknown (?:host|domain)|no such (?:domain|host)\b|nxdomain|unrouteable|unroutable|no mx\b|mx or srv record indicated no smtp service|(?:couldn't|could not|cannot|can't) find (?:a |any )?mail exchanger|name service error|does not accept (?:e-?)?mail|null mx/i,
  },
  {
    category: 'user-unknown',
    test: /user(?:name)? unknown|unknown (?:user|recipient|mailbox|address|local[- ]?part|alias)|no such (?:user|mailbox|recipient|address|account|local user)|(?:user|mailbox|recipient|address|account|addressee) (?:does not|doesn't|did not) exist|does not exist|invalid (?:recipient|mailbox|user)|(?:recipient|user|mailbox|address) (?:not found|unknown|not known)|not listed in|no mailbox here|no valid recipients|recipient name is not recognized|(?:user|address|recipient) (?:is )?not (?:recognized|valid)|doesn't have an? .{1,80} account|check if (?:the )?address is correct|bad destination mailbox|not a valid (?:mailbox|user|recipient)|no account by that name|undeliverable address/i,
  },
  {
    category: 'expired',
    test: /retry (?:time(?:out)?|period) (?:exceeded|expired)|too long in (?:the )?queue|in the queue too long|queue (?:expired|lifetime|timeout)|message expired|\bexpired\b|(?:aborted|given up|gave up) after|(?:failed|after) \d+ (?:delivery )?attempts|delivery attempts? (?:exceeded|expired)/i,
  },
  {
    category: 'network',
    test: /timed? ?out|connection (?:refused|reset|lost|closed|dropped)|(?:could|can)(?:n't|not) connect|unable to connect|no route to host|(?:host|server) (?:is )?(?:not reachable|unreachable)|network (?:is )?(?:error|unreachable)|hop count|routing loop|mail loop|loop (?:detected|alert)|too many hops|duplicated message-id|tls (?:handshake|negotiation)/i,
  },
  {
    category: 'system',
    test: /internal (?:system |server )?error|system error|local error|insufficient (?:system )?(?:disk )?(?:space|storage)|disk (?:is )?full|mail system full|\bldap\b|database (?:error|unavailable)|procmail|mailer error|pipe to \||couldn't create|failed to read|local delivery (?:failed|error)|delivery agent|command (?:died|failed)|server (?:is )?(?:busy|overloaded)/i,
  },
  {
    category: 'protocol',
    test: /command (?:parameter )?(?:not implemented|unrecognized|not recognized)|syntax error|improper sequence|bad sequence|unknown command|malformed|line too long|(?:invalid|bad) (?:command|argument|parameter)|protocol error/i,
  },
  {
    category: 'policy',
    test: /polic(?:y|ies)|not (?:a )?member|members only|permission to post|投稿する権限|administrative(?:ly)? prohibit|\bprohibited\b|access denied|send mail as|customfromdenied/i,
  },
]

const WEAK: readonly Pattern[] = [
  {
    category: 'system',
    test: /service (?:currently |temporarily )?(?:not available|unavailable)|temporar(?:y|ily) (?:local )?(?:failure|problem|error|unavailable)/i,
  },
  { category: 'policy', test: /\b(?:rejected|refused|denied|not allowed|not accepted|blocked)\b/i },
]

/**
 * Addresses are not words: a recipient called spam@ or virus@ must not make a reply about spam.
 * (Bounded quantifiers: a long run of non-space bytes must not cost quadratic time.)
 */
function words(text: string): string {
  return text.replace(/[^\s@]{1,64}@[^\s@]{1,255}/g, ' ')
}

function first(patterns: readonly Pattern[], text: string): BounceCategory | undefined {
  const plain = words(text)
  return patterns.find((p) => p.test.test(plain))?.category
}

/**
 * The category a reply's words name unambiguously, if any.
 *
 * @example
 * ```ts
 * strongCategoryOfText('452 4.2.2 The email account that you tried to reach is over quota')  // 'mailbox-full'
 * ```
 */
export function strongCategoryOfText(text: string): BounceCategory | undefined {
  return first(STRONG, text)
}

/**
 * The category vaguer words suggest; use only when the codes say nothing.
 *
 * @example
 * ```ts
 * weakCategoryOfText('554 Service currently unavailable')  // 'system'
 * ```
 */
export function weakCategoryOfText(text: string): BounceCategory | undefined {
  // Postfix wraps every RCPT and MAIL restriction in "Recipient/Sender address rejected:": the
  // cause, if any, follows the colon.
  return first(WEAK, text.replace(/\b(?:recipient|sender) address rejected\b/gi, ' '))
}
