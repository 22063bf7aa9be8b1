/**
 * Under a bundler relaychain's guards see smtp-server's code rewritten, and refuse to start with
 * advice that works: mark smtp-server as external. Both halves are tried with esbuild. The
 * prebuilt addon of @node-rs/argon2 (an optional peer) cannot be bundled at all: it is external in both.
 */
import { spawnSync } from 'node:child_process'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { build } from 'esbuild'
import { describe, expect, it } from 'vitest'
import { afterTest } from './helpers/after-test.js'

const entry = new URL('./fixtures/bundle/entry.ts', import.meta.url).pathname

async function bundleAndRun(external: string[]): Promise<string> {
  // Inside the project, so that an external smtp-server resolves from its node_modules.
  await mkdir('.tmp', { recursive: true })
  const dir = await mkdtemp(join('.tmp', 'bundle-'))
  afterTest(() => rm(dir, { recursive: true, force: true }))
  const outfile = join(dir, 'app.mjs')
  await build({
    entryPoints: [entry],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    outfile,
    external,
    logLevel: 'silent',
    // Bundled CommonJS dependencies call require(); give the ESM bundle one.
    banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
  })
  const run = spawnSync(process.execPath, [outfile], { encoding: 'utf8', timeout: 20_000, cwd: process.cwd() })
  return `${run.stdout}${run.stderr}`.trim()
}

describe('bundled', () => {
  it('with smtp-server inlined, refuses to start with ERR_RELAY_INCOMPATIBLE_SERVER and says to mark it external', async () => {
    const out = await bundleAndRun(['@node-rs/argon2'])
    expect(out).toMatch(
      /^ERR_RELAY_INCOMPATIBLE_SERVER: smtp-server [^:]+: SMTPServer\.prototype\.connect is not the code relaychain was written against/,
    )
    expect(out).toContain('mark smtp-server as external (esbuild --external:smtp-server')
  })

  it('with smtp-server external, as the error advises, starts and listens', async () => {
    expect(await bundleAndRun(['smtp-server', '@node-rs/argon2'])).toMatch(/^LISTENING \d+$/)
  })
})
