/**
 * address-rewrite: Postfix canonical/generic/virtual-style address rewriting, for domain
 * migrations and masquerading. A sender map rewrites the envelope sender and the From, Sender and
 * Reply-To fields; a recipient map rewrites each envelope recipient (or expands it to several)
 * and the To and Cc fields (one-to-one entries only). Header rewrites replace only the addresses:
 * display names, RFC 2047 encoded words, comments and folding stay as they were. With `srs`,
 * senders from other domains are rewritten with the Sender Rewriting Scheme so that forwarded
 * mail keeps passing SPF, and bounces to our SRS addresses are reversed at RCPT time (a forged or
 * expired one is refused with `550 5.1.1`).
 *
 * Place it after the stage that grants relay permission (`relayPolicy`): that stage must judge
 * the recipient the client gave (an SRS bounce address is ours; what it reverses to is not), and
 * the rewritten recipients keep the permission their original was granted. Place it before any
 * signer: it declares `modifies: 'headers'` when it rewrites header fields.
 */

import { rewriteAddressField } from '../address/header-fields.js'
import { type AddressMap, compileMap, type Lookup } from '../address/map.js'
import { createSrs, type SrsOptions } from '../address/srs.js'
import { RelayError, SmtpError } from '../core/errors.js'
import type { Address, Message, Next, Stage, Transaction } from '../core/types.js'

/**
 * An address header field the stage can rewrite.
 *
 * @category Stages
 */
export type AddressHeaderField = 'from' | 'sender' | 'reply-to' | 'to' | 'cc'

/**
 * Options of {@link addressRewrite}.
 *
 * @category Stages
 */
export interface AddressRewriteOptions {
  /** Rewrites the envelope sender and the From, Sender and Reply-To fields; one address per entry. */
  readonly sender?: AddressMap
  /** Rewrites (one address) or expands (several) each envelope recipient; To and Cc for one-to-one entries. */
  readonly recipients?: AddressMap
  /** Header fields to rewrite. Default all five; `[]` rewrites the envelope only. */
  readonly headers?: readonly AddressHeaderField[]
  /** Sender Rewriting Scheme for forwarded mail, and reversal of bounces to SRS addresses. */
  readonly srs?: SrsOptions
}

const SENDER_FIELDS: readonly AddressHeaderField[] = ['from', 'sender', 'reply-to']
const ALL_FIELDS: readonly AddressHeaderField[] = [...SENDER_FIELDS, 'to', 'cc']
const utf8 = new TextDecoder('utf-8', { fatal: true })

/**
 * Creates the address rewrite stage.
 *
 * @example
 * ```ts
 * addressRewrite({
 *   sender: { '@old.example': '@new.example', 'root@host.internal.example': 'it@new.example' },
 *   recipients: { 'sales@new.example': ['ann@new.example', 'bob@new.example'], '@old.example': '@new.example' },
 *   srs: { secret: process.env.SRS_SECRET!, domain: 'srs.new.example', localDomains: ['new.example'] },
 * })
 * ```
 *
 * @category Stages
 */
export function addressRewrite(options: AddressRewriteOptions): Stage {
  const sender = options.sender && compileMap(options.sender, 'address-rewrite sender', true)
  const recipients = options.recipients && compileMap(options.recipients, 'address-rewrite recipients', false)
  const srs = options.srs && createSrs(options.srs)
  if (!sender && !recipients && !srs) throw new RelayError('ERR_RELAY_INVALID_OPTION', 'address-rewrite: give sender, recipients or srs')
  const unknown = options.headers?.find((f) => !ALL_FIELDS.includes(f))
  if (unknown) throw new RelayError('ERR_RELAY_INVALID_OPTION', `address-rewrite: cannot rewrite header field ${JSON.stringify(unknown)}`)
  const fields = (options.headers ?? ALL_FIELDS).filter((f) => (SENDER_FIELDS.includes(f) ? sender : recipients))
  return {
    name: 'address-rewrite',
    ...((sender || srs) && {
      async mailFrom(tx: Transaction, from: Address | null) {
        if (!from) return
        let address = (await sender?.(from.address, tx))?.[0] ?? from.address
        if (srs?.rewrites(address)) address = srs.forward(address)
        return address === from.address ? undefined : { ...from, address }
      },
    }),
    ...((recipients || srs) && {
      async rcptTo(tx: Transaction, to: Address) {
        if (srs?.owns(to.address)) {
          const result = srs.reverse(to.address)
          if ('failure' in result)
            throw new SmtpError(550, '5.1.1', 'Invalid or expired SRS address', { reason: `SRS ${result.failure}: ${to.address}` })
          return { ...to, address: result.address }
        }
        const expanded = await recipients?.(to.address, tx)
        if (!expanded || (expanded.length === 1 && expanded[0] === to.address)) return
        return expanded.map((address): Address => ({ ...to, address }))
      },
    }),
    ...(fields.length > 0 && {
      modifies: 'headers' as const,
      async data(msg: Message, next: Next) {
        for (const field of fields) await rewriteField(msg, field, (SENDER_FIELDS.includes(field) ? sender : recipients)!)
        return next()
      },
    }),
  }
}

/** Rewrites every occurrence of one address field; fields that are not valid UTF-8 stay as they are. */
async function rewriteField(msg: Message, field: AddressHeaderField, lookup: Lookup): Promise<void> {
  const found = msg.headers.fields().filter((f) => f.name.toLowerCase() === field)
  const values = found.map((f) => decode(f.raw))
  if (!found.length || values.includes(undefined)) return
  const rewrite = async (address: string) => {
    const result = await lookup(address, msg)
    return result?.length === 1 ? result[0] : undefined
  }
  let changed = false
  for (const [i, value] of values.entries()) {
    const next = await rewriteAddressField(value!, rewrite)
    if (next !== undefined) [values[i], changed] = [next, true]
  }
  if (!changed) return
  const name = found[0]!.name
  if (found.length === 1) msg.headers.set(name, values[0]!)
  else {
    // Several fields of one name (malformed, but seen): keep them all, in order, at the end.
    msg.headers.remove(name)
    for (const value of values) msg.headers.append(name, value!)
  }
}

/** The value of a raw field (folding kept), or `undefined` if it is not valid UTF-8. */
function decode(raw: Buffer): string | undefined {
  try {
    return utf8.decode(raw).replace(/^[^:]*:[ \t]*|\r\n$/g, '')
  } catch {
    return undefined
  }
}
