/**
 * `GET /metrics` on every function, read over real HTTP after real traffic: clean for promtool, the
 * counts exact, every label bounded whatever clients send, failures counted by reason, no secret in it.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, METHODS, request, Agent, type ServerResponse } from 'node:http';
import test, { type ExecutionContext } from 'ava';
import { startFunction, type RunningFunction } from '../helpers/functions';
import { parseSamples, promtoolFindings, readMetrics, requestSeries, scrape, type Sample } from '../helpers/metrics';
import { fakePixabay, holdsKey } from '../helpers/pixabay';
import { freePort } from '../helpers/ports';
import { sharedTestPostgres, startTestPostgres } from '../helpers/postgres';
import { testNeeding } from '../helpers/tools';

const testWithPromtool = testNeeding(['promtool'], 'apt-get install -y prometheus (Debian ships promtool in it)');
const postgres = sharedTestPostgres();
test.after.always(postgres.stop);

/** The metrics each function must expose, besides the process's own. */
const EXPECTED: Record<string, string[]> = {
  pingpong: ['http_server_request_duration_seconds', 'function_cold_start_duration_seconds', 'pingpong_pings_total', 'pingpong_statement_pings', 'pingpong_database_failures_total'],
  'log-output': ['http_server_request_duration_seconds', 'function_cold_start_duration_seconds', 'log_output_pingpong_failures_total'],
  'image-proxy': [
    'http_server_request_duration_seconds',
    'function_cold_start_duration_seconds',
    'image_proxy_pixabay_requests_total',
    'image_proxy_cache_lookups_total',
    'image_proxy_pixabay_rate_limit_remaining',
    'image_proxy_pixabay_rate_limit_reset_seconds',
  ],
};
const PROCESS_METRICS = ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'nodejs_heap_size_used_bytes', 'nodejs_eventloop_lag_p99_seconds', 'nodejs_gc_duration_seconds'];

/** The three functions, wired as `npm start` wires them, against a real Postgres and the stand-in Pixabay. */
async function startAll(t: ExecutionContext) {
  const db = await postgres.database(t);
  const pixabay = await fakePixabay(t, { apiKey: `test+key/${randomUUID()}=`, rateLimit: 1_000_000 });
  const pingpong = await startFunction(t, 'pingpong', { DATABASE_URL: db.url });
  const logOutput = await startFunction(t, 'log-output', { PINGPONG_URL: pingpong.url, MESSAGE: 'Hello' });
  const imageProxy = await startFunction(t, 'image-proxy', pixabay.env);
  return { db, pixabay, functions: { pingpong, 'log-output': logOutput, 'image-proxy': imageProxy } as Record<string, RunningFunction> };
}

testWithPromtool("promtool finds nothing in any function's /metrics after traffic, and each has its metrics", async (t) => {
  const { pixabay, functions } = await startAll(t);
  const [hit] = pixabay.hitsFor('red sky');
  const traffic: Record<string, string[]> = {
    pingpong: ['/pingpong', '/pingpong', '/pongs', '/healthz', '/livez', '/nope'],
    'log-output': ['/', '/healthz', '/livez', '/nope'],
    'image-proxy': ['/api/images', '/api/images', '/?q=sky', `/images/${hit!.id}`, '/image', '/images/x', '/?page=9', '/healthz', '/livez', '/nope'],
  };
  for (const [name, fn] of Object.entries(functions)) {
    for (const path of traffic[name]!) await fetch(`${fn.url}${path}`);
    await fetch(`${fn.url}/healthz`, { method: 'POST' });
    await fetch(`${fn.url}/metrics`, { method: 'HEAD' });
    await scrape(fn.url); // the second scrape also has the first one timed
    const text = await scrape(fn.url);
    t.deepEqual(promtoolFindings(text), [], `${name}: promtool check metrics`);
    for (const metric of [...EXPECTED[name]!, ...PROCESS_METRICS]) t.true(text.includes(`\n# TYPE ${metric} `), `${name} exposes ${metric}`);
    t.false(/^nodejs_active_\w+_total/m.test(text), `${name}: no gauge ends in _total`);
    const answeredAsOther = requestSeries(parseSamples(text)).filter(({ labels }) => labels.http_route === 'other' && !['404', '405'].includes(labels.http_response_status_code!));
    t.deepEqual(answeredAsOther.map((sample) => JSON.stringify(sample.labels)), [], `${name}: 'other' is only ever a 404 or 405; a path answered otherwise is a route missing from the function's list`);
  }
  pixabay.setBehaviour('server-error');
  await fetch(`${functions['image-proxy']!.url}/api/images?q=failing`);
  t.deepEqual(promtoolFindings(await scrape(functions['image-proxy']!.url)), [], 'image-proxy after failures too');
});

test('/metrics is GET or HEAD, never cached, and other methods get 405', async (t) => {
  const { functions } = await startAll(t);
  for (const [name, fn] of Object.entries(functions)) {
    const get = await fetch(`${fn.url}/metrics`);
    t.is(get.status, 200, name);
    t.is(get.headers.get('cache-control'), 'no-store', name);
    const head = await fetch(`${fn.url}/metrics`, { method: 'HEAD' });
    t.is(head.status, 200, name);
    t.is(await head.text(), '', name);
    const post = await fetch(`${fn.url}/metrics`, { method: 'POST' });
    t.is(post.status, 405, name);
    t.is(post.headers.get('allow'), 'GET, HEAD', name);
  }
});

test('300 pings add exactly 300 to pingpong_pings_total; the statements that counted them carry 300', async (t) => {
  const db = await postgres.database(t);
  const pingpong = await startFunction(t, 'pingpong', { DATABASE_URL: db.url });
  t.is((await fetch(`${pingpong.url}/pingpong`)).status, 200); // applies the schema
  const before = await readMetrics(pingpong.url);
  const countBefore = Number((await db.sql`select n from pings`)[0]!.n);

  // 30 at a time, so that pings waiting together share a statement.
  for (let sent = 0; sent < 300; sent += 30) {
    const answers = await Promise.all(Array.from({ length: 30 }, () => fetch(`${pingpong.url}/pingpong`).then((r) => r.text())));
    t.true(answers.every((body) => /^pong \d+$/.test(body)), answers.join(', '));
  }
  // Neither reading the count nor scraping counts a ping.
  for (let i = 0; i < 3; i++) await fetch(`${pingpong.url}/pongs`);
  await fetch(`${pingpong.url}/pingpong`, { method: 'HEAD' });
  for (let i = 0; i < 3; i++) await scrape(pingpong.url);
  const after = await readMetrics(pingpong.url);

  t.is(Number((await db.sql`select n from pings`)[0]!.n) - countBefore, 300, 'the count in Postgres moved by 300');
  t.is(after.value('pingpong_pings_total') - before.value('pingpong_pings_total'), 300);
  const carried = after.value('pingpong_statement_pings_sum') - before.value('pingpong_statement_pings_sum');
  const statements = after.value('pingpong_statement_pings_count') - before.value('pingpong_statement_pings_count');
  t.is(carried, 300, 'the statements carried the 300 pings');
  t.true(statements >= 10 && statements <= 300, `${statements} statements for 300 pings`);
  t.log(`300 pings in ${statements} statements`);

  const buckets = after.find('pingpong_statement_pings_bucket');
  t.deepEqual(buckets.map((bucket) => bucket.labels.le), ['1', '2', '4', '8', '16', '32', '64', '128', '256', '512', '+Inf']);
  t.true(buckets.every((bucket, i) => i === 0 || bucket.value >= buckets[i - 1]!.value), 'buckets are cumulative');
  t.is(buckets.at(-1)!.value, after.value('pingpong_statement_pings_count'));

  const timed = (route: string, method = 'GET') =>
    after.value('http_server_request_duration_seconds_count', { http_request_method: method, http_route: route, http_response_status_code: '200' }) -
    before.value('http_server_request_duration_seconds_count', { http_request_method: method, http_route: route, http_response_status_code: '200' });
  t.is(timed('/pingpong'), 300, 'every ping was timed under /pingpong');
  t.is(timed('/pongs'), 3);
  t.is(timed('/pingpong', 'HEAD'), 1);
});

/** Sends `method path` on a kept-alive connection of `agent`; resolves with the status (any method, unlike fetch). */
function send(agent: Agent, port: number, method: string, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, method, path, agent }, (res) => {
      res.resume().on('end', () => resolve(res.statusCode!));
    })
      .on('error', reject)
      .end();
  });
}

/** Samples other than the process's own (whose label values, such as GC kinds, are Node's and bounded). */
function ownSeries(samples: Sample[]): Sample[] {
  return samples.filter((sample) => !/^(process|nodejs)_/.test(sample.name));
}

const junk = () => randomBytes(1 + Math.floor(Math.random() * 24)).toString('base64url');
// Every method Node can receive except CONNECT (a tunnel, never a request to the function).
const ANY_METHOD = METHODS.filter((method) => method !== 'CONNECT');

test('thousands of junk paths, methods and query strings add no series', async (t) => {
  const { functions, pixabay } = await startAll(t);
  const [hit] = pixabay.hitsFor('');
  // Request shapes: each becomes one series per method the first time, and none after, whatever the junk.
  const shapes: Record<string, ((junk: string) => string)[]> = {
    pingpong: [(j) => `/${j}`, (j) => `/pongs?${j}=${j}`, (j) => `/healthz?${j}`, (j) => `/metrics?${j}=1`, (j) => `/pingpong/${j}`, (j) => `/${j}/${'x'.repeat(500)}/${j}`],
    'log-output': [(j) => `/${j}`, (j) => `/?${j}=${j}`, (j) => `/healthz/${j}`, (j) => `/%2e%2e/${j}`],
    'image-proxy': [
      (j) => `/${j}`,
      (j) => `/images/x${j}`,
      (j) => `/images/${j}/more`,
      (j) => `/api/images?q=sky&${j}=${j}`,
      (j) => `/images/${hit!.id}?${j}`,
      (j) => `/api/images/${j}`,
      (j) => `/metrics/${j}`,
    ],
  };
  const agent = new Agent({ keepAlive: true, maxSockets: 16 });
  t.teardown(() => agent.destroy());

  for (const [name, fn] of Object.entries(functions)) {
    for (const method of ANY_METHOD) for (const shape of shapes[name]!) await send(agent, fn.port, method, shape('warm-up'));
    await scrape(fn.url); // a scrape is timed too, once it has gone out
    const before = ownSeries(parseSamples(await scrape(fn.url)));

    const REQUESTS = 3000;
    let sent = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (sent < REQUESTS) {
          sent++;
          const method = ANY_METHOD[Math.floor(Math.random() * ANY_METHOD.length)]!;
          const shape = shapes[name]![Math.floor(Math.random() * shapes[name]!.length)]!;
          await send(agent, fn.port, method, shape(junk()));
        }
      }),
    );
    const after = ownSeries(parseSamples(await scrape(fn.url)));
    const describe = (samples: Sample[]) => samples.map((sample) => `${sample.name}${JSON.stringify(sample.labels)}`);
    // The status is the function's own answer, never what a client typed; on a busy machine a read can
    // pass the database's deadline and add the 503 series of a known route, which is not what this is about.
    const withoutStatus = (samples: Sample[]) =>
      new Set(samples.map(({ name, labels: { http_response_status_code: _status, ...labels } }) => `${name}${JSON.stringify(labels)}`));
    const known = withoutStatus(before);
    t.deepEqual([...withoutStatus(after)].filter((series) => !known.has(series)), [], `${name}: ${REQUESTS} junk requests added no series`);
    const statuses = (samples: Sample[]) => samples.flatMap((sample) => sample.labels.http_response_status_code ?? []);
    const ownFailures = new Set([...statuses(before), '503', '504']);
    t.deepEqual([...new Set(statuses(after))].filter((status) => !ownFailures.has(status)), [], `${name}: no status but those seen before or the function's own 503 and 504`);
    t.log(`${name}: ${before.length} samples before and ${after.length} after ${REQUESTS} junk requests (${requestSeries(after).length} request series)`);
    t.false(describe(after).some((series) => series.includes('warm-up')), `${name}: nothing a client sent is a label value`);
  }
});

test('pingpong counts database failures by reason: refused while Postgres is stopped, timeout while it is frozen', async (t) => {
  const db = await startTestPostgres(t);
  const pingpong = await startFunction(t, 'pingpong', { DATABASE_URL: db.url });
  t.is((await fetch(`${pingpong.url}/pingpong`)).status, 200);
  const failures = async (): Promise<Record<string, number>> => {
    const metrics = await readMetrics(pingpong.url);
    return Object.fromEntries(metrics.find('pingpong_database_failures_total').map((sample) => [sample.labels.reason, sample.value]));
  };
  t.deepEqual(await failures(), { timeout: 0, connection_refused: 0, connection_lost: 0, unreachable: 0, rejected: 0, other: 0 }, 'every reason starts at 0');

  await db.stop();
  for (const path of ['/pingpong', '/pongs', '/healthz']) t.is((await fetch(`${pingpong.url}${path}`)).status, 503, path);
  t.is((await fetch(`${pingpong.url}/metrics`)).status, 200, '/metrics answers while the database is down');
  const whileStopped = await failures();
  t.is(whileStopped.connection_refused, 3, JSON.stringify(whileStopped));
  t.is(Object.values(whileStopped).reduce((sum, n) => sum + n, 0), 3, 'one failure per request answered 503');

  await db.start();
  t.is((await fetch(`${pingpong.url}/pingpong`)).status, 200);
  const serverPids = [db.pid(), ...(await db.sql<{ pid: number }[]>`select pid from pg_stat_activity`).map((row) => row.pid)];
  for (const pid of serverPids) process.kill(pid, 'SIGSTOP');
  try {
    t.is((await fetch(`${pingpong.url}/pingpong`)).status, 503);
    // A /metrics that asked the database would now wait for its deadline and answer 503.
    t.is((await fetch(`${pingpong.url}/metrics`)).status, 200, '/metrics answers while the database is frozen');
  } finally {
    for (const pid of serverPids) process.kill(pid, 'SIGCONT');
  }
  const whileFrozen = await failures();
  t.is(whileFrozen.timeout, 1, JSON.stringify(whileFrozen));
  t.is(whileFrozen.connection_refused, 3);
});

test('log-output counts pingpong failures by reason', async (t) => {
  let answer: (res: ServerResponse) => void = (res) => res.end('{"pongs": 1}');
  const port = await freePort();
  const stand = createServer((_req, res) => answer(res));
  await new Promise<void>((resolve) => stand.listen(port, '127.0.0.1', resolve));
  t.teardown(() => {
    stand.closeAllConnections();
    stand.close();
  });
  const logOutput = await startFunction(t, 'log-output', { PINGPONG_URL: `http://127.0.0.1:${port}` });
  const failures = async () =>
    Object.fromEntries((await readMetrics(logOutput.url)).find('log_output_pingpong_failures_total').map((sample) => [sample.labels.reason, sample.value]));

  t.is((await fetch(logOutput.url)).status, 200);
  t.deepEqual(await failures(), { timeout: 0, unreachable: 0, bad_status: 0, bad_body: 0 });
  const cases: [string, (res: ServerResponse) => void][] = [
    ['bad_status', (res) => res.writeHead(503).end('database unavailable')],
    ['bad_body', (res) => res.end('<html>')],
    ['timeout', (res) => setTimeout(() => res.end('{"pongs": 1}'), 3000)],
  ];
  const expected = { timeout: 0, unreachable: 0, bad_status: 0, bad_body: 0 } as Record<string, number>;
  for (const [reason, misbehave] of cases) {
    answer = misbehave;
    t.is((await fetch(logOutput.url)).status, 503, reason);
    // /healthz is a start-up gate, open for good since pingpong first answered: it asks pingpong no more.
    t.is((await fetch(`${logOutput.url}/healthz`)).status, 200, reason);
    expected[reason]! += 1;
    t.deepEqual(await failures(), expected, reason);
  }
  stand.closeAllConnections();
  await new Promise((resolve) => stand.close(resolve));
  t.is((await fetch(logOutput.url)).status, 503, 'unreachable');
  expected.unreachable! += 1;
  t.deepEqual(await failures(), expected, 'unreachable');
});

test.serial("image-proxy counts Pixabay's outcomes, cache hits and misses and its rate limit, and never shows the key", async (t) => {
  const pixabay = await fakePixabay(t, { apiKey: `test+key/${randomUUID()}=`, rateLimit: 100, windowSeconds: 60 });
  const proxy = await startFunction(t, 'image-proxy', pixabay.env);
  const get = (path: string) => fetch(`${proxy.url}${path}`).then((response) => response.status);
  const metrics = () => readMetrics(proxy.url);
  const requests = async () => {
    const read = await metrics();
    const counts: Record<string, number> = {};
    for (const sample of read.find('image_proxy_pixabay_requests_total')) if (sample.value) counts[`${sample.labels.kind} ${sample.labels.outcome}`] = sample.value;
    return counts;
  };
  const lookups = async () => {
    const read = await metrics();
    return Object.fromEntries(read.find('image_proxy_cache_lookups_total').map((sample) => [`${sample.labels.cache} ${sample.labels.result}`, sample.value]));
  };

  const fresh = await metrics();
  t.true(Number.isNaN(fresh.value('image_proxy_pixabay_rate_limit_remaining')), 'the remaining requests are unknown before Pixabay answers');
  t.is(fresh.value('image_proxy_pixabay_rate_limit_reset_seconds'), 0);
  t.is(fresh.sum('image_proxy_pixabay_requests_total'), 0);
  t.is(fresh.find('image_proxy_pixabay_requests_total').length, 10, 'every kind and outcome starts at 0');

  t.is(await get('/api/images?q=quokka'), 200);
  t.deepEqual(await lookups(), { 'searches hit': 0, 'searches miss': 1, 'known_images hit': 0, 'known_images miss': 0 }, 'a miss is counted once');
  t.is(await get('/api/images?q=Quokka'), 200);
  t.is(await get('/?q=quokka'), 200);
  const [first] = pixabay.hitsFor('quokka');
  t.is(await get(`/images/${first!.id}`), 200);
  t.is(await get('/images/1'), 404, 'an id Pixabay does not know');
  t.deepEqual(await lookups(), { 'searches hit': 2, 'searches miss': 2, 'known_images hit': 1, 'known_images miss': 1 });
  t.deepEqual(await requests(), { 'search ok': 2, 'image ok': 1 });
  t.is((await metrics()).value('image_proxy_pixabay_rate_limit_remaining'), 98, "Pixabay's X-RateLimit-Remaining after two searches");

  t.is(await get('/api/images?q=quokka&page=9'), 404, 'a page past the last');
  pixabay.setBehaviour('server-error');
  t.is(await get('/api/images?q=narwhal'), 503);
  t.is(await get(`/images/${first!.id}?size=web`), 503);
  pixabay.setBehaviour('slow');
  t.is(await get('/api/images?q=axolotl'), 504);
  t.deepEqual(await requests(), { 'search ok': 2, 'search not_found': 1, 'search error': 1, 'search timeout': 1, 'image ok': 1, 'image error': 1 });

  pixabay.setBehaviour('rate-limited');
  t.is(await get('/api/images?q=pangolin'), 503);
  const callsWhenBlocked = pixabay.calls.api;
  t.is(await get('/api/images?q=okapi'), 503);
  t.is(pixabay.calls.api, callsWhenBlocked, 'the second search was not sent');
  const blocked = await metrics();
  t.is(blocked.value('image_proxy_pixabay_requests_total', { kind: 'search', outcome: 'rate_limited' }), 2, "Pixabay's 429, and the search held back for it");
  t.is(blocked.value('image_proxy_pixabay_rate_limit_remaining'), 0);
  const resetSeconds = blocked.value('image_proxy_pixabay_rate_limit_reset_seconds');
  t.true(resetSeconds > 0 && resetSeconds <= 60, `${resetSeconds} s until the reset`);
  await new Promise((resolve) => setTimeout(resolve, 1100));
  const later = (await metrics()).value('image_proxy_pixabay_rate_limit_reset_seconds');
  t.true(later <= resetSeconds - 1 && later > 0, `the seconds left are computed when scraped: ${resetSeconds} then ${later}`);

  const text = await scrape(proxy.url);
  t.false(holdsKey(text, pixabay.apiKey), 'the key is in no metric');
  t.deepEqual(['quokka', 'narwhal', 'axolotl', 'pangolin', 'okapi'].filter((query) => text.toLowerCase().includes(query)), [], 'no query is in a metric');
});
