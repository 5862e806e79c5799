import test from 'ava';
import { startFunction } from '../helpers/functions';
import { startTestPostgres } from '../helpers/postgres';

test('the count survives stopping every process, Postgres included', async (t) => {
  const db = await startTestPostgres(t);
  const pingpong = await startFunction(t, 'pingpong', { DATABASE_URL: db.url });
  for (let i = 0; i < 5; i++) await fetch(`${pingpong.url}/pingpong`);

  t.is(await pingpong.stop(), 0, 'pingpong exits cleanly on SIGTERM');
  await db.sql.end();
  await db.stop();
  await db.start();
  await pingpong.restart();

  t.deepEqual(await (await fetch(`${pingpong.url}/pongs`)).json(), { pongs: 5 });
  t.is(await (await fetch(`${pingpong.url}/pingpong`)).text(), 'pong 5');
});

test('SIGTERM while pings are in flight: every counted ping is answered', async (t) => {
  const db = await startTestPostgres(t);
  const pingpong = await startFunction(t, 'pingpong', { DATABASE_URL: db.url });
  await fetch(`${pingpong.url}/pingpong`);

  const inFlight = Array.from({ length: 50 }, () => fetch(`${pingpong.url}/pingpong`).then((r) => r.text(), () => 'no answer'));
  await new Promise((resolve) => setTimeout(resolve, 5));
  const exitCode = pingpong.stop();
  const answered = (await Promise.all(inFlight)).filter((body) => body.startsWith('pong ')).length;
  t.is(await exitCode, 0);

  const [{ n }] = await db.sql<[{ n: string }]>`select n from pings`;
  t.is(Number(n), 1 + answered, 'no ping was counted without being answered');
});
