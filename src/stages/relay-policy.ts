/**
 * relay-policy: who may relay through this relay, Postfix-style, first match wins, per recipient:
 *
 * 1. authenticated clients (`permit_sasl_authenticated`), optionally only with a sender address
 *    their identity owns (`reject_sender_login_mismatch`, `553 5.7.1` at MAIL);
 * 2. clients in the allowed networks (`permit_mynetworks`);
 * 3. clients authorized by POP-before-SMTP;
 * 4. recipients in the domains we are responsible for, from anyone (`relay_domains`);
 * 5. everything else: not granted, so the relay answers `554 5.7.1 Relay access denied` for that
 *    recipient (`reject_unauth_destination`).
 *
 * Put it first in the chain: it only grants or refuses, and later stages then see only mail the
 * relay will handle.
 */

import type { PopBeforeSmtp } from '../auth/pop-before-smtp.js'
import { domainKey, domainMatcher } from '../core/address.js'
import { RelayError, SmtpError } from '../core/errors.js'
import type { Address, AuthIdentity, Awaitable, RcptVerdict, Stage, Transaction } from '../core/types.js'
import { networkMatcher, normalizeIp } from '../shared/ip.js'

/**
 * Options of {@link relayPolicy}; at least one way to grant relaying must be given.
 *
 * @category Stages
 */
export interface RelayPolicyOptions {
  /** Grant relaying to clients that authenticated with SMTP AUTH (`permit_sasl_authenticated`). Default true. */
  authenticated?: boolean
  /**
   * Refuse a sender the authenticated identity does not own with `553 5.7.1` (Postfix
   * `smtpd_sender_login_maps` + `reject_sender_login_mismatch`). `true`: the identity's
   * `senders` (addresses and `@domains`), or its login if that is an address. A function
   * decides itself. The null sender `<>` is allowed. Default false.
   */
  senderLogin?: boolean | ((identity: AuthIdentity, sender: string) => Awaitable<boolean>)
  /** Client networks that may relay, CIDR or single addresses, IPv4 and IPv6 (`mynetworks`). */
  networks?: readonly string[]
  /** Clients authorized by POP-before-SMTP; see `popBeforeSmtp()`. */
  popBeforeSmtp?: PopBeforeSmtp
  /**
   * Recipient domains this relay is responsible for (inbound, backup MX): mail for them is accepted
   * from anyone (`relay_domains`). `example.com` matches that domain, `.example.com` its subdomains.
   * A function decides per domain (given in lower-case ASCII form).
   */
  domains?: readonly string[] | ((domain: string) => Awaitable<boolean>)
}

/**
 * Creates the relay permission stage.
 *
 * @example
 * ```ts
 * createRelay({
 *   auth: { authenticator: passwordFile('/etc/relay/passwd') },
 *   stages: [relayPolicy({ senderLogin: true, networks: ['192.168.1.0/24', 'fd00::/64'], domains: ['example.com'] })],
 *   transport, tls, listeners,
 * })
 * ```
 *
 * @category Stages
 */
export function relayPolicy(options: RelayPolicyOptions = {}): Stage {
  const authenticated = options.authenticated ?? true
  const inNetworks = options.networks?.length ? networkMatcher(options.networks, 'relayPolicy networks') : undefined
  const pop = options.popBeforeSmtp
  const ours = ourDomains(options.domains)
  if (!authenticated && !inNetworks && !pop && !ours) {
    throw new RelayError('ERR_RELAY_INVALID_OPTION', 'relayPolicy grants nothing: give networks, domains, popBeforeSmtp or keep authenticated')
  }
  const owns = options.senderLogin === true ? ownsSender : options.senderLogin || undefined

  return {
    name: 'relay-policy',
    grantsRelay: true,

    ...(owns && {
      async mailFrom(tx: Transaction, from: Address | null) {
        const identity = tx.session.auth
        if (!identity || !from || (await owns(identity, from.address))) return
        throw new SmtpError(553, '5.7.1', 'Sender address rejected: not owned by the authenticated user', {
          reason: `${identity.user} does not own ${from.address}`,
        })
      },
    }),

    async rcptTo(tx: Transaction, to: Address): Promise<RcptVerdict> {
      const { session } = tx
      const client = normalizeIp(session.remoteAddress)
      if (authenticated && session.user) return { relay: true, reason: `authenticated as ${session.user}` }
      if (inNetworks?.(client)) return { relay: true, reason: `client ${client} in networks` }
      if (pop && (await pop.isAuthorized(client))) return { relay: true, reason: `client ${client} authorized by POP-before-SMTP` }
      const domain = domainKey(to.address)
      if (ours && (await ours(domain))) return { relay: true, reason: `recipient domain ${domain} is ours` }
      return { reason: `client ${client} not authorized, recipient domain ${domain} not ours` }
    },
  }
}

/** The default ownership rule: the identity's senders, or its login if that is an address. */
function ownsSender(identity: AuthIdentity, sender: string): boolean {
  const address = sender.toLowerCase()
  const owned = identity.senders ?? (identity.user.includes('@') ? [identity.user] : [])
  return owned.some((entry) => {
    const value = entry.toLowerCase()
    return value.startsWith('@') ? domainKey(address) === domainKey(value) : value === address
  })
}

function ourDomains(domains: RelayPolicyOptions['domains']): ((domain: string) => Awaitable<boolean>) | undefined {
  if (typeof domains === 'function') return domains
  if (!domains?.length) return undefined
  return domainMatcher(domains, 'relayPolicy domains')
}
