/**
 * `relayTag()`: campaign and stream tags for reporting. Reads the `X-Relay-Tag` field (several
 * fields, or comma-separated names) of messages from authenticated users, and always strips it
 * before delivery: a tag is the sender's own bookkeeping, never the recipient's business, and an
 * unauthenticated client cannot set one. A `tags` function adds tags of its own (a stream per
 * login, say). The tags go to `Reporting` and appear on every event of the message.
 *
 * Place it before any signer (it removes a field) and before `tracking()`.
 */
import { RelayError } from '../core/errors.js'
import type { Message, Stage } from '../core/types.js'
import type { Reporting } from '../reporting/reporting.js'

/**
 * Options of {@link relayTag}.
 *
 * @category Reporting
 */
export interface RelayTagOptions {
  /** Where the tags go. */
  readonly reporting: Pick<Reporting, 'note'>
  /** The field name. Default `X-Relay-Tag`. */
  readonly header?: string
  /** Tags of the stage's own for a message (added to the field's, for any sender). */
  readonly tags?: (msg: Message) => readonly string[] | undefined
  /** Most tags per message. Default 10. */
  readonly maxTags?: number
}

const TAG = /^[\w.:/@+-]{1,64}$/

/** The tags a message's `header` fields give, for authenticated senders only, with `extra` added; valid names, at most `max`. */
export function tagsOf(msg: Message, header: string, max: number, extra: readonly string[] = []): string[] {
  const given = msg.session.user ? msg.headers.getAll(header).flatMap((value) => value.split(',')) : []
  return [...new Set([...given, ...extra].map((t) => t.trim()).filter((t) => TAG.test(t)))].slice(0, max)
}

/**
 * Creates the tag stage.
 *
 * @example
 * ```ts
 * const stages = [
 *   relayPolicy({ requireAuth: true }),
 *   relayTag({ reporting, tags: (msg) => [`user:${msg.session.user}`] }),
 *   tracking({ reporting, baseUrl: 'https://t.example.com', keys }),
 *   dkimSign({ keys: dkimKeys }),
 * ]
 * ```
 *
 * @category Reporting
 */
export function relayTag(options: RelayTagOptions): Stage {
  const header = options.header ?? 'X-Relay-Tag'
  const max = options.maxTags ?? 10
  if (!/^[\x21-\x39\x3b-\x7e]+$/.test(header)) throw new RelayError('ERR_RELAY_INVALID_OPTION', `relayTag: ${header} is not a field name`)
  return {
    name: 'relay-tag',
    modifies: 'headers',
    async data(msg, next) {
      const tags = tagsOf(msg, header, max, options.tags?.(msg) ?? [])
      msg.headers.remove(header)
      if (tags.length) options.reporting.note(msg.id, { tags })
      return next()
    },
  }
}
