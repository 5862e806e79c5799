import test from 'ava';
import { startFunction } from '../helpers/functions';
import { readLog } from '../helpers/logs';
import { startTestPostgres } from '../helpers/postgres';
import { BUSY_MACHINE_SLACK_MS } from '../helpers/timing';

test('pong 0 first, then counting; /pongs tells without counting', async (t) => {
  const db = await startTestPostgres(t);
  const pingpong = await startFunction(t, 'pingpong', { DATABASE_URL: db.url });

  const first = await fetch(`${pingpong.url}/pingpong`);
  t.is(first.status, 200);
  t.regex(first.headers.get('content-type')!, /^text\/plain/);
  t.is(await first.text(), 'pong 0');
  t.is(await (await fetch(`${pingpong.url}/pingpong`)).text(), 'pong 1');

  const pongs = await fetch(`${pingpong.url}/pongs`);
  t.regex(pongs.headers.get('content-type')!, /^application\/json/);
  t.deepEqual(await pongs.json(), { pongs: 2 });
  t.deepEqual(await (await fetch(`${pingpong.url}/pongs`)).json(), { pongs: 2 });
  t.is((await db.sql`select n from pings`)[0]!.n, '2', 'the count is in Postgres');

  t.is((await fetch(`${pingpong.url}/pingpong`, { method: 'HEAD' })).status, 200);
  t.deepEqual(await (await fetch(`${pingpong.url}/pongs`)).json(), { pongs: 2 }, 'HEAD does not count');
});

test('a ping is never answered from a cache: no-store, and a conditional request still gets its number', async (t) => {
  const db = await startTestPostgres(t);
  const pingpong = await startFunction(t, 'pingpong', { DATABASE_URL: db.url });

  const first = await fetch(`${pingpong.url}/pingpong`);
  t.is(first.headers.get('cache-control'), 'no-store');
  t.is(await first.text(), 'pong 0');
  const conditional: Record<string, string>[] = [{ 'If-None-Match': '*' }, { 'If-None-Match': '"x"' }, { 'If-Modified-Since': new Date().toUTCString() }];
  for (const [i, headers] of conditional.entries()) {
    const ping = await fetch(`${pingpong.url}/pingpong`, { headers });
    t.is(ping.status, 200, JSON.stringify(headers));
    t.is(await ping.text(), `pong ${i + 1}`, JSON.stringify(headers));
  }
});

test('unknown paths are 404 and other methods 405 with Allow, and neither counts', async (t) => {
  const db = await startTestPostgres(t);
  const pingpong = await startFunction(t, 'pingpong', { DATABASE_URL: db.url });

  const missing = await fetch(`${pingpong.url}/ping`);
  t.is(missing.status, 404);
  t.is(await missing.text(), 'no such path: /ping\n');

  const post = await fetch(`${pingpong.url}/pingpong`, { method: 'POST' });
  t.is(post.status, 405);
  t.is(post.headers.get('allow'), 'GET, HEAD');
  t.is(await post.text(), 'method POST is not allowed; use GET or HEAD\n');
  t.deepEqual(await (await fetch(`${pingpong.url}/pongs`)).json(), { pongs: 0 });
});

test('200 concurrent pings over 3 processes get 0..199 once each', async (t) => {
  const db = await startTestPostgres(t);
  const instances = await Promise.all([1, 2, 3].map(() => startFunction(t, 'pingpong', { DATABASE_URL: db.url, DB_POOL_SIZE: '4' })));

  const bodies = await Promise.all(
    Array.from({ length: 200 }, async (_, i) => {
      const response = await fetch(`${instances[i % 3]!.url}/pingpong`);
      t.is(response.status, 200);
      return response.text();
    }),
  );
  const numbers = bodies.map((body) => Number(/^pong (\d+)$/.exec(body)![1])).sort((a, b) => a - b);
  t.deepEqual(numbers, Array.from({ length: 200 }, (_, i) => i));
  t.deepEqual(await (await fetch(`${instances[0]!.url}/pongs`)).json(), { pongs: 200 });
});

test('with Postgres stopped: 503 within 2 s with a reason, and recovery without a restart', async (t) => {
  const db = await startTestPostgres(t);
  const pingpong = await startFunction(t, 'pingpong', { DATABASE_URL: db.url });
  t.is(await (await fetch(`${pingpong.url}/pingpong`)).text(), 'pong 0');
  t.is((await fetch(`${pingpong.url}/healthz`)).status, 200);

  await db.stop();
  for (const path of ['/pingpong', '/pongs', '/healthz']) {
    const started = Date.now();
    const response = await fetch(`${pingpong.url}${path}`);
    t.is(response.status, 503, path);
    t.regex(await response.text(), /^database unavailable: .+\n$/, path);
    t.true(Date.now() - started < 2000 + BUSY_MACHINE_SLACK_MS, `${path} took ${Date.now() - started} ms`);
  }

  await db.start();
  t.is(await (await fetch(`${pingpong.url}/pingpong`)).text(), 'pong 1', 'the failed pings were not counted');
  t.deepEqual(await (await fetch(`${pingpong.url}/pongs`)).json(), { pongs: 2 });
  t.is((await fetch(`${pingpong.url}/healthz`)).status, 200);
  const logged = readLog(pingpong.output()).entries.filter((entry) => entry.dependency === 'postgres').map((entry) => entry.event);
  t.is(logged[0], 'dependency_failed', 'the failure was logged');
  t.is(logged.at(-1), 'dependency_recovered', 'and the recovery');
});

test('a frozen database (connections open, nothing answering) still gets a 503 within 2 s', async (t) => {
  const db = await startTestPostgres(t);
  const pingpong = await startFunction(t, 'pingpong', { DATABASE_URL: db.url });
  t.is(await (await fetch(`${pingpong.url}/pingpong`)).text(), 'pong 0');

  const serverPids = [db.pid(), ...(await db.sql<{ pid: number }[]>`select pid from pg_stat_activity`).map((row) => row.pid)];
  for (const pid of serverPids) process.kill(pid, 'SIGSTOP');
  try {
    const started = Date.now();
    const response = await fetch(`${pingpong.url}/pingpong`);
    t.is(response.status, 503);
    t.is(await response.text(), 'database unavailable: the database did not answer within 1200 ms\n', 'its own deadline, not a wait');
    t.true(Date.now() - started < 2000 + BUSY_MACHINE_SLACK_MS, `took ${Date.now() - started} ms`);
  } finally {
    for (const pid of serverPids) process.kill(pid, 'SIGCONT');
  }
});
