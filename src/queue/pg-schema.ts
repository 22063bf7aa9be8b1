/**
 * The queue's tables on PostgreSQL (see `pg-store.ts`), as versioned migrations. Times the
 * queue schedules by (arrival, due, throttles) are milliseconds of the relay's clock; leases are
 * the database's own time, so that the nodes' clocks need not agree on who holds what.
 */
import type { Migration } from '../shared/pg/migrate.js'

export const QUEUE_FEATURE = 'queue'

export const QUEUE_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'entries, chunks, recipients, journal, destinations',
    sql: `
CREATE TABLE {schema}.entries (
  id text PRIMARY KEY,
  created bigint NOT NULL,
  sender text NOT NULL,
  size bigint NOT NULL,
  chunks int NOT NULL,
  header jsonb NOT NULL,
  place text NOT NULL CHECK (place IN ('due', 'waiting', 'held')),
  due_at bigint,
  destination text,
  lease_token text,
  lease_owner text,
  lease_until timestamptz
);
CREATE INDEX entries_due ON {schema}.entries (due_at) WHERE place = 'due';
CREATE INDEX entries_waiting ON {schema}.entries (destination) WHERE place = 'waiting';
CREATE INDEX entries_lease ON {schema}.entries (lease_token) WHERE lease_token IS NOT NULL;
CREATE TABLE {schema}.chunks (
  entry_id text NOT NULL REFERENCES {schema}.entries (id) ON DELETE CASCADE,
  seq int NOT NULL,
  data bytea NOT NULL,
  PRIMARY KEY (entry_id, seq)
);
CREATE TABLE {schema}.recipients (
  entry_id text NOT NULL REFERENCES {schema}.entries (id) ON DELETE CASCADE,
  idx int NOT NULL,
  address text NOT NULL,
  status text NOT NULL DEFAULT 'pending',
  attempts int NOT NULL DEFAULT 0,
  reply text,
  destination text,
  PRIMARY KEY (entry_id, idx)
);
CREATE TABLE {schema}.journal (
  entry_id text NOT NULL REFERENCES {schema}.entries (id) ON DELETE CASCADE,
  seq bigserial NOT NULL,
  record jsonb NOT NULL,
  PRIMARY KEY (entry_id, seq)
);
CREATE TABLE {schema}.flushes (id int PRIMARY KEY CHECK (id = 1), generation bigint NOT NULL);
INSERT INTO {schema}.flushes VALUES (1, 0);
CREATE TABLE {schema}.destinations (
  name text PRIMARY KEY,
  down_until bigint NOT NULL DEFAULT 0,
  backoff bigint NOT NULL,
  probe_token text,
  probe_until timestamptz
);
CREATE TABLE {schema}.destination_slots (
  destination text NOT NULL,
  slot int NOT NULL,
  token text NOT NULL,
  owner text NOT NULL,
  lease_until timestamptz NOT NULL,
  PRIMARY KEY (destination, slot)
);
`,
  },
]
