/**
 * The probe paths the manifests use (PROBES), over real HTTP: liveness answers from the process alone
 * while every dependency is down; readiness and log-output's start-up gate answer 503 with the reason until
 * their dependency answers; the gate, once open, never asks pingpong again (so pingpong can scale to
 * zero); and PINGPONG_TIMEOUT_MS sets how long log-output waits for a pingpong that is slow to wake.
 */
import test from 'ava';
import { PROBES } from '../helpers/cluster-agreement';
import { forbiddenHost } from '../helpers/forbidden-host';
import { startFunction } from '../helpers/functions';
import { freePort } from '../helpers/ports';
import { startTestPostgres } from '../helpers/postgres';

const get = async (url: string) => {
  const response = await fetch(url);
  return { status: response.status, text: await response.text() };
};

test('liveness answers 200 while every dependency is down, and asks none of them; readiness says what is missing', async (t) => {
  const db = await startTestPostgres(t);
  await db.stop();
  const pingpongStandIn = await forbiddenHost(t);
  const pixabay = await forbiddenHost(t);
  const running = {
    pingpong: await startFunction(t, 'pingpong', { DATABASE_URL: db.url }),
    'log-output': await startFunction(t, 'log-output', { PINGPONG_URL: `http://127.0.0.1:${await freePort()}` }),
    'image-proxy': await startFunction(t, 'image-proxy', { API_KEY: 'test-key', PIXABAY_API_URL: `http://127.0.0.1:${pixabay.port}/api/`, PIXABAY_IMAGE_HOSTS: `127.0.0.1:${pixabay.port}` }),
    'image-proxy without a key': await startFunction(t, 'image-proxy', { API_KEY: '' }),
  };
  const logOutputAskingNobody = await startFunction(t, 'log-output', { PINGPONG_URL: `http://127.0.0.1:${pingpongStandIn.port}` }, { waitPath: '/livez' });

  for (const [name, fn] of Object.entries(running)) {
    const paths = PROBES[name.replace(/ .*/, '')]!;
    for (let i = 0; i < 3; i++) t.deepEqual(await get(`${fn.url}${paths.alive}`), { status: 200, text: 'ok' }, `${name} ${paths.alive}`);
  }
  for (let i = 0; i < 3; i++) t.is((await get(`${logOutputAskingNobody.url}${PROBES['log-output']!.alive}`)).status, 200);
  t.is(pingpongStandIn.contacts(), 0, 'log-output\'s liveness never asks pingpong');
  t.is(pixabay.contacts(), 0, 'image-proxy\'s probes never ask Pixabay');

  const pingpongReady = await get(`${running.pingpong.url}${PROBES.pingpong!.ready}`);
  t.is(pingpongReady.status, 503);
  t.regex(pingpongReady.text, /^database unavailable: .+\n$/);
  const logOutputReady = await get(`${running['log-output'].url}${PROBES['log-output']!.ready}`);
  t.is(logOutputReady.status, 503);
  t.is(logOutputReady.text, 'pingpong is unreachable (ECONNREFUSED)\n');
});

test('log-output\'s start-up gate: 503 until pingpong answers, then 200 for good without asking pingpong again', async (t) => {
  const db = await startTestPostgres(t);
  const pingpongPort = await freePort();
  const logOutput = await startFunction(t, 'log-output', { PINGPONG_URL: `http://127.0.0.1:${pingpongPort}` });
  const gate = `${logOutput.url}${PROBES['log-output']!.startup}`;

  // pingpong not there yet (a first deploy, or still cold): the course's rule holds log-output back.
  const closed = await get(gate);
  t.is(closed.status, 503);
  t.regex(closed.text, /^pingpong is unreachable/);

  const pingpong = await startFunction(t, 'pingpong', { DATABASE_URL: db.url }, { port: pingpongPort });
  t.deepEqual(await get(gate), { status: 200, text: 'ok' });

  // Gone again (scaled to zero, say): the gate stays open, because it no longer asks; a page still does.
  await pingpong.stop();
  for (let i = 0; i < 3; i++) t.deepEqual(await get(gate), { status: 200, text: 'ok' }, 'the probe did not ask the stopped pingpong');
  const page = await get(`${logOutput.url}/`);
  t.is(page.status, 503);
  t.regex(page.text, /^pingpong is unreachable/);
});

test('PINGPONG_TIMEOUT_MS: a pingpong slow to wake is waited for that long, then 503 says so', async (t) => {
  const db = await startTestPostgres(t);
  const pingpong = await startFunction(t, 'pingpong', { DATABASE_URL: db.url });
  const patient = await startFunction(t, 'log-output', { PINGPONG_URL: pingpong.url, PINGPONG_TIMEOUT_MS: '8000' });
  const hasty = await startFunction(t, 'log-output', { PINGPONG_URL: pingpong.url, PINGPONG_TIMEOUT_MS: '500' });
  t.is((await get(`${patient.url}/`)).status, 200);

  // A frozen pingpong holds the request as Knative's activator does while a pod cold-starts.
  process.kill(pingpong.pid(), 'SIGSTOP');
  let resumed = false;
  const wake = setTimeout(() => {
    process.kill(pingpong.pid(), 'SIGCONT');
    resumed = true;
  }, 2000);
  t.teardown(() => {
    clearTimeout(wake);
    if (!resumed) process.kill(pingpong.pid(), 'SIGCONT');
  });
  const started = Date.now();
  const [fromHasty, fromPatient] = await Promise.all([get(`${hasty.url}/`), get(`${patient.url}/`)]);
  t.is(fromHasty.status, 503);
  t.is(fromHasty.text, 'pingpong did not answer within 500 ms\n');
  t.is(fromPatient.status, 200, fromPatient.text);
  t.true(fromPatient.text.endsWith('Ping / Pongs: 0'));
  t.true(Date.now() - started >= 1900, 'the patient one waited for pingpong to wake');
});
