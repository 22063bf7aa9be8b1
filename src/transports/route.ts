/**
 * `routeTransport()`: chooses a transport per recipient (by domain, by sender, or by a
 * function), splits the envelope accordingly and sends one copy per transport, like Postfix's
 * `transport_maps`. The first matching route wins. With more than one destination the body is
 * spooled once and read for each; with one, it streams straight through.
 */
import { addressKey, asciiDomain, domainKey, domainMatcher } from '../core/address.js'
import { RelayError, SmtpError, toSmtpError } from '../core/errors.js'
import { combinedDeclarations } from '../core/order.js'
import type { Address, DeliveryReport, Message, Transaction, Transport } from '../core/types.js'

/**
 * One routing rule. Give exactly one of `domains`, `senders` or `match`.
 *
 * @category Transports
 */
export interface Route {
  /** Recipient domains: `'example.com'` matches that domain only, `'.example.com'` its subdomains (list both for both). */
  domains?: readonly string[]
  /** Envelope senders: `'alice@example.com'` or `'@example.com'`; all recipients follow the sender. */
  senders?: readonly string[]
  /** Any rule you like. */
  match?: (rcpt: Address, msg: Message) => boolean
  /** Where recipients this route matches are sent. */
  transport: Transport
}

/**
 * Options of {@link routeTransport}.
 *
 * @category Transports
 */
export interface RouteTransportOptions {
  /** The routes, tried in order: a recipient takes the first that matches. */
  routes: readonly Route[]
  /** For recipients no route matches. Without it they are refused with `550 5.4.4`. */
  fallback?: Transport
}

/** A domain or sender rule, compiled: it reads the envelope only, so it can decide before the content exists. */
type EnvelopeMatcher = (rcpt: Address, tx: Transaction) => boolean

interface Rule {
  readonly transport: Transport
  /** The envelope rule, or the application's `match` (which may read the message). */
  readonly envelope?: EnvelopeMatcher
  readonly custom?: (rcpt: Address, msg: Message) => boolean
}

function compile(route: Route): Rule {
  if (route.match) return { transport: route.transport, custom: route.match }
  return { transport: route.transport, envelope: envelopeMatcher(route) }
}

function envelopeMatcher(route: Route): EnvelopeMatcher {
  if (route.domains) {
    const ours = domainMatcher(route.domains, 'routeTransport domains')
    return (rcpt) => ours(domainKey(rcpt.address))
  }
  const senders = (route.senders ?? []).map((s) => (s.startsWith('@') ? `@${asciiDomain(s.slice(1))}` : addressKey(s)))
  return (_rcpt, tx) => {
    const sender = tx.envelope.mailFrom?.address
    return !!sender && (senders.includes(addressKey(sender)) || senders.includes(`@${domainKey(sender)}`))
  }
}

/**
 * Creates a routing transport.
 *
 * @example
 * ```ts
 * const transport = routeTransport({
 *   routes: [
 *     { domains: ['corp.example', '.corp.example'], transport: smtpTransport({ host: 'exchange.corp.example' }) },
 *     { senders: ['@newsletter.example'], transport: smtpTransport({ host: 'bulk-relay.example', port: 587 }) },
 *   ],
 *   fallback: smtpTransport({ host: 'smarthost.example', port: 587 }),
 * })
 * ```
 *
 * @category Transports
 */
export function routeTransport(options: RouteTransportOptions): Transport {
  for (const route of options.routes) {
    const kinds = [route.domains, route.senders, route.match].filter((k) => k !== undefined).length
    if (kinds !== 1 || !route.transport) {
      throw new RelayError('ERR_RELAY_INVALID_OPTION', 'each route needs a transport and exactly one of domains, senders or match')
    }
  }
  const rules = options.routes.map(compile)
  const routeOf = (rcpt: Address, msg: Message) =>
    rules.find((r) => (r.custom ? r.custom(rcpt, msg) : r.envelope!(rcpt, msg)))?.transport ?? options.fallback
  const transports = [...new Set([...options.routes.map((r) => r.transport), ...(options.fallback ? [options.fallback] : [])])]

  return {
    name: 'route',
    ...combinedDeclarations(transports),
    destinationOf(rcpt, tx) {
      // Before the content exists: a match() rule (it may read the message) is not evaluated and
      // its recipients are grouped by domain.
      let transport = options.fallback
      for (const rule of rules) {
        if (rule.custom) return domainKey(rcpt.address)
        if (rule.envelope!(rcpt, tx)) {
          transport = rule.transport
          break
        }
      }
      return transport?.destinationOf?.(rcpt, tx) ?? domainKey(rcpt.address)
    },
    describe: () =>
      [
        'route',
        ...options.routes.map((r) => {
          const rule = r.domains ? `domains ${r.domains.join(',')}` : r.senders ? `senders ${r.senders.join(',')}` : 'match()'
          return `  ${rule} → ${r.transport.describe?.() ?? r.transport.name}`
        }),
        `  otherwise → ${options.fallback ? (options.fallback.describe?.() ?? options.fallback.name) : '550 5.4.4'}`,
      ].join('\n'),

    async open() {
      for (const transport of transports) await transport.open?.()
    },

    async send(msg) {
      const groups = new Map<Transport, Address[]>()
      const unroutable: Address[] = []
      for (const rcpt of msg.envelope.rcptTo) {
        const transport = routeOf(rcpt, msg)
        if (!transport) unroutable.push(rcpt)
        else groups.set(transport, [...(groups.get(transport) ?? []), rcpt])
      }
      const noRoute = new SmtpError(550, '5.4.4', 'Unable to route to this recipient', { reason: 'no route matched' })
      const shared = groups.size > 1
      const reports = await Promise.all(
        [...groups].map(async ([transport, rcpts]): Promise<DeliveryReport> => {
          try {
            const part = rcpts.length === msg.envelope.rcptTo.length ? msg : await msg.fork(rcpts, { takeBody: !shared })
            return await transport.send(part)
          } catch (err) {
            return { accepted: [], rejected: rcpts.map((rcpt) => ({ rcpt, error: toSmtpError(err) })) }
          }
        }),
      )
      return {
        accepted: reports.flatMap((r) => r.accepted),
        rejected: [...reports.flatMap((r) => r.rejected), ...unroutable.map((rcpt) => ({ rcpt, error: noRoute }))],
        response: reports.map((r) => r.response).find(Boolean) ?? '',
      }
    },

    async close() {
      await Promise.all(transports.map((t) => t.close?.()))
    },
  }
}
