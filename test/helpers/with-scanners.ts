/**
 * Runs a command with a spamd and a clamd started for it (offline, on free loopback ports, see
 * scanners.ts), their ports in SPAMD_PORT and CLAMD_PORT, and stops both afterwards:
 *
 *   npx tsx test/helpers/with-scanners.ts npx tsx examples/content-scan.ts --once
 *
 * Exits with the command's exit code.
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { startClamd, startSpamd } from './scanners.js'

const [command, ...args] = process.argv.slice(2)
if (!command) {
  console.error('usage: with-scanners.ts <command> [args…]')
  process.exit(2)
}
const [spamd, clamd] = await Promise.all([startSpamd(), startClamd()])
let code = 1
try {
  const child = spawn(command, args, {
    stdio: 'inherit',
    env: { ...process.env, SPAMD_HOST: spamd.host, SPAMD_PORT: String(spamd.port), CLAMD_HOST: clamd.host, CLAMD_PORT: String(clamd.port) },
  })
  const [exitCode] = (await once(child, 'exit')) as [number | null]
  code = exitCode ?? 1
} finally {
  await Promise.all([spamd.stop(), clamd.stop()])
}
process.exit(code)
