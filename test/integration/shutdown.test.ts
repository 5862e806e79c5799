/**
 * Graceful shutdown, as a client sees it: on SIGTERM a function refuses new connections at once, closes
 * idle kept-alive ones, answers the request in flight (telling its client the connection closes), closes
 * its database pool and exits 0.
 */
import { spawn } from 'node:child_process';
import { request } from 'node:http';
import { connect } from 'node:net';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import type postgres from 'postgres';
import { projectRoot } from '../../functions/shared/config';
import { startFunction, type RunningFunction } from '../helpers/functions';
import { readLog } from '../helpers/logs';
import { fakePixabay } from '../helpers/pixabay';
import { startTestPostgres } from '../helpers/postgres';

interface Answer {
  status: number;
  connection: string | undefined;
  body: string;
}

/** One GET on a connection of its own, with the raw `Connection` header of the answer. */
function get(url: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    request(url, { agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode!, connection: res.headers.connection, body }));
    })
      .on('error', reject)
      .end();
  });
}

/** A kept-alive connection that has had one answer and now sits idle; resolves `closed` when the server closes it. */
async function idleKeptAliveConnection(port: number): Promise<{ closed: Promise<void> }> {
  const socket = connect(port, '127.0.0.1');
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  await new Promise<void>((resolve) => {
    socket.once('data', () => resolve()).write('GET /no-such-path HTTP/1.1\r\nHost: localhost\r\n\r\n');
  });
  return { closed };
}

async function eventually(condition: () => boolean | Promise<boolean>, what: string, ms = 5000): Promise<void> {
  for (const giveUpAt = Date.now() + ms; !(await condition()); ) {
    if (Date.now() > giveUpAt) throw new Error(`gave up waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Something that keeps a request waiting until it is released. */
interface Hold {
  /** Resolves once the request is surely in flight and waiting on the hold. */
  reached(): Promise<void>;
  release(): void;
}

/**
 * Sends `path`, held in flight by `hold`, then SIGTERMs the function and checks what clients see.
 * Resolves with the held request's answer.
 */
async function shutDownDuring(t: ExecutionContext, fn: RunningFunction, path: string, hold: Hold): Promise<Answer> {
  const idle = await idleKeptAliveConnection(fn.port);
  const held = get(`${fn.url}${path}`);
  await hold.reached();

  const exited = fn.stop();
  await eventually(() => fn.output().includes('SIGTERM: finishing 1 request(s) in flight'), 'the shutdown to begin');
  const refused = await get(`${fn.url}/no-such-path`).then(
    (answer) => `answered ${answer.status}`,
    (error: { code?: string }) => error.code,
  );
  t.is(refused, 'ECONNREFUSED', 'a new connection is refused while the request in flight is still waiting');
  await idle.closed; // else this test times out: the idle kept-alive connection must be closed, not left to its timeout

  hold.release();
  const answer = await held;
  t.is(answer.connection, 'close', 'the answer in flight tells its client not to send more on that connection');
  t.is(await exited, 0);
  t.notRegex(fn.output(), /gave up/);
  return answer;
}

/** Locks the counter's table in a transaction of the test's own, so every query on it waits until released. */
async function lockPings(sql: postgres.Sql, applicationName: string): Promise<Hold> {
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let locked!: () => void;
  const isLocked = new Promise<void>((resolve) => (locked = resolve));
  const transaction = sql.begin(async (tx) => {
    await tx`lock table pings in access exclusive mode`;
    locked();
    await released;
  });
  await Promise.race([isLocked, transaction]);
  return {
    // pingpong's database deadline is 1.2 s: the held request must be released well within it, so waiting
    // starts the moment Postgres shows that application's query blocked on our lock.
    reached: () =>
      eventually(async () => {
        const waiting = await sql`select 1 from pg_stat_activity where application_name = ${applicationName} and wait_event_type = 'Lock'`;
        return waiting.length > 0;
      }, `${applicationName} to wait on the lock`),
    release: () => release(),
  };
}

test('pingpong: a ping in flight is counted and answered, the pool closes, exit 0', async (t) => {
  const db = await startTestPostgres(t);
  const pingpong = await startFunction(t, 'pingpong', { DATABASE_URL: db.url });
  t.is((await get(`${pingpong.url}/pingpong`)).body, 'pong 0');

  const answer = await shutDownDuring(t, pingpong, '/pingpong', await lockPings(db.sql, 'pingpong'));
  t.deepEqual([answer.status, answer.body], [200, 'pong 1']);
  const [{ n }] = await db.sql<[{ n: string }]>`select n from pings`;
  t.is(Number(n), 2);
  await eventually(async () => (await db.sql`select 1 from pg_stat_activity where application_name = 'pingpong'`).length === 0, 'no pingpong session');
});

test("log-output: a page view waiting on pingpong is answered, exit 0", async (t) => {
  const db = await startTestPostgres(t);
  const pingpong = await startFunction(t, 'pingpong', { DATABASE_URL: db.url });
  const logOutput = await startFunction(t, 'log-output', { PINGPONG_URL: pingpong.url, MESSAGE: 'Hello' });
  await get(`${pingpong.url}/pingpong`);

  const answer = await shutDownDuring(t, logOutput, '/', await lockPings(db.sql, 'pingpong'));
  t.is(answer.status, 200);
  t.regex(answer.body, /^Hello\n.*\nPing \/ Pongs: 1$/);
  t.is((await get(`${pingpong.url}/pongs`)).status, 200, 'pingpong itself was left running');
});

test('image-proxy: a search waiting on Pixabay is answered, exit 0', async (t) => {
  const pixabay = await fakePixabay(t);
  const proxy = await startFunction(t, 'image-proxy', pixabay.env);
  await get(`${proxy.url}/healthz`);
  // Held until released, within image-proxy's 5 s deadline for Pixabay's answer.
  const release = pixabay.holdApi();
  const answer = await shutDownDuring(t, proxy, '/api/images?q=draining', {
    reached: () => eventually(() => pixabay.calls.api > 0, 'the search to reach Pixabay'),
    release,
  });
  t.is(answer.status, 200);
  t.is(JSON.parse(answer.body).query, 'draining');
});

test('a request that never finishes is given up at the bound: the pool still closes, exit 1, saying so', async (t) => {
  // Every function's own requests end within their deadlines (5 s at most), far inside the 10 s bound, so
  // the bound is shown on the shared wrapper itself, in a server of its own with a bound of 300 ms.
  const server = spawn(process.execPath, ['-e', `
    const { createServer } = require('node:http');
    const { drainOnShutdown } = require(${JSON.stringify(path.join(projectRoot, 'dist/functions/shared/http.js'))});
    const handler = (req, res) => void (req.url === '/ok' ? res.end('ok') : console.log('holding', req.url)); // anything else never answers
    const server = createServer(drainOnShutdown(handler, async () => console.log('closed'), { maxWaitMs: 300 }));
    server.listen(0, '127.0.0.1', () => console.log('port', server.address().port));
  `]);
  t.teardown(() => server.kill('SIGKILL'));
  let output = '';
  server.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  server.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const exited = new Promise<number | null>((resolve) => server.once('exit', resolve));
  await eventually(() => /port \d+/.test(output), 'the server to listen');
  const url = `http://127.0.0.1:${/port (\d+)/.exec(output)![1]}`;

  t.is((await get(`${url}/ok`)).body, 'ok');
  get(`${url}/never`).catch(() => undefined);
  // In flight for sure, however busy the machine, before the signal.
  await eventually(() => output.includes('holding /never'), 'the request to reach the handler');
  const signalled = Date.now();
  server.kill('SIGTERM');
  t.is(await exited, 1);
  const took = Date.now() - signalled;
  t.true(took >= 300 && took < 3000, `exited ${took} ms after SIGTERM`);
  t.like(
    readLog(output).entries.find((entry) => entry.signal === 'SIGTERM' && entry.severity === 'ERROR'),
    { message: 'SIGTERM: gave up on 1 request(s) still in flight after 300 ms', abandoned: 1 },
    'one log line says so',
  );
  t.regex(output, /closed\n/);
});
