/** `npm start`'s runner, run as a user runs it (compiled), with its data and ports moved aside. */
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { projectRoot } from '../../functions/shared/config';
import postgres from 'postgres';
import { freePort } from '../helpers/ports';

/** The compiled runner itself, or `npm start` exactly as a user types it (build included). */
async function runStart(t: ExecutionContext, env: NodeJS.ProcessEnv, { viaNpm = false } = {}) {
  const [command, args] = viaNpm ? ['npm', ['start']] : [process.execPath, [path.join(projectRoot, 'dist', 'scripts', 'start.js')]];
  const child = spawn(command, args, {
    cwd: projectRoot,
    env: { ...process.env, DATABASE_URL: '', PGHOST: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  const ready = new Promise<void>((resolve, reject) => {
    const check = () => (output.includes('Ctrl-C stops everything') ? resolve() : undefined);
    child.stdout.on('data', check);
    void exited.then(() => reject(new Error(`npm start exited early:\n${output}`)));
  });
  ready.catch(() => undefined); // awaited only by the tests that expect a start
  return { child, ready, exited, output: () => output };
}

test('serves the three functions, stops cleanly on SIGTERM and SIGINT, and a second start finds the count', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'start-test-'));
  chmodSync(dir, 0o755);
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const env = {
    EMBEDDED_PG_DIR: path.join(dir, 'data'),
    EMBEDDED_PG_PORT: String(await freePort()),
    LOG_OUTPUT_PORT: String(await freePort()),
    PINGPONG_PORT: String(await freePort()),
    IMAGE_PROXY_PORT: String(await freePort()),
    API_KEY: '',
  };

  const first = await runStart(t, env);
  await first.ready;
  const pingpong = `http://127.0.0.1:${env.PINGPONG_PORT}`;
  const logOutput = `http://127.0.0.1:${env.LOG_OUTPUT_PORT}`;
  t.is(await (await fetch(`${pingpong}/pingpong`)).text(), 'pong 0');
  t.is(await (await fetch(`${pingpong}/pingpong`)).text(), 'pong 1');
  const page = (await (await fetch(`${logOutput}/`)).text()).split('\n');
  t.is(page[0], 'Hello');
  t.is(page[2], 'Ping / Pongs: 2');
  const imageProxy = await fetch(`http://127.0.0.1:${env.IMAGE_PROXY_PORT}/`);
  t.is(imageProxy.status, 503, 'image-proxy runs without a key');
  t.is(await imageProxy.text(), 'API_KEY is not set\n');
  t.true(first.output().includes(`image-proxy http://localhost:${env.IMAGE_PROXY_PORT}/`), 'npm start prints its URL');
  t.false(first.output().includes(':postgres:') || /postgres:\/\/postgres:[^@]+@/.test(first.output()), 'no password printed');

  first.child.kill('SIGTERM');
  t.is(await first.exited, 0);

  // Through npm this time: a signal to the npm process must reach the runner (npm's shell execs it).
  const second = await runStart(t, env, { viaNpm: true });
  await second.ready;
  t.deepEqual(await (await fetch(`${pingpong}/pongs`)).json(), { pongs: 2 });
  second.child.kill('SIGINT');
  t.is(await second.exited, 0);
  await t.throwsAsync(fetch(`${pingpong}/pongs`), undefined, 'nothing is left listening');
  await t.throwsAsync(postgres(`postgres://localhost:${env.EMBEDDED_PG_PORT}/postgres`, { connect_timeout: 2 })`select 1`, undefined, 'Postgres is stopped too');
});

test('as root under a folder the postgres user cannot enter: a clear message, exit 1', async (t) => {
  if (process.getuid?.() !== 0) {
    t.log('not root: the embedded server runs as this user, so the case does not arise');
    return t.pass();
  }
  const locked = mkdtempSync(path.join(tmpdir(), 'locked-')); // mode 700, like /root
  t.teardown(() => rmSync(locked, { recursive: true, force: true }));
  const start = await runStart(t, {
    EMBEDDED_PG_DIR: path.join(locked, 'project', '.data'),
    EMBEDDED_PG_PORT: String(await freePort()),
  });
  t.is(await start.exited, 1);
  t.regex(start.output(), new RegExp(`the "postgres" user, who cannot enter ${locked}`));
  t.regex(start.output(), /set DATABASE_URL/);
});
