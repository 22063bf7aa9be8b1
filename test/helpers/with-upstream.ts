/**
 * Runs a command with an SMTP server started for it, as its real upstream: a test sink on a free
 * loopback port, given to the command in UPSTREAM_HOST and UPSTREAM_PORT. Fails unless the
 * command exits 0 and the sink received at least one message:
 *
 *   npx tsx test/helpers/with-upstream.ts npx tsx examples/dkim-signing.ts
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { startSink } from '../../src/testing/index.js'

const [command, ...args] = process.argv.slice(2)
if (!command) {
  console.error('usage: with-upstream.ts <command> [args…]')
  process.exit(2)
}
const sink = await startSink()
let code = 1
try {
  const child = spawn(command, args, { stdio: 'inherit', env: { ...process.env, UPSTREAM_HOST: sink.host, UPSTREAM_PORT: String(sink.port) } })
  const [exitCode] = (await once(child, 'exit')) as [number | null]
  code = exitCode ?? 1
  if (code === 0 && sink.messages.length === 0) {
    console.error(`${command} ${args.join(' ')}: the upstream received nothing`)
    code = 1
  }
  if (code === 0) console.log(`with-upstream: the upstream received ${sink.messages.length} message(s)`)
} finally {
  await sink.close()
}
process.exit(code)
