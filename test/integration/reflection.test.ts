/**
 * No endpoint reflects unescaped input into HTML: every route of every function (and paths none
 * serves) gets script payloads in the path, in each query parameter and in the common headers, raw
 * and percent-encoded, sent as raw bytes so nothing on the way encodes them for us.
 */
import test, { type ExecutionContext } from 'ava';
import { rawRequest, sendRaw } from '../helpers/fuzz';
import { startFunction, type RunningFunction } from '../helpers/functions';
import { fakePixabay } from '../helpers/pixabay';
import { sharedTestPostgres } from '../helpers/postgres';
import { unsafeReflection, XSS_PAYLOADS } from '../helpers/reflection';

const HEADERS_TO_POISON = ['User-Agent', 'Referer', 'Accept', 'Accept-Language', 'Cookie', 'X-Forwarded-For', 'X-Forwarded-Host', 'X-Forwarded-Proto', 'Origin', 'Content-Type'];

const postgres = sharedTestPostgres();
test.after.always(postgres.stop);

test('the detector flags markup reflected as HTML, untyped, or sniffable, and passes it escaped', (t) => {
  const html = (body: string) => ({ headers: { 'content-type': 'text/html; charset=utf-8' }, body });
  t.truthy(unsafeReflection(html('<p><script>alert(1)</script></p>'), '<script>alert(1)</script>'));
  t.truthy(unsafeReflection(html('<input value=""><svg onload=alert(1)>">'), '"><svg onload=alert(1)>'));
  t.truthy(unsafeReflection(html('<input value="&#34;><svg onload=alert(1)>">'), '"><svg onload=alert(1)>'), 'quote escaped, tag not');
  t.truthy(unsafeReflection(html('<a href="javascript:alert(1)">next</a>'), 'javascript:alert(1)'));
  t.truthy(unsafeReflection({ headers: {}, body: 'no such path: /<script>alert(1)</script>' }, '<script>alert(1)</script>'));
  t.truthy(unsafeReflection({ headers: { 'content-type': 'text/plain' }, body: '<script>alert(1)</script>' }, '<script>alert(1)</script>'));

  t.is(unsafeReflection(html('<p>&#60;script&#62;alert(1)&#60;/script&#62;</p>'), '<script>alert(1)</script>'), undefined);
  t.is(unsafeReflection(html('<h1>javascript:alert(1)</h1>'), 'javascript:alert(1)'), undefined, 'a script URL as text is inert');
  t.is(unsafeReflection({ headers: { 'content-type': 'text/plain', 'x-content-type-options': 'nosniff' }, body: '<script>alert(1)</script>' }, '<script>alert(1)</script>'), undefined);
});

test('pingpong reflects no input unescaped', async (t) => {
  const db = await postgres.database(t);
  const pingpong = await startFunction(t, 'pingpong', { DATABASE_URL: db.url });
  await probeEveryRoute(t, pingpong, ['/pingpong', '/pongs', '/healthz', '/no-such-path'], ['x']);
});

test('log-output reflects no input unescaped', async (t) => {
  const db = await postgres.database(t);
  const pingpong = await startFunction(t, 'pingpong', { DATABASE_URL: db.url });
  const logOutput = await startFunction(t, 'log-output', { PINGPONG_URL: pingpong.url, MESSAGE: 'Hello' });
  await probeEveryRoute(t, logOutput, ['/', '/healthz', '/no-such-path'], ['x']);
});

test('image-proxy reflects no input unescaped', async (t) => {
  const pixabay = await fakePixabay(t, { rateLimit: 1_000_000 });
  const proxy = await startFunction(t, 'image-proxy', pixabay.env);
  const id = pixabay.hitsFor('')[0]!.id;
  await probeEveryRoute(t, proxy, ['/', '/api/images', '/image', `/images/${id}`, '/images', '/healthz', '/no-such-path'], ['q', 'page', 'size', 'x']);

  // Searches that find nothing say so, quoting the query; a fresh proxy, as the first caches what it found.
  pixabay.setBehaviour('no-hits');
  const emptyHanded = await startFunction(t, 'image-proxy', pixabay.env);
  await probeEveryRoute(t, emptyHanded, ['/', '/api/images', '/image'], ['q']);
});

/** Every payload, raw and percent-encoded, in the path after each route, in each parameter, and in the headers. */
async function probeEveryRoute(t: ExecutionContext, fn: RunningFunction, routes: string[], params: string[]): Promise<void> {
  const targets: Array<{ where: string; target: string; headers: string[] }> = [];
  for (const payload of XSS_PAYLOADS) {
    // A raw space cannot be on a request line at all; everything else goes as it is.
    for (const [form, encoded] of [['raw', payload.replace(/ /g, '%20')], ['encoded', encodeURIComponent(payload)]] as const) {
      for (const route of routes) {
        targets.push({ where: `${form} in the path`, target: `${route.replace(/\/$/, '')}/${encoded}`, headers: [] });
        for (const param of params) targets.push({ where: `${form} in ?${param}`, target: `${route}?${param}=${encoded}`, headers: [] });
      }
    }
    for (const route of routes) targets.push({ where: 'in the headers', target: route, headers: HEADERS_TO_POISON.map((name) => `${name}: ${payload}`) });
  }

  const failures: string[] = [];
  let reflected = 0;
  for (let i = 0; i < targets.length; i += 16) {
    await Promise.all(
      targets.slice(i, i + 16).map(async ({ where, target, headers }) => {
        const outcome = await sendRaw(fn.port, rawRequest('GET', target, [`Host: 127.0.0.1:${fn.port}`, ...headers]));
        const response = { headers: outcome.headers, body: outcome.body.toString('utf8') };
        if (outcome.status === undefined) return void failures.push(`GET ${target} (${where}): no answer (${outcome.ending})`);
        for (const payload of XSS_PAYLOADS) {
          if (response.body.includes(payload)) reflected++;
          const why = unsafeReflection(response, payload);
          if (why) failures.push(`GET ${target} (${where}) -> ${outcome.status}: ${why}`);
        }
      }),
    );
  }
  t.log(`${targets.length} requests with a payload; ${reflected} answers hold one verbatim, each safely`);
  t.deepEqual(failures, []);
}
