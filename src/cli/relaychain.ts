#!/usr/bin/env node
/**
 * The `relaychain` command (the package's `bin`). One command so far: `relaychain queue …`, the
 * operator's tool for a durable queue's directory; see `queue-command.ts`.
 */
import { QUEUE_USAGE, queueCommand } from './queue-command.js'

const USAGE = `usage: relaychain <command> …

  queue    list, show, hold, release, flush, delete or requeue entries of a queue directory

${QUEUE_USAGE}`

const [command, ...rest] = process.argv.slice(2)
const io = { out: (line: string) => console.log(line), err: (line: string) => console.error(line) }
if (command === 'queue') {
  queueCommand(rest, io).then(
    (code) => (process.exitCode = code),
    (err: unknown) => {
      console.error(`relaychain queue: ${(err as Error).message}`)
      process.exitCode = 1
    },
  )
} else {
  console.error(USAGE)
  process.exitCode = command === undefined || command === '--help' || command === '-h' ? 0 : 2
}
