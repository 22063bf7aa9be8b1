/**
 * `relaychain db migrate --pg URL [--schema NAME]`: creates or upgrades the PostgreSQL schema
 * of the shared queue (what every node also does on start), for deployments that run schema
 * changes as a step of their own, with a role that may create tables. Safe to run while nodes
 * run and from several places at once: the migrations take an advisory lock.
 */
import { parseArgs } from 'node:util'
import { pgStore } from '../queue/pg-store.js'
import type { CommandIo } from './queue-command.js'

export const DB_USAGE = `usage: relaychain db migrate --pg URL [--schema NAME] [--json]

  migrate              create or upgrade the queue's tables (schema default: relaychain)`

/** Runs `relaychain db …`; resolves with the exit code (0 done, 1 a failure, 2 usage). */
export async function dbCommand(argv: readonly string[], io: CommandIo): Promise<number> {
  let values: { pg?: string; schema?: string; json?: boolean; help?: boolean }
  let positionals: string[]
  try {
    ;({ values, positionals } = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: { pg: { type: 'string' }, schema: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
    }))
  } catch (err) {
    io.err(`${(err as Error).message}\n${DB_USAGE}`)
    return 2
  }
  if (values.help) return (io.out(DB_USAGE), 0)
  if (positionals.join(' ') !== 'migrate' || !values.pg) {
    io.err(DB_USAGE)
    return 2
  }
  const store = pgStore({ connectionString: values.pg, maxConnections: 1, ...(values.schema ? { schema: values.schema } : {}) })
  try {
    await store.pool()
    const result = store.migration!
    if (values.json) io.out(JSON.stringify(result))
    else if (result.applied.length)
      io.out(`schema ${result.schema}: applied queue migration ${result.applied.join(', ')}; now at version ${result.version}`)
    else io.out(`schema ${result.schema}: up to date (queue version ${result.version})`)
    return 0
  } finally {
    await store.close()
  }
}
