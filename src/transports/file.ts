/**
 * `fileTransport()`: delivers into a local directory, durably (written, fsync'd, then renamed
 * into place, so a reader never sees half a message). The embedded default for the demo and for
 * tests, and a simple archive.
 *
 * - `'eml'` (default): `<id>.<n>.eml` with the message and `<id>.<n>.json` with the envelope
 *   (the JSON is written first; the `.eml` appearing means both are complete).
 * - `'maildir'`: a Maildir (`tmp/`, `new/`, `cur/`) any IMAP server or MUA reads, with a
 *   `Return-Path` field prepended. Maildir has no place for the recipients: use `'eml'` to keep them.
 *
 * Output always has CRLF line endings.
 */
import { type FileHandle, mkdir, open, rename, unlink } from 'node:fs/promises'
import { hostname } from 'node:os'
import { dirname, join } from 'node:path'
import { chain } from '../core/body/chain.js'
import { toCrlf } from '../core/body/line-endings.js'
import type { Message, Transport } from '../core/types.js'
import type { ArchiveRecord } from '../stages/archive-tap.js'

/**
 * Options of {@link fileTransport}.
 *
 * @category Transports
 */
export interface FileTransportOptions {
  /** Directory to write into; created if missing. */
  dir: string
  /** Default `'eml'`. */
  format?: 'eml' | 'maildir'
}

/**
 * What the JSON sidecar of an `'eml'` delivery holds.
 *
 * @category Transports
 */
export interface FileEnvelopeRecord {
  /** The transaction id. */
  id: string
  /** When the file was written, ISO 8601 in UTC. */
  receivedAt: string
  /** The envelope sender as delivered; `null` for the null sender. */
  mailFrom: string | null
  /** The envelope recipients as delivered. */
  rcptTo: string[]
  /** The envelope as the client sent it, before any rewrite. */
  original: {
    /** The sender the client gave; `null` for the null sender. */
    mailFrom: string | null
    /** The recipients the client gave. */
    rcptTo: string[]
  }
  /** Who sent it. */
  client: {
    /** The client's IP address. */
    address: string
    /** The name it gave with HELO/EHLO. */
    helo: string
    /** The login name, if it authenticated. */
    user?: string
  }
  /** Present when the message is an archive copy (`archiveTap`): which copy, and what became of the original. */
  archive?: ArchiveRecord
}

/**
 * Creates a transport that writes each message to a directory.
 *
 * @example
 * ```ts
 * const relay = createRelay({ stages, transport: fileTransport({ dir: './mail', format: 'maildir' }) })
 * ```
 *
 * @category Transports
 */
export function fileTransport(options: FileTransportOptions): Transport {
  const format = options.format ?? 'eml'
  let seq = 0
  let ready: Promise<unknown> | undefined
  const prepare = () =>
    (ready ??=
      format === 'maildir'
        ? Promise.all(['tmp', 'new', 'cur'].map((d) => mkdir(join(options.dir, d), { recursive: true })))
        : mkdir(options.dir, { recursive: true }))

  async function writeDurably(tmp: string, final: string, write: (handle: FileHandle) => Promise<void>) {
    const handle = await open(tmp, 'wx', 0o640)
    try {
      await write(handle)
      await handle.sync()
    } catch (err) {
      await handle.close()
      await unlink(tmp).catch(() => {})
      throw err
    }
    await handle.close()
    await rename(tmp, final)
    // The rename is durable only once the directory itself is synced.
    const dir = await open(dirname(final), 'r')
    await dir.sync().finally(() => dir.close())
  }

  async function writeMessage(msg: Message, tmp: string, final: string, prefix?: string) {
    await writeDurably(tmp, final, async (handle) => {
      if (prefix) await handle.write(prefix)
      for await (const chunk of chain(msg.stream(), [toCrlf()])) await handle.write(chunk as Buffer)
    })
  }

  return {
    name: 'file',
    describe: () => `file ${options.dir} (${format})`,
    async send(msg) {
      await prepare()
      seq += 1
      if (format === 'maildir') {
        const now = Date.now()
        const unique = `${Math.floor(now / 1000)}.M${(now % 1000) * 1000}P${process.pid}Q${seq}.${hostname().replace(/[/:]/g, '_')}`
        const returnPath = `Return-Path: <${msg.envelope.mailFrom?.address ?? ''}>\r\n`
        await writeMessage(msg, join(options.dir, 'tmp', unique), join(options.dir, 'new', unique), returnPath)
        return { accepted: [...msg.envelope.rcptTo], rejected: [], response: `250 2.0.0 Ok: stored as ${unique}` }
      }
      const base = join(options.dir, `${msg.id}.${seq}`)
      const record: FileEnvelopeRecord = {
        id: msg.id,
        receivedAt: new Date().toISOString(),
        mailFrom: msg.envelope.mailFrom?.address ?? null,
        rcptTo: msg.envelope.rcptTo.map((r) => r.address),
        original: { mailFrom: msg.original.mailFrom?.address ?? null, rcptTo: msg.original.rcptTo.map((r) => r.address) },
        client: { address: msg.session.remoteAddress, helo: msg.session.heloName, ...(msg.session.user ? { user: msg.session.user } : {}) },
        ...(msg.state.archive ? { archive: msg.state.archive } : {}),
      }
      await writeDurably(`${base}.json.tmp`, `${base}.json`, async (h) => void (await h.writeFile(`${JSON.stringify(record, null, 2)}\n`)))
      await writeMessage(msg, `${base}.eml.tmp`, `${base}.eml`)
      return { accepted: [...msg.envelope.rcptTo], rejected: [], response: `250 2.0.0 Ok: stored as ${msg.id}.${seq}.eml` }
    },
  }
}
