/**
 * ARC sealing (RFC 8617) for mail the relay forwards: a backup MX, an alias or forwarding
 * service. Forwarding breaks SPF at the next hop (the relay's address is not the sender's), so
 * the relay checks what it can of the message as it arrived (SPF for the client and envelope
 * sender, DKIM, DMARC, an earlier ARC chain), records the results in an ARC set
 * (ARC-Authentication-Results, ARC-Message-Signature, ARC-Seal) and signs it with its own key;
 * a receiver that trusts the relay can then rely on those results.
 *
 * Where it belongs: on a chain that forwards mail unchanged, after policy and trace stages.
 * It checks and seals in one step, so a stage that changed the message before it would make the
 * checks fail, and one after it would break the seal (the pipeline refuses that: like DKIM, ARC
 * seals the message). `dkimSign` may follow it; placed before, its own new signature would be
 * among the results ARC records.
 */
import { hostname } from 'node:os'
import type { DNSResolver } from 'mailauth'
import { chain } from '../core/body/chain.js'
import { toCrlf } from '../core/body/line-endings.js'
import { RelayError } from '../core/errors.js'
import type { Stage } from '../core/types.js'
import { type PrivateKeyInput, readPrivateKey, toDomain } from '../dkim/keys.js'
import { loadMailauth } from '../dkim/mailauth.js'

/**
 * Options of {@link arcSeal}.
 *
 * @category Stages
 */
export interface ArcSealOptions {
  /** The sealing domain (`d=`): the forwarder's own domain. */
  domain: string
  /** The selector (`s=`); the public key is published at `<selector>._domainkey.<domain>`. */
  selector: string
  /** An RSA private key (RFC 8617 defines rsa-sha256 only), read when the chain is built. */
  privateKey: PrivateKeyInput
  /** Who did the checks: the authserv-id in ARC-Authentication-Results. Default: the host name. */
  authservId?: string
  /**
   * DNS lookups for SPF, DKIM, DMARC and ARC keys, answering as `resolve(name, rrtype)` of
   * `node:dns/promises` does (TXT as arrays of strings; an error with code `ENOTFOUND` or
   * `ENODATA` for no record). Default: the system resolver.
   */
  resolver?: (name: string, rrtype: string) => Promise<readonly unknown[]>
}

/**
 * Adds an ARC set to each message, with the SPF, DKIM, DMARC and ARC results the relay
 * determined; a message whose earlier ARC chain already failed is passed on unsealed, as RFC
 * 8617 requires. Throws `RelayError` `ERR_RELAY_INVALID_OPTION` for a key that is not a readable
 * RSA key of at least 1024 bits.
 *
 * @example
 * ```ts
 * import { readFileSync } from 'node:fs'
 * const seal = arcSeal({ domain: 'forwarder.example', selector: 'arc2026', privateKey: readFileSync('/etc/relay/arc2026.pem') })
 * createRelay({ stages: [relayPolicy({ domains: ['forwarded.example'] }), seal], transport })
 * ```
 *
 * @category Stages
 */
export function arcSeal(options: ArcSealOptions): Stage {
  const domain = toDomain(options.domain)
  const selector = toDomain(options.selector, 'ARC selector')
  const key = readPrivateKey(options.privateKey, `ARC key ${selector}._domainkey.${domain}`)
  if (key.asymmetricKeyType !== 'rsa') {
    throw new RelayError('ERR_RELAY_INVALID_OPTION', `arcSeal: the key must be RSA (RFC 8617 defines rsa-sha256 only), got ${key.asymmetricKeyType}`)
  }
  // mailauth takes the key as PEM and reads it for each message.
  const privateKey = key.export({ type: 'pkcs8', format: 'pem' }) as string
  const authservId = options.authservId ?? hostname()
  const resolver = options.resolver as DNSResolver | undefined

  return {
    name: 'arc-seal',
    modifies: 'trace',
    seals: 'message',
    async data(msg, next) {
      const { authenticate } = await loadMailauth()
      await msg.body.spool()
      // Check and seal the message as it will be sent: every writer of ours sends CRLF only.
      const result = await authenticate(chain(msg.stream(), [toCrlf()]), {
        ip: msg.session.remoteAddress.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, ''),
        ...(msg.session.heloName ? { helo: msg.session.heloName } : {}),
        ...(msg.original.mailFrom ? { sender: msg.original.mailFrom.address } : {}),
        mta: authservId,
        ...(resolver ? { resolver } : {}),
        disableBimi: true,
        seal: { signingDomain: domain, selector, privateKey, algorithm: 'rsa-sha256' },
      })
      // mailauth returns the ARC set on top of Authentication-Results and Received-SPF; only the
      // ARC set is for the next hop.
      const fields = result.headers.split(/\r\n(?![ \t])/).filter((field) => /^ARC-/i.test(field))
      for (const field of fields.reverse()) {
        const colon = field.indexOf(':')
        msg.headers.add(field.slice(0, colon), field.slice(colon + 1).trimStart())
      }
      return next()
    },
  }
}
