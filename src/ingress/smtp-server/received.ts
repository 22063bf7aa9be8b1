/**
 * The Received trace field the relay prepends to every message (RFC 5321 §4.4), in the form
 * Postfix writes, so that operators and loop detection find what they expect.
 */
import { isIPv6 } from 'node:net'
import type { Envelope } from '../../core/types.js'
import { rfc5322Date } from '../../shared/date.js'
import type { SessionView } from './session.js'

/**
 * How much the Received field says about the client.
 *
 * @category Relay
 */
export type TraceMode = 'full' | 'hide-client' | 'off'

/** The value of the Received field for one message. */
export function receivedValue(session: SessionView, envelope: Envelope, id: string, hostname: string, mode: TraceMode): string {
  const parts: string[] = []
  if (mode === 'full') {
    const ip = isIPv6(session.remoteAddress) ? `IPv6:${session.remoteAddress}` : session.remoteAddress
    const reverse = session.clientHostname && !session.clientHostname.startsWith('[') ? session.clientHostname : 'unknown'
    parts.push(`from ${session.heloName || 'unknown'} (${reverse} [${ip}])`)
  }
  const tls = session.tls
  parts.push(`by ${hostname} (relaychain)${tls ? ` (using ${tls.version} with cipher ${tls.cipher})` : ''}`)
  parts.push(`with ${session.protocol} id ${id}`)
  const only = envelope.rcptTo.length === 1 ? envelope.rcptTo[0] : undefined
  // Naming the recipient only when there is one keeps Bcc recipients private.
  const forPart = only ? ` for <${only.address}>` : ''
  return `${parts.join('\r\n\t')}${forPart};\r\n\t${rfc5322Date()}`
}
