/**
 * `npm start`: Postgres (embedded unless DATABASE_URL or PGHOST names a server), the migrations, then
 * each function in its own functions-framework process, exactly as in the cluster. One shutdown path
 * for SIGINT and SIGTERM: functions first, then Postgres.
 */
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { projectRoot } from '../functions/shared/config';
import { connect, migrate, readDatabaseConfig } from '../functions/shared/db';
import { readFunctionPorts, spawnFunction, waitForHttp } from './functions';
import { readLocalDatabaseConfig } from './local-database';
import { startLocalPostgres, type LocalPostgres } from './local-postgres';

const env = process.env;
const ports = readFunctionPorts(env);
const { databaseUrl: configuredUrl, libpq, embeddedDir, embeddedPort } = readLocalDatabaseConfig(env);
const useEmbedded = !configuredUrl && !libpq;

const children = new Map<string, ChildProcess>();
let embedded: LocalPostgres | undefined;
let stopping = false;

async function main(): Promise<void> {
  const started = Date.now();
  let databaseUrl = configuredUrl;
  if (useEmbedded) {
    embedded = await startLocalPostgres(embeddedDir, embeddedPort);
    databaseUrl = embedded.url;
    say('start', `embedded Postgres at ${embedded.displayUrl}, data in ${embeddedDir}`);
  }

  const sql = connect(readDatabaseConfig({ ...env, DATABASE_URL: databaseUrl }), 'start');
  const applied = await migrate(sql);
  await sql.end();
  say('start', applied.length ? `applied migrations: ${applied.join(', ')}` : 'migrations: up to date');

  const pingpongUrl = `http://localhost:${ports.pingpong}`;
  run('pingpong', ports.pingpong, { DATABASE_URL: databaseUrl });
  run('log-output', ports['log-output'], {
    PINGPONG_URL: pingpongUrl,
    ENV_FILE: env.ENV_FILE ?? path.join(projectRoot, 'scripts', 'log-output.env'),
  });
  // API_KEY, PIXABAY_API_URL and PIXABAY_IMAGE_HOSTS come from this environment; without a key it answers 503.
  run('image-proxy', ports['image-proxy'], {});

  await Promise.all(Object.values(ports).map((port) => waitForHttp(`http://localhost:${port}/healthz`, 15_000)));
  say('start', `ready in ${Date.now() - started} ms; Ctrl-C stops everything`);
  for (const [name, port] of Object.entries(ports)) say('start', `${name.padEnd(11)} http://localhost:${port}/`);
}

function run(name: string, port: number, extraEnv: NodeJS.ProcessEnv): void {
  const child = spawnFunction(name, port, extraEnv);
  children.set(name, child);
  for (const stream of [child.stdout, child.stderr]) {
    let partial = '';
    stream?.setEncoding('utf8').on('data', (chunk: string) => {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop()!;
      for (const line of lines) say(name, line);
    });
  }
  child.on('exit', (code, signal) => {
    children.delete(name);
    if (!stopping) {
      say('start', `${name} exited unexpectedly (${signal ?? `code ${code}`}); stopping everything`);
      void shutdown(1);
    }
  });
}

function say(name: string, line: string): void {
  console.log(`${name.padEnd(11)}| ${line}`);
}

async function shutdown(exitCode: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  say('start', 'stopping: the functions first, then Postgres');
  await Promise.all(
    [...children.values()].map((child) => new Promise((resolve) => child.once('exit', resolve).kill('SIGTERM'))),
  );
  await embedded?.stop();
  process.exit(exitCode);
}

process.on('SIGINT', () => void shutdown(0));
process.on('SIGTERM', () => void shutdown(0));
main().catch((error) => {
  console.error(`npm start failed: ${(error as Error).message}`);
  void shutdown(1);
});
