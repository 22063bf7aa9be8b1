/**
 * Runs the queue's store-agnostic behaviour tests against each store: the directory store, and
 * the PostgreSQL store on a server started for the test file (see postgres.ts; skipped loudly
 * when PostgreSQL is not installed, failing under RELAYCHAIN_REQUIRE_PEERS=1). Each test gets a
 * schema of its own, named after its harness directory, so a test that restarts a queue on the
 * same `dir` finds its entries again.
 */
import { createHash } from 'node:crypto'
import { afterAll, beforeAll, describe } from 'vitest'
import { pgStore } from '../../src/index.js'
import { havePostgres, startPostgres, type TestPostgres } from './postgres.js'
import { type QueueHarness, type QueueHarnessOptions, startQueue } from './queue.js'

export type StartQueue = (options?: QueueHarnessOptions) => Promise<QueueHarness>

/** The schema of a harness directory. */
export function schemaOf(dir: string): string {
  return `q_${createHash('sha256').update(dir).digest('hex').slice(0, 16)}`
}

/** The `relaychain queue` arguments that name the store of a harness directory. */
export type StoreArgs = (dir: string) => string[]

/** `describe(title)` once per store; `body` gets the harness of that store and its command-line arguments. */
export function describeStores(title: string, body: (start: StartQueue, kind: 'dir' | 'pg', args: StoreArgs) => void): void {
  describe(`${title} (directory store)`, () => body(startQueue, 'dir', (dir) => ['--dir', dir]))
  const pgThere = havePostgres()
  describe.skipIf(!pgThere)(`${title} (PostgreSQL store)`, () => {
    let pg: TestPostgres | undefined
    beforeAll(async () => {
      pg = await startPostgres()
    })
    afterAll(() => pg?.stop())
    body(
      (options = {}) => startQueue({ store: (dir) => pgStore({ connectionString: pg!.url, schema: schemaOf(dir), maxConnections: 4 }), ...options }),
      'pg',
      (dir) => ['--pg', pg!.url, '--schema', schemaOf(dir)],
    )
  })
}
