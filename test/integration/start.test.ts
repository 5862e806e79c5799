/** `npm start` and `npm run demo`: the runner, run as a user runs it (compiled), with its data and ports moved aside. */
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import test from 'ava';
import postgres from 'postgres';
import { freePort } from '../helpers/ports';
import { runnerEnv, runStart } from '../helpers/runner';
import { tempDir } from '../helpers/temp';

test('serves the three functions, stops cleanly on SIGTERM and SIGINT, and a second start finds the count', async (t) => {
  const env = await runnerEnv(t);

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
  t.false(/demo|stand-in/i.test(first.output()), 'without the demo switch, nothing of the demo');
  t.true(first.output().includes(`image-proxy http://localhost:${env.IMAGE_PROXY_PORT}/`), 'npm start prints its URL');
  t.false(first.output().includes(':postgres:') || /postgres:\/\/postgres:[^@]+@/.test(first.output()), 'no password printed');

  first.child.kill('SIGTERM');
  t.is(await first.exited, 0);

  // Through npm this time: a signal to the npm process must reach the runner (npm's shell execs it).
  const second = await runStart(t, env, { npmScript: 'start' });
  await second.ready;
  t.deepEqual(await (await fetch(`${pingpong}/pongs`)).json(), { pongs: 2 });
  second.child.kill('SIGINT');
  t.is(await second.exited, 0);
  await t.throwsAsync(fetch(`${pingpong}/pongs`), undefined, 'nothing is left listening');
  await t.throwsAsync(postgres(`postgres://localhost:${env.EMBEDDED_PG_PORT}/postgres`, { connect_timeout: 2 })`select 1`, undefined, 'Postgres is stopped too');
});

test('npm run demo: the gallery shows the stand-in\'s images with a banner, the log says how to use a real key, and one SIGINT stops the stand-in too', async (t) => {
  const env = await runnerEnv(t);
  const shellKey = `shell-key-${randomUUID()}`;
  const demo = runStart(t, { ...env, API_KEY: shellKey }, { npmScript: 'demo' });
  await demo.ready;
  const proxy = `http://127.0.0.1:${env.IMAGE_PROXY_PORT}`;

  const gallery = await fetch(`${proxy}/`);
  t.is(gallery.status, 200);
  const page = await gallery.text();
  t.regex(page, /<p class="notice demo" role="note"><strong>Demo images\.<\/strong>/);
  t.true(page.includes('run <code>API_KEY=&#60;your key&#62; npm start</code>'));
  const { images } = (await (await fetch(`${proxy}/api/images`)).json()) as { images: { web: { url: string } }[] };
  t.is(images.length, 20);
  const image = await fetch(`${proxy}${images[0]!.web.url}`);
  t.is(image.status, 200);
  t.is(image.headers.get('content-type'), 'image/png');
  t.deepEqual([...new Uint8Array(await image.arrayBuffer()).subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47], 'a PNG');

  const output = demo.output();
  // The function's JSON line (docs/logs.md), as the runner shows it to a person: its message, after the function's name.
  t.regex(output, /^image-proxy\| demo images, from a stand-in for Pixabay \(npm run demo\); for Pixabay's photos run API_KEY=<your key> npm start$/m);
  t.false(output.includes('{"severity"'), 'no JSON line is shown raw');
  t.true(output.includes(`image-proxy http://localhost:${env.IMAGE_PROXY_PORT}/ (demo images)`));
  t.true(output.includes('demo: API_KEY is set but not used; npm start uses it'));
  t.false(output.includes(shellKey), 'the key of the shell is never printed');
  const standIn = /a stand-in for Pixabay at (http:\/\/127\.0\.0\.1:\d+\/api\/)/.exec(output)?.[1];
  t.truthy(standIn, output);
  t.is((await fetch(`${standIn}?key=wrong`)).status, 400, 'the stand-in checks the key as Pixabay does');

  demo.child.kill('SIGINT');
  t.is(await demo.exited, 0);
  t.true(demo.output().includes('stopping: the functions first, then the stand-in Pixabay and Postgres'));
  await t.throwsAsync(fetch(standIn!), undefined, 'the stand-in is stopped too');
  await t.throwsAsync(fetch(`${proxy}/`));
});

test('as root under a folder the postgres user cannot enter: a clear message, exit 1', async (t) => {
  if (process.getuid?.() !== 0) {
    t.log('not root: the embedded server runs as this user, so the case does not arise');
    return t.pass();
  }
  const locked = tempDir(t, 'locked-'); // mode 700, like /root
  const start = await runStart(t, {
    EMBEDDED_PG_DIR: path.join(locked, 'project', '.data'),
    EMBEDDED_PG_PORT: String(await freePort()),
  });
  t.is(await start.exited, 1);
  t.regex(start.output(), new RegExp(`the "postgres" user, who cannot enter ${locked}`));
  t.regex(start.output(), /set DATABASE_URL/);
});
