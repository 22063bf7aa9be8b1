/**
 * The `pg` driver, loaded only when a PostgreSQL feature is used: it is an optional peer
 * dependency, so an application that never uses PostgreSQL does not install it. A missing driver
 * is `RelayError` `ERR_RELAY_MISSING_DEPENDENCY` with the install command.
 *
 * The types here are the few calls relaychain makes, so that the public API does not need
 * `@types/pg`: a `pg.Pool` of the application's own fits {@link PgPool}.
 */
import { RelayError } from '../../core/errors.js'
import { missingDependency } from '../optional.js'

/**
 * A query's result, as `pg` returns it.
 *
 * @category Queue
 */
export interface PgResult<R = Record<string, unknown>> {
  /** The rows. */
  readonly rows: R[]
  /** Rows inserted, updated or deleted. */
  readonly rowCount: number | null
}

/**
 * One connection of a pool (`pg.PoolClient`).
 *
 * @category Queue
 */
export interface PgClient {
  /** Runs a statement with `$1…` parameters. */
  query<R = Record<string, unknown>>(text: string, values?: unknown[]): Promise<PgResult<R>>
  /** Gives the connection back (an error destroys it). */
  release(err?: Error | boolean): void
  /** Errors of the connection while it is checked out (the server went away between statements). */
  on(event: 'error', listener: (err: Error) => void): unknown
  /** Removes an error listener. */
  off(event: 'error', listener: (err: Error) => void): unknown
}

/**
 * A connection pool (`pg.Pool`).
 *
 * @category Queue
 */
export interface PgPool {
  /** Runs a statement on any connection. */
  query<R = Record<string, unknown>>(text: string, values?: unknown[]): Promise<PgResult<R>>
  /** Takes a connection (for a transaction). */
  connect(): Promise<PgClient>
  /** Closes every connection. */
  end(): Promise<void>
  /** Errors of idle connections. */
  on(event: 'error', listener: (err: Error) => void): unknown
}

/**
 * Options of a pool relaychain creates itself.
 *
 * @category Queue
 */
export interface PgConnectOptions {
  /** `postgres://user:password@host:port/database` */
  readonly connectionString: string
  /** Connections at most. Default 10. */
  readonly max?: number
  /** How long to wait for a connection before a query fails (PostgreSQL down), in ms. Default 5000. */
  readonly connectionTimeoutMillis?: number
}

interface PgModule {
  Pool: new (config: Record<string, unknown>) => PgPool
}

let loaded: Promise<PgModule> | undefined

/** Imports `pg`, or throws `ERR_RELAY_MISSING_DEPENDENCY` (see `shared/optional.ts`). */
export function loadPg(_feature: string): Promise<PgModule> {
  loaded ??= (import('pg' as string) as Promise<{ default?: PgModule } & PgModule>).then(
    (mod) => mod.default ?? mod,
    (err: unknown) => {
      loaded = undefined
      const code = (err as NodeJS.ErrnoException)?.code
      if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') throw missingDependency('pg', err)
      throw err
    },
  )
  return loaded
}

/** Creates a pool for `options` (its idle connections' errors go to `onError`, never to the process). */
export async function createPool(options: PgConnectOptions, feature: string, onError: (err: Error) => void): Promise<PgPool> {
  const { Pool } = await loadPg(feature)
  const pool = new Pool({
    connectionString: options.connectionString,
    max: options.max ?? 10,
    connectionTimeoutMillis: options.connectionTimeoutMillis ?? 5000,
    idleTimeoutMillis: 30_000,
  })
  pool.on('error', onError)
  return pool
}

/** A quoted SQL identifier (a schema name). */
export function ident(name: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(name))
    throw new RelayError('ERR_RELAY_INVALID_OPTION', `schema: expected a plain SQL identifier (letters, digits, _), got ${JSON.stringify(name)}`)
  return `"${name}"`
}

/**
 * Takes a connection from `pool` with a listener for its errors while it is out: node-postgres
 * emits a server that goes away between two statements (a restart, `57P01`) as an `'error'` on the
 * checked-out client, where nothing else listens, and an unheard `'error'` ends the process.
 * `release()` gives it back, destroyed if it failed.
 */
export async function checkOut(pool: PgPool): Promise<{ client: PgClient; release(broken?: Error | boolean): void }> {
  const client = await pool.connect()
  let failed: Error | undefined
  const listener = (err: Error) => {
    failed = err
  }
  client.on('error', listener)
  return {
    client,
    release(broken) {
      client.off('error', listener)
      client.release(broken || failed)
    },
  }
}

/** Runs `work` in a transaction on one connection of `pool`. */
export async function inTransaction<T>(pool: PgPool, work: (client: PgClient) => Promise<T>): Promise<T> {
  const { client, release } = await checkOut(pool)
  let broken: Error | undefined
  try {
    await client.query('BEGIN')
    const result = await work(client)
    await client.query('COMMIT')
    return result
  } catch (err) {
    await client.query('ROLLBACK').catch((e: Error) => (broken = e))
    throw err
  } finally {
    release(broken)
  }
}
