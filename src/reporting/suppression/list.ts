/**
 * The suppression list: addresses (or whole domains) not to send to, per sender scope, each with
 * a reason and an optional expiry. Hard bounces and complaints add to it (through `Reporting`),
 * unsubscribes too; the `suppress()` stage checks it at RCPT. Kept in memory and in an
 * append-only file of changes (one JSON line each, written before the call returns), replayed
 * when the list opens, so a suppression survives a restart.
 */
import { closeSync, fdatasyncSync, openSync, writeSync } from 'node:fs'
import { mkdir, readFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import { addressKey, domainKey } from '../../core/address.js'
import { RelayError } from '../../core/errors.js'

/**
 * Why an address is suppressed.
 *
 * @category Reporting
 */
export type SuppressionReason = 'hard-bounce' | 'complaint' | 'unsubscribe' | 'manual'

/**
 * One suppression.
 *
 * @category Reporting
 */
export interface Suppression {
  /** An address (`ann@example.com`) or a domain (`example.com`). */
  readonly target: string
  /** `*` for every sender, or the sender domain it applies to. */
  readonly scope: string
  /** Why the target is suppressed. */
  readonly reason: SuppressionReason
  /** When it was added (ms since the epoch). */
  readonly added: number
  /** When it stops applying (ms since the epoch), if ever. */
  readonly expires?: number
  /** The event that caused it, if any. */
  readonly eventId?: string
}

/**
 * What {@link SuppressionList.add} takes.
 *
 * @category Reporting
 */
export interface SuppressionInput {
  /** An address (`ann@example.com`) or a domain (`example.com`). */
  readonly target: string
  /** `*` for every sender, or the sender domain it applies to. Default `*`. */
  readonly scope?: string
  /** Why the target is suppressed. */
  readonly reason: SuppressionReason
  /** When it stops applying (ms since the epoch). Default: never. */
  readonly expires?: number
  /** The event that caused it, if any. */
  readonly eventId?: string
}

/**
 * Options of {@link openSuppressionList}.
 *
 * @category Reporting
 */
export interface SuppressionListOptions {
  /** The file of changes (created if missing). */
  readonly file: string
  /** The clock, for `added` and expiry. Default `Date.now`. */
  readonly clock?: () => number
}

/**
 * The list.
 *
 * @category Reporting
 */
export interface SuppressionList {
  /** The suppression that stops mail from `sender` to `recipient`, if any (an address, then its domain; the sender's scope, then `*`). */
  check(recipient: string, sender?: string | null): Suppression | undefined
  /** Adds (or replaces) a suppression. */
  add(input: SuppressionInput): Suppression
  /** Removes a suppression; true if there was one. */
  remove(target: string, scope?: string): boolean
  /** Every suppression in force. */
  list(): Suppression[]
  /** Closes the file of changes; a later `add` or `remove` fails. */
  close(): void
}

function targetKey(target: string): string {
  return target.includes('@') ? addressKey(target) : domainKey(`@${target}`)
}

/**
 * Opens (or creates) a suppression list.
 *
 * @example
 * ```ts
 * const suppressions = await openSuppressionList({ file: '/var/lib/relay/suppressions.jsonl' })
 * suppressions.add({ target: 'gone@example.org', reason: 'manual' })
 * suppressions.check('gone@example.org', 'news@shop.example') // → { reason: 'manual', scope: '*', … }
 * ```
 *
 * @category Reporting
 */
export async function openSuppressionList(options: SuppressionListOptions): Promise<SuppressionList> {
  const clock = options.clock ?? Date.now
  const entries = new Map<string, Suppression>()
  await mkdir(dirname(options.file), { recursive: true })
  let text = ''
  try {
    text = await readFile(options.file, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
  }
  const lines = text.split('\n')
  // A torn last line (a crash mid-write) is ignored.
  for (const line of lines.slice(0, -1)) {
    const change = JSON.parse(line) as { op: 'add'; entry: Suppression } | { op: 'remove'; target: string; scope: string }
    if (change.op === 'add') entries.set(`${change.entry.scope}\0${change.entry.target}`, change.entry)
    else entries.delete(`${change.scope}\0${change.target}`)
  }
  const fd = openSync(options.file, 'a')
  if (lines.at(-1)) writeSync(fd, '\n')
  function write(change: object): void {
    writeSync(fd, `${JSON.stringify(change)}\n`)
    fdatasyncSync(fd)
  }
  function live(entry: Suppression | undefined): Suppression | undefined {
    return entry && (entry.expires === undefined || entry.expires > clock()) ? entry : undefined
  }
  return {
    check(recipient, sender) {
      const address = addressKey(recipient)
      const domain = domainKey(recipient)
      const scopes = sender?.includes('@') ? [domainKey(sender), '*'] : ['*']
      for (const scope of scopes) {
        const found = live(entries.get(`${scope}\0${address}`)) ?? live(entries.get(`${scope}\0${domain}`))
        if (found) return found
      }
      return undefined
    },
    add(input) {
      if (!input.target) throw new RelayError('ERR_RELAY_INVALID_OPTION', 'suppression: a target is required')
      const entry: Suppression = {
        target: targetKey(input.target),
        scope: input.scope && input.scope !== '*' ? domainKey(`@${input.scope}`) : '*',
        reason: input.reason,
        added: clock(),
        ...(input.expires !== undefined ? { expires: input.expires } : {}),
        ...(input.eventId ? { eventId: input.eventId } : {}),
      }
      write({ op: 'add', entry })
      entries.set(`${entry.scope}\0${entry.target}`, entry)
      return entry
    },
    remove(target, scope = '*') {
      const key = `${scope === '*' ? '*' : domainKey(`@${scope}`)}\0${targetKey(target)}`
      const entry = entries.get(key)
      if (!entry) return false
      write({ op: 'remove', target: entry.target, scope: entry.scope })
      entries.delete(key)
      return true
    },
    list: () => [...entries.values()].filter((e) => live(e)),
    close: () => closeSync(fd),
  }
}
