/**
 * `npm start`: Postgres (embedded unless DATABASE_URL or PGHOST names a server), the migrations, then
 * each function in its own functions-framework process, exactly as in the cluster. One shutdown path
 * for SIGINT and SIGTERM: functions first, then Postgres.
 *
 * `npm run demo` (`--demo`) also serves the stand-in Pixabay in this process and points image-proxy at
 * it, with DEMO_IMAGES set so that the gallery and its log say these are demo images.
 */
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { projectRoot } from '../functions/shared/config';
import { connect, migrate, readDatabaseConfig } from '../functions/shared/db';
import { readableLogLine, readFunctionPorts, spawnFunction, waitForHttp } from './functions';
import { readLocalDatabaseConfig } from './local-database';
import { startLocalPostgres, type LocalPostgres } from './local-postgres';
import { startPixabayStandIn, type PixabayStandIn } from './pixabay-stand-in';

const env = process.env;
const demo = readDemoSwitch();
const ports = readFunctionPorts(env);
const { databaseUrl: configuredUrl, libpq, embeddedDir, embeddedPort } = readLocalDatabaseConfig(env);
const useEmbedded = !configuredUrl && !libpq;

const children = new Map<string, ChildProcess>();
let embedded: LocalPostgres | undefined;
let standIn: PixabayStandIn | undefined;
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
    ENV_FILE: env.ENV_FILE ?? path.join(projectRoot, 'knative', 'log-output.env'),
  });
  if (demo) {
    standIn = await startPixabayStandIn();
    say('start', `demo: image-proxy searches a stand-in for Pixabay at ${standIn.url}, which makes up its images`);
    if (env.API_KEY?.trim()) say('start', 'demo: API_KEY is set but not used; npm start uses it');
  }
  // Without the demo, API_KEY, PIXABAY_API_URL and PIXABAY_IMAGE_HOSTS come from this environment;
  // without a key it answers 503. Only the demo sets DEMO_IMAGES.
  run('image-proxy', ports['image-proxy'], standIn ? { ...standIn.env, DEMO_IMAGES: 'true' } : { DEMO_IMAGES: '' });

  await Promise.all(Object.values(ports).map((port) => waitForHttp(`http://localhost:${port}/healthz`, 15_000)));
  say('start', `ready in ${Date.now() - started} ms; Ctrl-C stops everything`);
  for (const [name, port] of Object.entries(ports)) {
    say('start', `${name.padEnd(11)} http://localhost:${port}/${name === 'image-proxy' && demo ? ' (demo images)' : ''}`);
  }
}

/** `--demo` (npm run demo), or nothing; anything else stops here with the reason. */
function readDemoSwitch(): boolean {
  try {
    return parseArgs({ options: { demo: { type: 'boolean', default: false } } }).values.demo;
  } catch (error) {
    console.error(`npm start: ${(error as Error).message}`);
    process.exit(2);
  }
}

function run(name: string, port: number, extraEnv: NodeJS.ProcessEnv): void {
  const child = spawnFunction(name, port, extraEnv);
  children.set(name, child);
  for (const stream of [child.stdout, child.stderr]) {
    let partial = '';
    stream?.setEncoding('utf8').on('data', (chunk: string) => {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop()!;
      for (const line of lines) for (const readable of readableLogLine(line)) say(name, readable);
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
  say('start', `stopping: the functions first, then ${standIn ? 'the stand-in Pixabay and ' : ''}Postgres`);
  await Promise.all(
    [...children.values()].map((child) => new Promise((resolve) => child.once('exit', resolve).kill('SIGTERM'))),
  );
  await standIn?.close();
  await embedded?.stop();
  process.exit(exitCode);
}

process.on('SIGINT', () => void shutdown(0));
process.on('SIGTERM', () => void shutdown(0));
main().catch((error) => {
  console.error(`npm start failed: ${(error as Error).message}`);
  void shutdown(1);
});
