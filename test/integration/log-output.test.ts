import { createServer, type Server } from 'node:http';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { startFunction } from '../helpers/functions';
import { freePort } from '../helpers/ports';
import { startTestPostgres } from '../helpers/postgres';
import { tempDirForFile } from '../helpers/temp';
import { BUSY_MACHINE_SLACK_MS } from '../helpers/timing';

const envDir = tempDirForFile('log-output-test-');
const helloEnv = path.join(envDir, 'hello.env');
writeFileSync(helloEnv, 'MESSAGE=Hello\n');

const STAMP = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z: [0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\.$/;

/** A pingpong stand-in that answers `GET /pongs` however the test says. */
async function fakePingpong(t: import('ava').ExecutionContext, answer: (res: import('node:http').ServerResponse) => void) {
  const port = await freePort();
  const server: Server = createServer((_req, res) => answer(res));
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  return `http://127.0.0.1:${port}`;
}

test('GET / shows the message, the stamp line and the real count from pingpong', async (t) => {
  const db = await startTestPostgres(t);
  const pingpong = await startFunction(t, 'pingpong', { DATABASE_URL: db.url });
  const logOutput = await startFunction(t, 'log-output', { PINGPONG_URL: pingpong.url, ENV_FILE: helloEnv });
  for (let i = 0; i < 3; i++) await fetch(`${pingpong.url}/pingpong`);

  const response = await fetch(`${logOutput.url}/`);
  t.is(response.status, 200);
  t.regex(response.headers.get('content-type')!, /^text\/plain/);
  const lines = (await response.text()).split('\n');
  t.is(lines.length, 3);
  t.is(lines[0], 'Hello');
  t.regex(lines[1]!, STAMP);
  t.is(lines[2], 'Ping / Pongs: 3');
  t.deepEqual(await (await fetch(`${pingpong.url}/pongs`)).json(), { pongs: 3 }, 'showing the count does not count');

  // The same UUID for the life of the instance, in the page and in the log.
  const uuid = lines[1]!.split(': ')[1]!.slice(0, -1);
  t.true(logOutput.output().includes(`: ${uuid}.`));
  t.true((await (await fetch(`${logOutput.url}/`)).text()).includes(uuid));
});

test('without MESSAGE the page is two lines; MESSAGE overrides the file', async (t) => {
  const pongs = await fakePingpong(t, (res) => res.end('{"pongs": 7}'));
  const plain = await startFunction(t, 'log-output', { PINGPONG_URL: pongs });
  const plainLines = (await (await fetch(`${plain.url}/`)).text()).split('\n');
  t.is(plainLines.length, 2);
  t.regex(plainLines[0]!, STAMP);
  t.is(plainLines[1], 'Ping / Pongs: 7');

  const overridden = await startFunction(t, 'log-output', { PINGPONG_URL: pongs, ENV_FILE: helloEnv, MESSAGE: 'Moi' });
  t.is((await (await fetch(`${overridden.url}/`)).text()).split('\n')[0], 'Moi');
});

test('prints the stamp line at start and every 5 s after', async (t) => {
  const pongs = await fakePingpong(t, (res) => res.end('{"pongs": 0}'));
  const logOutput = await startFunction(t, 'log-output', { PINGPONG_URL: pongs });
  const answering = Date.now();
  const stamps = () => logOutput.output().split('\n').filter((line) => STAMP.test(line));
  const giveUpAt = Date.now() + 5000 + BUSY_MACHINE_SLACK_MS;
  while (stamps().length < 2 && Date.now() < giveUpAt) await new Promise((resolve) => setTimeout(resolve, 50));
  const [first, second, ...more] = stamps();
  t.truthy(second, logOutput.output());
  t.deepEqual(more, [], 'the third is another 5 s away');
  t.true(Date.parse(first!.slice(0, 24)) <= answering, 'the first was printed at start, before the first answer');
  const gap = Date.parse(second!.slice(0, 24)) - Date.parse(first!.slice(0, 24));
  t.true(gap >= 4900 && gap < 5000 + BUSY_MACHINE_SLACK_MS, `gap ${gap} ms`);
  t.is(new Set([first!, second!].map((line) => line.slice(26))).size, 1, 'one UUID');
});

test('pingpong down, slow or answering garbage: 503 naming pingpong, never a hang, and the start-up gate stays shut', async (t) => {
  const down = `http://127.0.0.1:${await freePort()}`;
  const cases: [string, string, RegExp][] = [
    ['down', down, /^pingpong is unreachable \(ECONNREFUSED\)\n$/],
    ['slow', await fakePingpong(t, (res) => setTimeout(() => res.end('{"pongs": 1}'), 3000)), /^pingpong did not answer within 2000 ms\n$/],
    ['garbage', await fakePingpong(t, (res) => res.end('<html>')), /^pingpong answered something that is not \{"pongs": N\}\n$/],
    ['negative', await fakePingpong(t, (res) => res.end('{"pongs": -1}')), /^pingpong answered something that is not/],
    ['error', await fakePingpong(t, (res) => res.writeHead(500).end()), /^pingpong answered 500\n$/],
    ['huge', await fakePingpong(t, (res) => res.end(`{"pongs": 1, "padding": "${'x'.repeat(100_000)}"}`)), /^pingpong answered something that is not/],
    ['broken off', await fakePingpong(t, (res) => res.writeHead(200, { 'Content-Length': '100' }).write('{"pongs"', () => res.destroy())), /^pingpong's answer broke off\n$/],
  ];
  for (const [name, pingpongUrl, reason] of cases) {
    const logOutput = await startFunction(t, 'log-output', { PINGPONG_URL: pingpongUrl });
    for (const route of ['/', '/healthz']) {
      const started = Date.now();
      const response = await fetch(`${logOutput.url}${route}`);
      t.is(response.status, 503, `${name} ${route}`);
      t.regex(await response.text(), reason, `${name} ${route}`);
      t.true(Date.now() - started < 2500 + BUSY_MACHINE_SLACK_MS, `${name} ${route} took ${Date.now() - started} ms`);
    }
  }
});

test('recovers by itself when pingpong comes back', async (t) => {
  const db = await startTestPostgres(t);
  const pingpong = await startFunction(t, 'pingpong', { DATABASE_URL: db.url });
  const logOutput = await startFunction(t, 'log-output', { PINGPONG_URL: pingpong.url });
  await fetch(`${pingpong.url}/pingpong`);

  await pingpong.stop();
  const down = await fetch(`${logOutput.url}/`);
  t.is(down.status, 503);
  t.regex(await down.text(), /^pingpong is unreachable/);
  // Its start-up gate opened when pingpong first answered, and stays open (test/integration/probes.test.ts).
  t.is((await fetch(`${logOutput.url}/healthz`)).status, 200);

  await pingpong.restart();
  const back = await fetch(`${logOutput.url}/`);
  t.is(back.status, 200);
  t.true((await back.text()).endsWith('Ping / Pongs: 1'));
});

test('404 for other paths, 405 with Allow for other methods', async (t) => {
  const logOutput = await startFunction(t, 'log-output', { PINGPONG_URL: await fakePingpong(t, (res) => res.end('{"pongs":0}')) });
  t.is((await fetch(`${logOutput.url}/nope`)).status, 404);
  const del = await fetch(`${logOutput.url}/`, { method: 'DELETE' });
  t.is(del.status, 405);
  t.is(del.headers.get('allow'), 'GET, HEAD');
});

test('a dotenv file that cannot be parsed stops start-up with a clear error', async (t) => {
  const broken = path.join(envDir, 'broken.env');
  writeFileSync(broken, 'MESSAGE=Hello\nnot a setting\n');
  const error = await t.throwsAsync(startFunction(t, 'log-output', { ENV_FILE: broken }));
  t.true(error!.message.includes(`ENV_FILE ${broken} line 2 is not KEY=VALUE`), error!.message);
});
