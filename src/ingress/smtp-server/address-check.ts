/**
 * Address hygiene at MAIL and RCPT, before any stage sees an address. The classic relay tricks
 * hide a second destination inside an address that looks local: source routes
 * (`<@relay.example:victim@elsewhere.example>`), the `%` hack (`victim%elsewhere.example@relay`),
 * bang paths (`elsewhere.example!victim@relay`), quoted local parts with `@` or `%` in them, and
 * IP literals. Each is refused with a 5xx unless relaxed; what passes is normalised (domain in
 * lower case, trailing dot removed), so the domain a policy matches is exactly the domain the
 * message is delivered to.
 */
import type { SMTPServerSession } from 'smtp-server'
import { normalizeDomain } from '../../core/address.js'
import { reject, SmtpError } from '../../core/errors.js'
import type { Logger } from '../../shared/logger.js'
import type { CommandHooks } from './commands.js'

/**
 * Checks that can be relaxed; every one is on (refusing) by default.
 *
 * @category Relay
 */
export interface AddressOptions {
  /**
   * Accept source routes and ignore them, as RFC 5321 appendix C allows:
   * `<@relay.example:user@example.com>` becomes `user@example.com`. Default false (`553`).
   */
  sourceRoutes?: boolean
  /** Accept `%` in local parts, as an ordinary character. Default false (`553`). */
  percentHack?: boolean
  /** Accept `!` in local parts, as an ordinary character. Default false (`553`). */
  bangPaths?: boolean
  /** Accept address literals such as `user@[192.0.2.1]`. Default false (`553`). */
  ipLiterals?: boolean
  /** Accept non-ASCII addresses in transactions without the SMTPUTF8 parameter. Default false (`553 5.6.7`). */
  utf8WithoutSmtputf8?: boolean
}

type Kind = 'MAIL' | 'RCPT'

const COMMAND = /^(\s*(?:MAIL\s+FROM|RCPT\s+TO)\s*:\s*)<([^<>]*)>(.*)$/is
const ATEXT = /^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~\u0080-\u{10FFFF}]+$/u
const NON_ASCII = /[^\x00-\x7f]/
const CONTROL = /[\x00-\x1f\x7f]/

const SUBJECTS = { MAIL: { enhanced: '5.1.7', noun: 'sender' }, RCPT: { enhanced: '5.1.3', noun: 'recipient' } } as const
const subject = (kind: Kind) => SUBJECTS[kind]

function syntax(kind: Kind, reason: string): SmtpError {
  const { enhanced, noun } = subject(kind)
  return new SmtpError(501, enhanced, `Bad ${noun} address syntax`, { reason })
}

function routing(kind: Kind, reason: string): SmtpError {
  const { enhanced, noun } = subject(kind)
  return new SmtpError(553, enhanced, `Routing syntax is not accepted in the ${noun} address`, { reason })
}

/** Where the checked address waits for smtp-server's callback (which sees only its own parse). */
const CHECKED = Symbol('relaychain.checkedAddress')

/** ESMTP parameters the relay implements (SIZE, 8BITMIME, SMTPUTF8, DSN, AUTH); anything else is `555 5.5.4`. */
const PARAMETERS: Record<Kind, ReadonlySet<string>> = {
  MAIL: new Set(['SIZE', 'BODY', 'SMTPUTF8', 'RET', 'ENVID', 'AUTH']),
  RCPT: new Set(['NOTIFY', 'ORCPT']),
}

/**
 * Checks the ESMTP parameters after the path: each must be one we implement (RFC 5321
 * §4.1.1.11), and a declared SIZE must fit the limit.
 */
export function checkParameters(kind: Kind, rest: string, maxSize: number): SmtpError | undefined {
  for (const param of rest.trim().split(/\s+/)) {
    if (!param) continue
    const [key = '', value] = param.split('=', 2) as [string, string | undefined]
    const name = key.toUpperCase()
    if (!PARAMETERS[kind].has(name)) {
      return new SmtpError(555, '5.5.4', `${kind === 'MAIL' ? 'MAIL FROM' : 'RCPT TO'} parameter ${name.slice(0, 32)} not recognized`, {
        reason: param.slice(0, 128),
      })
    }
    if (name === 'SIZE' && value !== undefined && /^\d{1,20}$/.test(value) && Number(value) > maxSize) return reject.tooBig(maxSize)
  }
  return undefined
}

/** The command hook that checks every MAIL and RCPT path and its parameters, and logs what it refuses. */
export function addressHook(options: AddressOptions, logger: Logger, maxSize: number): CommandHooks['address'] {
  return function checkAddress(session, kind, line) {
    const result = checkCommand(kind, line, kind === 'RCPT' && session.envelope?.smtpUtf8 === true, options, maxSize)
    if (result instanceof SmtpError) {
      const fields = { session: session.id, client: session.remoteAddress, [kind === 'MAIL' ? 'from' : 'rcpt']: line.trim().slice(0, 512) }
      logger.info({ ...fields, reply: result.toReply(), reason: result.reason }, kind === 'MAIL' ? 'sender refused' : 'recipient refused')
      return result
    }
    ;(session as unknown as Record<symbol, string | null>)[CHECKED] = result.address
    return result.line
  }
}

/** The address the hook checked for the command smtp-server is handling now (`parsed` if none). */
export function checkedAddress(session: SMTPServerSession, parsed: string): string {
  const checked = (session as unknown as Record<symbol, string | null | undefined>)[CHECKED]
  return checked ?? parsed
}

/**
 * Checks the path of a MAIL or RCPT command line and returns the line with the path normalised,
 * or the `SmtpError` to answer. `smtpUtf8` says whether the transaction announced SMTPUTF8.
 */
export function checkCommand(
  kind: Kind,
  line: string,
  smtpUtf8: boolean,
  options: AddressOptions,
  maxSize = Infinity,
): { line: string; address: string | null } | SmtpError {
  const match = COMMAND.exec(line.replace(/\r?\n$/, ''))
  if (!match) return syntax(kind, 'no <path> in command')
  const [, head, path, rest] = match as unknown as [string, string, string, string]
  const address = checkPath(kind, path, smtpUtf8 || (kind === 'MAIL' && /(?:^|\s)SMTPUTF8(?:\s|$)/i.test(rest)), options)
  if (address instanceof SmtpError) return address
  const parameters = checkParameters(kind, rest, maxSize)
  if (parameters) return parameters
  return { line: `${head}<${address ?? ''}>${rest}`, address }
}

/** Checks one path (what is between the angle brackets); returns the normalised address, `null` for `<>`. */
export function checkPath(kind: Kind, path: string, smtpUtf8: boolean, options: AddressOptions): string | null | SmtpError {
  if (path === '') return kind === 'MAIL' ? null : syntax(kind, 'empty recipient')
  // RFC 5321 §4.5.1: RCPT TO:<Postmaster> without a domain must be accepted (policy still decides).
  if (kind === 'RCPT' && /^postmaster$/i.test(path)) return path
  if (CONTROL.test(path)) return syntax(kind, 'control character')
  if (NON_ASCII.test(path) && !smtpUtf8 && !options.utf8WithoutSmtputf8) {
    return new SmtpError(553, '5.6.7', 'Non-ASCII address requires SMTPUTF8', { reason: 'UTF-8 address without SMTPUTF8' })
  }
  const route = /^@[^:]*:/.exec(path)
  if (route) {
    if (!options.sourceRoutes) return routing(kind, 'source route')
    path = path.slice(route[0].length)
  }
  if (Buffer.byteLength(path) > 254) return syntax(kind, 'path longer than 256 octets')
  const split = splitMailbox(path)
  if (typeof split === 'string') return split === 'routing' ? routing(kind, 'more than one @') : syntax(kind, split)
  const { local, quoted, domain } = split
  const content = quoted ? local.slice(1, -1).replace(/\\(.)/g, '$1') : local
  if (content.includes('@')) return routing(kind, 'quoted local part with @')
  if (content.includes('%') && !options.percentHack) return routing(kind, '% in local part')
  if (content.includes('!') && !options.bangPaths) return routing(kind, '! in local part')
  if (!quoted && !local.split('.').every((atom) => ATEXT.test(atom))) return syntax(kind, 'invalid local part')
  if (Buffer.byteLength(local) > 64) return syntax(kind, 'local part longer than 64 octets')
  const normalized = normalizeDomain(domain)
  if (normalized === undefined) return syntax(kind, 'invalid domain')
  if (normalized.startsWith('[') && !options.ipLiterals) {
    const { enhanced, noun } = subject(kind)
    return new SmtpError(553, enhanced, `Address literals are not accepted in the ${noun} address`, { reason: 'IP literal' })
  }
  return `${local}@${normalized}`
}

/** Splits at the `@` that ends the local part; a string says what is wrong. */
function splitMailbox(path: string): { local: string; quoted: boolean; domain: string } | string {
  if (path.startsWith('"')) {
    const end = /^"(?:[^"\\]|\\[\x20-\x7e])*"/u.exec(path)
    if (!end || path[end[0].length] !== '@') return 'invalid quoted local part'
    const domain = path.slice(end[0].length + 1)
    return domain.includes('@') ? 'routing' : { local: end[0], quoted: true, domain }
  }
  const at = path.indexOf('@')
  if (at < 1) return at === 0 ? 'empty local part' : 'no domain'
  if (path.indexOf('@', at + 1) >= 0) return 'routing'
  return { local: path.slice(0, at), quoted: false, domain: path.slice(at + 1) }
}
