/**
 * A Postgres primary and a streaming standby from Debian's server (initdb, pg_basebackup -R, pg_ctl promote),
 * the pair CloudNativePG runs, in a temporary folder removed afterwards. As root they run as the `postgres`
 * user. The standby replicates through a forwarder, `link`, which a test can stall.
 */
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import type { ExecutionContext } from 'ava';
import postgres from 'postgres';
import { startForwarder, type Forwarder } from './forwarder';
import { freePort } from './ports';
import { killProcessTree } from './processes';
import { tempDir } from './temp';

/** Where Debian's `postgresql-15` puts the server's programs. */
export const POSTGRES_BIN = '/usr/lib/postgresql/15/bin';
export const SERVER_TOOLS = ['initdb', 'pg_ctl', 'pg_basebackup', 'postgres'].map((name) => path.join(POSTGRES_BIN, name));

/** The standby's name on the primary (`application_name`), as `synchronous_standby_names` lists it. */
const STANDBY_NAME = 'standby';

export interface PostgresServer {
  port: number;
  dataDir: string;
  /** A small client for assertions; closed at teardown. */
  sql: postgres.Sql;
  /** SIGKILL the postmaster and every backend at once, as an OOM kill or a lost node would: nothing runs after it. */
  kill(): Promise<void>;
  running(): boolean;
  /** What the server has logged so far. */
  log(): string;
}

export interface ReplicatedPostgres {
  primary: PostgresServer;
  standby: PostgresServer;
  /** The standby's connection to the primary runs through this. */
  link: Forwarder;
  /** A connection URL for the `postgres` database on `port` with the password in it: pass it on, never print it. */
  urlFor(port: number): string;
  /** `pg_ctl promote -w`: resolves once the standby accepts writes. */
  promoteStandby(): Promise<void>;
}

/**
 * Starts the primary, takes a base backup through the link for the standby and starts it, and resolves once
 * the standby streams: as a synchronous standby when `synchronous` (every commit waits until the standby has
 * its WAL on disk), otherwise asynchronously (commits return without waiting for it).
 */
export async function startReplicatedPostgres(t: ExecutionContext, { synchronous }: { synchronous: boolean }): Promise<ReplicatedPostgres> {
  const dir = tempDir(t, 'replication-');
  chmodSync(dir, 0o755);
  if (asRoot) chownSync(dir, ...postgresIds());
  const password = randomBytes(18).toString('base64url');
  const urlFor = (port: number) => `postgres://postgres:${password}@127.0.0.1:${port}/postgres`;

  const passwordFile = path.join(dir, 'password');
  writeFileSync(passwordFile, password, { mode: 0o600 });
  if (asRoot) chownSync(passwordFile, ...postgresIds());
  const primaryDir = path.join(dir, 'primary');
  await runAsPostgres('initdb', ['-D', primaryDir, '-U', 'postgres', '--auth=scram-sha-256', `--pwfile=${passwordFile}`, '--no-sync']);
  // On the primary's command line, not in its postgresql.conf: pg_basebackup copies that file, and a promoted
  // standby that named a standby of its own (it has none) would wait forever at every commit.
  const primary = await startServer(t, primaryDir, urlFor, synchronous ? [`synchronous_standby_names=ANY 1 (${STANDBY_NAME})`] : []);

  const link = await startForwarder(t, primary.port);
  const standbyDir = path.join(dir, 'standby');
  // -R writes standby.signal and primary_conninfo (through the link, under the standby's name) into the copy.
  await runAsPostgres(
    'pg_basebackup',
    ['-D', standbyDir, '-d', `host=127.0.0.1 port=${link.port} user=postgres application_name=${STANDBY_NAME}`, '-R', '-X', 'stream', '-c', 'fast'],
    { PGPASSWORD: password },
  );
  const standby = await startServer(t, standbyDir, urlFor, []);
  await waitForStandby(primary.sql, synchronous ? 'quorum' : 'async');

  return {
    primary,
    standby,
    link,
    urlFor,
    promoteStandby: () => runAsPostgres('pg_ctl', ['promote', '-D', standbyDir, '-w', '-t', '60']).then(() => undefined),
  };
}

const asRoot = process.getuid?.() === 0;

/** The `postgres` user's uid and gid, from /etc/passwd (Debian's postgresql package makes that user). */
function postgresIds(): [number, number] {
  const entry = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((line) => line.startsWith('postgres:'));
  if (!entry) throw new Error('no "postgres" user to run the server as (apt-get install -y postgresql makes it)');
  const [, , uid, gid] = entry.split(':');
  return [Number(uid), Number(gid)];
}

/** `program` from POSTGRES_BIN with `args`, as the postgres user when we are root (Postgres refuses to run as root). */
function commandAsPostgres(program: string, args: string[]): [string, string[]] {
  const file = path.join(POSTGRES_BIN, program);
  return asRoot ? ['setpriv', ['--reuid=postgres', '--regid=postgres', '--clear-groups', file, ...args]] : [file, args];
}

async function runAsPostgres(program: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  const [file, fullArgs] = commandAsPostgres(program, args);
  try {
    const { stdout } = await promisify(execFile)(file, fullArgs, { env: { ...process.env, ...env } });
    return stdout;
  } catch (error) {
    const { stdout, stderr } = error as { stdout?: string; stderr?: string };
    throw new Error(`${program} ${args[0]} failed:\n${stdout ?? ''}${stderr ?? ''}`, { cause: error });
  }
}

/** `postgres -D dataDir` on a free port of 127.0.0.1 (no Unix socket), resolved once it accepts connections. */
async function startServer(t: ExecutionContext, dataDir: string, urlFor: (port: number) => string, settings: string[]): Promise<PostgresServer> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const [file, args] = commandAsPostgres('postgres', [
      '-D',
      dataDir,
      ...['listen_addresses=127.0.0.1', `port=${port}`, 'unix_socket_directories=', ...settings].flatMap((setting) => ['-c', setting]),
    ]);
    const child = spawn(file, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (log += chunk));
    const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
    const running = () => child.exitCode === null && child.signalCode === null;
    const kill = async () => {
      if (running()) await killProcessTree(child.pid!);
    };
    t.teardown(kill);
    try {
      await Promise.race([
        waitFor(() => /database system is ready to accept (read-only )?connections/.test(log), 60_000, `${dataDir} to accept connections`),
        exited.then(() => Promise.reject(new Error('it exited'))),
      ]);
    } catch (error) {
      await kill();
      // Another process may take a free port before Postgres binds it; then try another.
      if (attempt < 3 && /could not bind|could not create any TCP\/IP sockets/.test(log)) continue;
      throw new Error(`Postgres in ${dataDir} did not start; it logged:\n${log}`, { cause: error });
    }
    const sql = postgres(urlFor(port), { max: 2, onnotice: () => undefined, connect_timeout: 30 });
    t.teardown(() => sql.end({ timeout: 1 }).catch(() => undefined));
    return { port, dataDir, sql, kill, running, log: () => log };
  }
}

/** Resolves once the primary sees the standby streaming in `syncState` (`quorum`: one of the ANY standbys). */
async function waitForStandby(primary: postgres.Sql, syncState: 'quorum' | 'async'): Promise<void> {
  await waitFor(
    async () => {
      const rows = await primary<{ sync_state: string }[]>`
        select sync_state from pg_stat_replication where application_name = ${STANDBY_NAME} and state = 'streaming'`;
      return rows[0]?.sync_state === syncState;
    },
    60_000,
    `the standby to stream (${syncState})`,
  );
}

async function waitFor(condition: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const giveUpAt = Date.now() + ms;
  while (!(await condition())) {
    if (Date.now() > giveUpAt) throw new Error(`gave up waiting ${ms} ms for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
