/**
 * Runs a command with a temporary PostgreSQL started for it (see postgres.ts), its URL in
 * DATABASE_URL, and stops it afterwards:
 *
 *   npx tsx test/helpers/with-postgres.ts npx tsx examples/cluster.ts --once
 *
 * Exits with the command's exit code.
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { startPostgres } from './postgres.js'

const [command, ...args] = process.argv.slice(2)
if (!command) {
  console.error('usage: with-postgres.ts <command> [args…]')
  process.exit(2)
}
const pg = await startPostgres()
let code = 1
try {
  const child = spawn(command, args, { stdio: 'inherit', env: { ...process.env, DATABASE_URL: pg.url } })
  const [exitCode] = (await once(child, 'exit')) as [number | null]
  code = exitCode ?? 1
} finally {
  await pg.stop()
}
process.exit(code)
