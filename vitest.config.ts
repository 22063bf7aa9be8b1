import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vitest/config'

const src = (path: string) => fileURLToPath(new URL(`./src/${path}`, import.meta.url))

export default defineConfig({
  // Examples import the package by name, as users do; in this repository that is the source.
  resolve: {
    alias: [
      { find: /^relaychain\/testing$/, replacement: src('testing/index.ts') },
      { find: /^relaychain\/reporting$/, replacement: src('reporting/index.ts') },
      { find: /^relaychain\/stages\/(.+)$/, replacement: src('stages/$1.ts') },
      { find: /^relaychain$/, replacement: src('index.ts') },
    ],
  },
  test: {
    include: ['test/**/*.test.ts', 'examples/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
})
