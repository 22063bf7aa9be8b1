/**
 * Versioned schema migrations on PostgreSQL. Each feature (the queue, later the event store)
 * has an ordered list of steps; `migrate()` applies the ones a schema lacks in one transaction
 * under an advisory lock, so several nodes starting at once apply each step exactly once (the
 * others wait for the lock, then find nothing to do). A schema newer than this code is refused.
 */
import { RelayError } from '../../core/errors.js'
import { ident, inTransaction, type PgPool } from './driver.js'

/**
 * One step: its version (1, 2, …, per feature), a name, and the SQL (`{schema}` is replaced by the quoted schema).
 *
 * @category Queue
 */
export interface Migration {
  /** 1, 2, … in order. */
  readonly version: number
  /** What it does. */
  readonly name: string
  /** The statements. */
  readonly sql: string
}

/**
 * What `migrate()` did.
 *
 * @category Queue
 */
export interface MigrationResult {
  /** The schema migrated. */
  readonly schema: string
  /** The versions applied now (empty: it was up to date). */
  readonly applied: readonly number[]
  /** The version the schema is at now. */
  readonly version: number
}

/** Applies the missing `migrations` of `feature` to `schema`; see the file header. */
export async function migrate(pool: PgPool, schema: string, feature: string, migrations: readonly Migration[]): Promise<MigrationResult> {
  const s = ident(schema)
  return inTransaction(pool, async (client) => {
    // One lock per schema, held until COMMIT: concurrent nodes run the steps one after the other.
    await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`relaychain.migrate:${schema}`])
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${s}`)
    await client.query(
      `CREATE TABLE IF NOT EXISTS ${s}.migrations (feature text NOT NULL, version int NOT NULL, name text NOT NULL, applied timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (feature, version))`,
    )
    const { rows } = await client.query<{ version: number | null }>(`SELECT max(version) AS version FROM ${s}.migrations WHERE feature = $1`, [
      feature,
    ])
    const current = rows[0]?.version ?? 0
    const known = migrations.at(-1)?.version ?? 0
    if (current > known)
      throw new RelayError(
        'ERR_RELAY_SCHEMA_VERSION',
        `schema ${schema} has ${feature} version ${current}; this relaychain knows up to ${known}: upgrade relaychain on this node`,
      )
    const applied: number[] = []
    for (const step of migrations) {
      if (step.version <= current) continue
      await client.query(step.sql.replaceAll('{schema}', s))
      await client.query(`INSERT INTO ${s}.migrations (feature, version, name) VALUES ($1, $2, $3)`, [feature, step.version, step.name])
      applied.push(step.version)
    }
    return { schema, applied, version: Math.max(current, known) }
  })
}
