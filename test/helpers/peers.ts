/**
 * Real peers (scanners, servers, independent clients) that tests run against. A missing peer
 * skips its tests with a loud message naming the install command; under
 * RELAYCHAIN_REQUIRE_PEERS=1 (CI) it fails the test file instead, so CI cannot skip silently.
 */
import { spawnSync } from 'node:child_process'

/**
 * True if `binary` is on the PATH (and, given `probe`, running it with those arguments succeeds,
 * e.g. `['-c', 'import dkim']` for a Python module); see the file header for what happens when not.
 */
export function havePeer(binary: string, install: string, probe?: readonly string[]): boolean {
  const found = spawnSync('sh', ['-c', `command -v ${binary}`]).status === 0
  if (found && (!probe || spawnSync(binary, probe, { stdio: 'ignore' }).status === 0)) return true
  const message = `${probe ? `${binary} ${probe.join(' ')}` : binary} is not available; install it with: ${install}`
  if (process.env.RELAYCHAIN_REQUIRE_PEERS === '1') throw new Error(`${message} (required: RELAYCHAIN_REQUIRE_PEERS=1)`)
  console.warn(`\n*** SKIPPING tests that need ${binary}: ${message} ***\n`)
  return false
}

/** True if perl can load `module` (e.g. Mail::SRS); a missing one is handled as by {@link havePeer}. */
export function havePerlModule(module: string, install: string): boolean {
  if (!havePeer('perl', 'apt-get install -y perl')) return false
  if (spawnSync('perl', [`-M${module}`, '-e', '1']).status === 0) return true
  const message = `perl module ${module} is not installed; install it with: ${install}`
  if (process.env.RELAYCHAIN_REQUIRE_PEERS === '1') throw new Error(`${message} (required: RELAYCHAIN_REQUIRE_PEERS=1)`)
  console.warn(`\n*** SKIPPING tests that need ${module}: ${message} ***\n`)
  return false
}
