/** The Postgres pool and the migrator, shared by every function that keeps data. */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import postgres from 'postgres';
import { projectRoot, readInt, type Env } from './config';
import { TimeoutError } from './waiting';

export type Sql = postgres.Sql;

export interface DatabaseConfig {
  /** `DATABASE_URL` when set; otherwise postgres.js reads the libpq variables (PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD). */
  url: string | undefined;
  poolSize: number;
}

export function readDatabaseConfig(env: Env): DatabaseConfig {
  return {
    url: env.DATABASE_URL?.trim() || undefined,
    poolSize: readInt(env, 'DB_POOL_SIZE', 10, 1, 100),
  };
}

/**
 * A lazy pool: nothing connects until the first query. The timeouts turn a dead or frozen database
 * into an error within a second or two instead of a hang.
 */
export function connect(config: DatabaseConfig, applicationName: string): Sql {
  const options: postgres.Options<{}> = {
    max: config.poolSize,
    connect_timeout: 1,
    idle_timeout: 60,
    onnotice: () => undefined,
    // We use no custom array types; skipping the lookup saves a round trip on every new connection.
    fetch_types: false,
    backoff: reconnectDelaySeconds,
    connection: { application_name: applicationName, statement_timeout: 1500 },
  };
  return config.url ? postgres(config.url, options) : postgres(options);
}

/**
 * How long a pool connection waits before connecting again after a failed attempt. postgres.js's own
 * curve counts the pool's failures together and grows to 20 s, so after an outage of a second or two
 * queries kept waiting for that pause and the function answered 503 for seconds after the database
 * was back. Capped at half a second (with jitter, so instances do not knock in step): recovery stays
 * quick, and a refused or rejected connection costs the server next to nothing.
 */
export function reconnectDelaySeconds(failuresInARow: number): number {
  return Math.min(3 ** failuresInARow / 100, 0.5) * (0.5 + Math.random() / 2);
}

/** Where the SQL migrations live. */
export const migrationsDir = path.join(projectRoot, 'db', 'migrations');

// Any constant works; it only has to be the same for every instance of this project.
const MIGRATION_LOCK = 7_2026_0002;

/**
 * Applies the `NNN_name.sql` files in `dir` that are not yet recorded in `schema_migrations`, in order,
 * in one transaction under an advisory lock, so instances starting at the same moment apply each once.
 * When nothing is pending it costs one query. Returns the names it applied.
 */
export async function migrate(sql: Sql, dir = migrationsDir): Promise<string[]> {
  const files = readdirSync(dir).filter((name) => /^\d{3}_[\w-]+\.sql$/.test(name)).sort();
  const applied = await appliedMigrations(sql);
  if (files.every((name) => applied.has(name))) return [];

  return sql.begin(async (tx) => {
    await tx`select pg_advisory_xact_lock(${MIGRATION_LOCK})`;
    await tx`
      create table if not exists schema_migrations (
        name text primary key,
        applied_at timestamptz not null default now()
      )`;
    // Read again under the lock: another instance may have applied some while we waited.
    const done = new Set((await tx<{ name: string }[]>`select name from schema_migrations`).map((row) => row.name));
    const pending = files.filter((name) => !done.has(name));
    for (const name of pending) {
      await tx.unsafe(readFileSync(path.join(dir, name), 'utf8'));
      await tx`insert into schema_migrations (name) values (${name})`;
    }
    return pending;
  });
}

async function appliedMigrations(sql: Sql): Promise<Set<string>> {
  try {
    return new Set((await sql<{ name: string }[]>`select name from schema_migrations`).map((row) => row.name));
  } catch (error) {
    if ((error as { code?: string }).code === UNDEFINED_TABLE) return new Set();
    throw error;
  }
}
// SQLSTATE codes (https://www.postgresql.org/docs/current/errcodes-appendix.html).
const UNDEFINED_TABLE = '42P01';
const QUERY_CANCELED = '57014'; // the statement timeout
const ADMIN_SHUTDOWN = '57P01';
const CRASH_SHUTDOWN = '57P02';
const CANNOT_CONNECT_NOW = '57P03'; // starting up or shutting down

/** Why a query failed, in a few words an operator can act on (the `reason` label of a failure counter). */
export const DATABASE_FAILURE_REASONS = ['timeout', 'connection_refused', 'connection_lost', 'unreachable', 'rejected', 'other'] as const;
export type DatabaseFailureReason = (typeof DATABASE_FAILURE_REASONS)[number];

// What Node and postgres.js call the ways a connection can fail.
const TIMED_OUT = new Set(['CONNECT_TIMEOUT', 'ETIMEDOUT', QUERY_CANCELED]);
const REFUSED = new Set(['ECONNREFUSED', CANNOT_CONNECT_NOW]);
const LOST = new Set(['CONNECTION_CLOSED', 'CONNECTION_DESTROYED', 'CONNECTION_ENDED', 'ECONNRESET', 'EPIPE', ADMIN_SHUTDOWN, CRASH_SHUTDOWN]);
const UNREACHABLE = new Set(['ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);

/**
 * `timeout`: no answer in time (a deadline, the connect or statement timeout); `connection_refused`: nothing
 * took the connection (Postgres down, or starting or stopping); `connection_lost`: a connection broke;
 * `unreachable`: the host has no address or route; `rejected`: Postgres answered with an error (a login,
 * the connection limit, the schema); `other`: anything else (the log says what).
 */
export function databaseFailureReason(error: unknown): DatabaseFailureReason {
  if (error instanceof TimeoutError) return 'timeout';
  const code = (error as { code?: unknown } | undefined)?.code;
  if (typeof code !== 'string') return 'other';
  if (TIMED_OUT.has(code)) return 'timeout';
  if (REFUSED.has(code)) return 'connection_refused';
  if (LOST.has(code)) return 'connection_lost';
  if (UNREACHABLE.has(code)) return 'unreachable';
  if ((error as Error).name === 'PostgresError') return 'rejected';
  return 'other';
}
