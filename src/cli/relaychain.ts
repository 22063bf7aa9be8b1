#!/usr/bin/env node
/**
 * The `relaychain` command (the package's `bin`): `relaychain queue …`, the operator's tool for
 * a durable queue (a directory or the shared PostgreSQL store; see `queue-command.ts`), and
 * `relaychain db migrate`, the PostgreSQL schema (see `db-command.ts`).
 */
import { DB_USAGE, dbCommand } from './db-command.js'
import { QUEUE_USAGE, queueCommand } from './queue-command.js'

const USAGE = `usage: relaychain <command> …

  queue    list, show, hold, release, flush, delete or requeue entries of a queue
  db       create or upgrade the PostgreSQL schema of a shared queue

${QUEUE_USAGE}

${DB_USAGE}`

const [command, ...rest] = process.argv.slice(2)
const io = { out: (line: string) => console.log(line), err: (line: string) => console.error(line) }
const commands = { queue: queueCommand, db: dbCommand }
if (command === 'queue' || command === 'db') {
  commands[command](rest, io).then(
    (code) => (process.exitCode = code),
    (err: unknown) => {
      console.error(`relaychain ${command}: ${(err as Error).message}`)
      process.exitCode = 1
    },
  )
} else {
  console.error(USAGE)
  process.exitCode = command === undefined || command === '--help' || command === '-h' ? 0 : 2
}
