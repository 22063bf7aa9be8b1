import { existsSync, readdirSync } from 'node:fs'
import { defineConfig } from 'tsup'

// Each stage is also its own subpath export (relaychain/stages/<name>), so that an application
// loads only the stages it uses and their optional dependencies.
const stages = Object.fromEntries(
  (existsSync('src/stages') ? readdirSync('src/stages', { withFileTypes: true }) : [])
    .filter((f) => f.isFile() && f.name.endsWith('.ts'))
    .map((f) => [`stages/${f.name.slice(0, -3)}`, `src/stages/${f.name}`]),
)

export default defineConfig({
  entry: {
    index: 'src/index.ts',
    'testing/index': 'src/testing/index.ts',
    'reporting/index': 'src/reporting/index.ts',
    'cli/relaychain': 'src/cli/relaychain.ts',
    ...stages,
  },
  format: ['esm', 'cjs'],
  dts: true,
  target: 'node20',
  platform: 'node',
  sourcemap: true,
  clean: true,
  splitting: true,
  // import.meta.url in the CommonJS build (the smtp-server guards read its package.json).
  shims: true,
})
