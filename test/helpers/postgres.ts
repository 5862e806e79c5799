/** A real Postgres for one test file: embedded, on a free port, in a temporary folder removed afterwards. */
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import postgres from 'postgres';
import { startLocalPostgres, type LocalPostgres } from '../../scripts/local-postgres';
import { freePort } from './ports';

export interface TestPostgres extends LocalPostgres {
  port: number;
  /** The postmaster's process id, from its pid file. */
  pid(): number;
  /** A small client for assertions; closed at teardown. */
  sql: postgres.Sql;
}

export async function startTestPostgres(t: ExecutionContext): Promise<TestPostgres> {
  const dir = mkdtempSync(path.join(tmpdir(), 'pg-test-'));
  chmodSync(dir, 0o755); // as root the server runs as the postgres user, who must enter this folder
  const port = await freePort();
  let server: LocalPostgres;
  try {
    server = await startLocalPostgres(dir, port);
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  const sql = postgres(server.url, { max: 2, onnotice: () => undefined, connect_timeout: 2 });
  t.teardown(async () => {
    await sql.end({ timeout: 1 }).catch(() => undefined);
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const pid = () => Number(readFileSync(path.join(dir, 'pgdata', 'postmaster.pid'), 'utf8').split('\n')[0]);
  return { ...server, port, sql, pid };
}
