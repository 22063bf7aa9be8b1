/**
 * `relaychain queue …`: the operator's view of a queue, like Postfix's `postqueue` and
 * `postsuper`: a queue directory (`--dir`), or the PostgreSQL store every node of a cluster
 * shares (`--pg URL`). It works on the store itself, so it is safe to run while the relays run:
 * moves are renames (or row updates) the workers notice, and nothing here takes a relay's lock.
 */
import { stat } from 'node:fs/promises'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import type { Transport } from '../core/types.js'
import { pgStore } from '../queue/pg-store.js'
import { durableQueue } from '../queue/queue.js'
import type { EntryPlace, EntrySummary, QueueEntry } from '../queue/types.js'

/** What a command prints to and how it ends. */
export interface CommandIo {
  out(line: string): void
  err(line: string): void
}

export const QUEUE_USAGE = `usage: relaychain queue <command> (--dir DIR | --pg URL [--schema NAME]) [--json]

  list                 every entry: id, size, arrival, where it is, sender, recipients and last reply
  show ID              one entry with each recipient's state and attempts
  hold ID              hold an entry (it is not delivered until released)
  release ID           release a held entry: due now
  flush                make every entry due now, and have the relay forget its dead-destination throttles
  delete ID [--notify] delete an entry; --notify sends its sender a failure notice
  requeue ID           retry every recipient not delivered nor bounced, now, with a new lifetime`

/** The queue is only read and moved here: its deliveries are the relay's. */
const NO_DELIVERY: Transport = {
  name: 'cli',
  send: () => Promise.reject(new Error('the command-line tool does not deliver')),
}

/** Runs `relaychain queue …`; resolves with the exit code (0 done, 1 no such entry or a failure, 2 usage). */
export async function queueCommand(argv: readonly string[], io: CommandIo): Promise<number> {
  let parsed: ReturnType<typeof parseQueueArgs>
  try {
    parsed = parseQueueArgs(argv)
  } catch (err) {
    io.err(`${(err as Error).message}\n${QUEUE_USAGE}`)
    return 2
  }
  const { values, positionals } = parsed
  const [command, id, ...extra] = positionals
  if (values.help) return (io.out(QUEUE_USAGE), 0)
  const needsId = ['show', 'hold', 'release', 'delete', 'requeue']
  if (
    !command ||
    !values.dir === !values.pg ||
    (needsId.includes(command) ? !id || extra.length : id) ||
    !['list', 'flush', ...needsId].includes(command)
  ) {
    io.err(QUEUE_USAGE)
    return 2
  }
  if (values.dir && !(await isQueueDir(values.dir))) {
    io.err(`${values.dir} is not a queue directory (no due/ in it): give the directory the relay's durableQueue uses`)
    return 1
  }
  const store = values.pg
    ? pgStore({ connectionString: values.pg, maxConnections: 2, ...(values.schema ? { schema: values.schema } : {}) })
    : undefined
  const queue = durableQueue({ ...(store ? { store } : { dir: values.dir! }), deliver: NO_DELIVERY })
  const where = store ? store.describe() : values.dir
  try {
    return await run(queue, command, id, values.json === true, values.notify === true, where!, io)
  } finally {
    await store?.close()
  }
}

async function run(
  queue: ReturnType<typeof durableQueue>,
  command: string,
  id: string | undefined,
  json: boolean,
  notify: boolean,
  where: string,
  io: CommandIo,
): Promise<number> {
  const done = (ok: boolean, what: string) => {
    if (json) io.out(JSON.stringify({ id, ok }))
    else if (ok) io.out(`${id}: ${what}`)
    else io.err(`${id}: no such entry in ${where}`)
    return ok ? 0 : 1
  }
  switch (command) {
    case 'list':
      return list(queue.list(), json, io)
    case 'show': {
      const entry = await queue.show(id!)
      if (!entry) return done(false, '')
      io.out(json ? JSON.stringify(details(entry)) : showText(entry))
      return 0
    }
    case 'hold':
      return done(await queue.hold(id!), 'held')
    case 'release':
      return done(await queue.release(id!), 'released, due now')
    case 'delete':
      return done(await queue.delete(id!, { notify }), notify ? 'deleted, sender notified' : 'deleted')
    case 'requeue':
      return done(await queue.requeue(id!), 'requeued, due now')
    default: {
      const moved = await queue.flush()
      io.out(
        json
          ? JSON.stringify({ flushed: moved })
          : `${moved} ${moved === 1 ? 'entry' : 'entries'} made due now; the relay retries dead destinations at once`,
      )
      return 0
    }
  }
}

function parseQueueArgs(argv: readonly string[]) {
  return parseArgs({
    args: [...argv],
    allowPositionals: true,
    options: {
      dir: { type: 'string' },
      pg: { type: 'string' },
      schema: { type: 'string' },
      json: { type: 'boolean' },
      notify: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  })
}

async function list(entries: AsyncIterable<EntrySummary>, json: boolean, io: CommandIo): Promise<number> {
  let count = 0
  let bytes = 0
  const now = Date.now()
  if (!json) io.out(`${'Queue ID'.padEnd(18)} ${'Size'.padStart(9)}  ${'Arrival (UTC)'.padEnd(19)}  ${'Place'.padEnd(28)}  Sender/Recipient`)
  for await (const entry of entries) {
    count++
    bytes += entry.size
    if (json) {
      io.out(JSON.stringify({ ...entry, age: Math.max(0, Math.round((now - entry.created) / 1000)) }))
      continue
    }
    io.out(`${entry.id.padEnd(18)} ${String(entry.size).padStart(9)}  ${utc(entry.created)}  ${placeText(entry.place).padEnd(28)}  ${entry.from}`)
    for (const r of entry.recipients) {
      if (r.status === 'delivered') continue
      io.out(`${' '.repeat(86)}${r.address}${r.reply ? ` (${r.status}: ${r.reply})` : ''}`)
    }
  }
  if (!json) io.out(count ? `-- ${Math.ceil(bytes / 1024)} KiB in ${count} ${count === 1 ? 'entry' : 'entries'}.` : 'Queue is empty.')
  return 0
}

function details(entry: QueueEntry) {
  const { header } = entry
  return {
    id: header.id,
    created: header.created,
    ...(header.requeued ? { requeued: header.requeued } : {}),
    size: header.size,
    from: header.from?.address ?? '<>',
    ...(header.notice ? { notice: header.notice } : {}),
    ...(header.client ? { client: header.client } : {}),
    place: entry.place,
    recipients: header.recipients.map((r, i) => ({
      address: r.rcpt.address,
      status: entry.status[i],
      attempts: entry.attempts[i],
      ...(entry.replies[i] ? { reply: entry.replies[i] } : {}),
    })),
  }
}

function showText(entry: QueueEntry): string {
  const d = details(entry)
  const lines = [
    `id:       ${d.id}`,
    `arrival:  ${utc(d.created)} UTC${d.requeued ? ` (requeued ${utc(d.requeued)} UTC)` : ''}`,
    `size:     ${d.size}`,
    `sender:   ${d.from}${d.notice ? ` (a ${d.notice} notice of this relay)` : ''}`,
    ...(d.client
      ? [`client:   ${d.client.ip}${d.client.user ? ` (${d.client.user})` : ''}, session ${d.client.session}, listener ${d.client.listener}`]
      : []),
    `place:    ${placeText(d.place)}`,
    'recipients:',
    ...d.recipients.map(
      (r) => `  ${r.address}: ${r.status}, ${r.attempts} attempt${r.attempts === 1 ? '' : 's'}${r.reply ? `, last reply: ${r.reply}` : ''}`,
    ),
  ]
  return lines.join('\n')
}

function placeText(place: EntryPlace): string {
  if (place.kind === 'held') return 'held'
  if (place.kind === 'waiting') return `waiting for ${place.destination}`
  return `due ${utc(place.at)}`
}

async function isQueueDir(dir: string): Promise<boolean> {
  return stat(join(dir, 'due')).then(
    (s) => s.isDirectory(),
    () => false,
  )
}

function utc(ms: number): string {
  return new Date(ms).toISOString().slice(0, 19).replace('T', ' ')
}
