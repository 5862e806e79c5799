/**
 * Fuzzing each function with 2,000 generated requests (test/helpers/fuzz.ts), its real dependencies
 * up: no crash, no 5xx, nothing left hanging, memory bounded, no stack trace from our code, no secret out.
 * The seed is logged; `FUZZ_SEED=<seed> npm run test:chaos` sends the same requests again.
 */
import { readFileSync } from 'node:fs';
import test, { type ExecutionContext } from 'ava';
import { fuzz, fuzzSeed, type FuzzTarget, type Outcome } from '../helpers/fuzz';
import { readLog } from '../helpers/logs';
import { startFunction, type RunningFunction } from '../helpers/functions';
import { parseSamples, requestSeries, scrape } from '../helpers/metrics';
import { fakePixabay, holdsKey } from '../helpers/pixabay';
import { sharedTestPostgres } from '../helpers/postgres';
import { unsafeReflection } from '../helpers/reflection';

const SEED = fuzzSeed();
const REQUESTS = 2000;
const CONCURRENCY = 24;
/** The bound: every request answered or closed by the server within 5 s of the client finishing it. */
const HANG_AFTER_MS = 5000;
/**
 * A function idles at about 60-90 MB RSS. The fuzzer sends at most CONCURRENCY bodies of up to 1 MB at
 * once, which body-parser holds (and for JSON also parses) before the handler runs: a few tens of MB
 * more. 300 MB is well above that and well below where a leak or an unbounded buffer would take it.
 */
const MAX_RSS_MB = 300;

/** Markup among what the generator sends (in paths, queries and headers). */
const MARKUP_SENT = ['<script>', '<svg/onload=alert(1)>'];

const postgres = sharedTestPostgres();
test.after.always(postgres.stop);

test.serial('pingpong survives the fuzzer', async (t) => {
  const db = await postgres.database(t);
  const pingpong = await startFunction(t, 'pingpong', { DATABASE_URL: db.url });
  await fuzzFunction(t, pingpong, 0, { routes: ['/pingpong', '/pongs', '/healthz', '/livez'], params: [] }, ['/pingpong', '/pongs', '/healthz', '/livez']);
});

test.serial('log-output survives the fuzzer', async (t) => {
  const db = await postgres.database(t);
  const pingpong = await startFunction(t, 'pingpong', { DATABASE_URL: db.url });
  const logOutput = await startFunction(t, 'log-output', { PINGPONG_URL: pingpong.url, MESSAGE: 'Hello' });
  await fuzzFunction(t, logOutput, 1, { routes: ['/', '/healthz', '/livez'], params: [] }, ['/', '/healthz', '/livez']);
  t.true(pingpong.running(), 'pingpong, behind log-output, is still running');
});

test.serial('image-proxy survives the fuzzer and never shows its key', async (t) => {
  // A limit the fuzzer cannot reach: a rate-limited Pixabay would rightly give 503s, and here none is expected.
  const pixabay = await fakePixabay(t, { rateLimit: 1_000_000 });
  const proxy = await startFunction(t, 'image-proxy', pixabay.env);
  const [first, second] = pixabay.hitsFor('');
  const outcomes = await fuzzFunction(t, proxy, 2, {
    routes: ['/', '/?q=red+sky&page=2', '/api/images', '/api/images?q=sky', '/image', `/images/${first!.id}`, `/images/${second!.id}?size=web`, '/images/1', '/healthz', '/livez'],
    params: ['q', 'page', 'size'],
  }, ['/', '/api/images', '/image', '/images/:id', '/healthz', '/livez']);
  const leaking = outcomes.filter((outcome) => holdsKey(outcome.raw.toString('latin1'), pixabay.apiKey));
  t.deepEqual(leaking.map(describe), [], 'no response holds the key');
  t.false(holdsKey(proxy.output(), pixabay.apiKey), 'no log line holds the key');
  t.false(holdsKey(await scrape(proxy.url), pixabay.apiKey), 'no metric holds the key');
  t.log(`secrets leaked: ${leaking.length} responses, 0 log lines`);
});

/**
 * Fuzzes `fn` and checks it survived; then that its request metrics stayed bounded: every series's method
 * one HTTP defines or `_OTHER`, its route one of `routeTemplates` (or `/metrics`, `other`), its status one a
 * client was sent.
 */
async function fuzzFunction(t: ExecutionContext, fn: RunningFunction, salt: number, target: Omit<FuzzTarget, 'port'>, routeTemplates: string[]): Promise<Outcome[]> {
  const seed = (SEED + salt) >>> 0;
  t.log(`FUZZ_SEED=${SEED} (this function's requests come from seed ${seed})`);
  const seriesBefore = requestSeries(parseSamples(await scrape(fn.url))).length;
  const memory = sampleRss(fn.pid());
  const startedAt = performance.now();
  const outcomes = await fuzz({ ...target, port: fn.port }, seed, REQUESTS, CONCURRENCY, HANG_AFTER_MS);
  const seconds = (performance.now() - startedAt) / 1000;
  const peakMb = memory.stop();

  const hung = outcomes.filter((outcome) => outcome.ending === 'hung');
  const serverErrors = outcomes.filter((outcome) => outcome.status !== undefined && outcome.status >= 500);
  const waited = outcomes.filter((outcome) => outcome.ending !== 'client-closed').map((outcome) => outcome.waitedMs);
  t.log(`${outcomes.length} requests in ${seconds.toFixed(1)} s, ${CONCURRENCY} at a time`);
  t.log(`outcomes: ${JSON.stringify(histogram(outcomes))}`);
  const unanswered = outcomes.filter((outcome) => outcome.ending === 'closed' && outcome.status === undefined);
  if (unanswered.length) t.log(`closed without an answer, by what the request tried: ${JSON.stringify(countBy(unanswered.flatMap((outcome) => outcome.request.kinds)))}`);
  if (process.env.FUZZ_VERBOSE) for (const outcome of unanswered) t.log(describe(outcome));
  t.log(`max wait after the request was sent: ${Math.round(Math.max(...waited))} ms; peak RSS ${peakMb.toFixed(0)} MB`);

  t.is(outcomes.length, REQUESTS);
  t.deepEqual(hung.map(describe), [], `every request answered or closed within ${HANG_AFTER_MS} ms`);
  t.deepEqual(serverErrors.map(describe), [], 'no 5xx: every dependency is up');
  const reflecting = outcomes.filter((outcome) => MARKUP_SENT.some((markup) => unsafeReflection({ headers: outcome.headers, body: outcome.body.toString('latin1') }, markup)));
  t.deepEqual(reflecting.map(describe), [], 'no answer hands markup the fuzzer sent to a browser');
  t.true(fn.running(), 'the process is still running');
  t.is((await fetch(`${fn.url}/healthz`)).status, 200, 'and still healthy');
  t.true(peakMb < MAX_RSS_MB, `peak RSS ${peakMb.toFixed(0)} MB stays under ${MAX_RSS_MB} MB`);

  const traces = stackTraces(fn.output());
  const ours = traces.filter((trace) => trace.includes('/dist/functions/'));
  t.deepEqual(ours, [], 'no stack trace runs through our code');
  t.false(/Uncaught exception|Unhandled rejection/.test(fn.output()), 'nothing went unhandled');
  t.log(`crashes: ${fn.running() ? 0 : 1}; stack traces in the log: ${traces.length}, from our code: ${ours.length}`);
  if (traces.length) t.log(`framework stack traces, by first line: ${JSON.stringify(countBy(traces.map((trace) => trace.split('\n')[0]!.slice(0, 80))))}`);

  const series = requestSeries(parseSamples(await scrape(fn.url)));
  const methods = new Set([...HTTP_METHODS, '_OTHER']);
  const routes = new Set([...routeTemplates, '/metrics', 'other']);
  const statuses = new Set(['200', ...outcomes.flatMap((outcome) => (outcome.status === undefined ? [] : [String(outcome.status)]))]);
  const strays = series.filter(({ labels }) => {
    const status = labels.http_response_status_code;
    return !methods.has(labels.http_request_method!) || !routes.has(labels.http_route!) || (status !== undefined && !statuses.has(status));
  });
  t.deepEqual(strays.map((sample) => JSON.stringify(sample.labels)), [], 'every request series has a bounded method, route and status');
  const answeredAsOther = series.filter(({ labels }) => labels.http_route === 'other' && !['404', '405', undefined].includes(labels.http_response_status_code));
  t.deepEqual(answeredAsOther.map((sample) => JSON.stringify(sample.labels)), [], "'other' is only ever a 404 or 405: a path answered otherwise is a route missing from the function's list");
  // Each status may also be missing (a client that left before its answer).
  const bound = methods.size * routes.size * (statuses.size + 1);
  t.true(series.length <= bound, `${series.length} request series, at most ${bound}`);
  t.log(`request series: ${seriesBefore} before the fuzz, ${series.length} after (bounded by ${methods.size} methods x ${routes.size} routes x ${statuses.size + 1} statuses)`);
  return outcomes;
}

/** The methods HTTP defines; the metrics call any other `_OTHER`. */
const HTTP_METHODS = ['CONNECT', 'DELETE', 'GET', 'HEAD', 'OPTIONS', 'PATCH', 'POST', 'PUT', 'TRACE'];

/** Samples the process's resident memory every 50 ms; `stop` gives the peak in MB. */
function sampleRss(pid: number): { stop(): number } {
  let peakKb = 0;
  const sample = () => {
    const kb = Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
    peakKb = Math.max(peakKb, kb);
  };
  sample();
  const timer = setInterval(() => {
    try {
      sample();
    } catch {
      // The process is gone: the liveness check says so.
    }
  }, 50);
  return {
    stop() {
      clearInterval(timer);
      return peakKb / 1024;
    },
  };
}

function histogram(outcomes: Outcome[]): Record<string, number> {
  return countBy(outcomes.map((outcome) => (outcome.status !== undefined ? String(outcome.status) : outcome.ending === 'closed' ? 'closed without an answer' : outcome.ending)));
}

function countBy(keys: string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const key of keys.sort()) counts[key] = (counts[key] ?? 0) + 1;
  return counts;
}

/** Each stack trace in the output: a log line's `stack_trace`, or a printed one (the line before the first `at` line, and the `at` lines). */
function stackTraces(output: string): string[] {
  // Our own log lines carry a stack in a field (docs/logs.md); anything else prints it as lines of `    at ...`.
  const traces = readLog(output).entries.flatMap((entry) => (typeof entry.stack_trace === 'string' ? [entry.stack_trace] : []));
  const lines = output.split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (!/^\s+at /.test(lines[i]!) || (i > 0 && /^\s+at /.test(lines[i - 1]!))) continue;
    let end = i;
    while (end < lines.length && /^\s+at /.test(lines[end]!)) end++;
    traces.push(lines.slice(Math.max(0, i - 1), end).join('\n'));
  }
  return traces;
}

/** One line to find the request again: its index, what it tried, its request line, and how it ended. */
function describe(outcome: Outcome): string {
  const requestLine = outcome.request.bytes.subarray(0, Math.min(120, outcome.request.bytes.indexOf('\r\n') >>> 0)).toString('latin1');
  const answer = outcome.raw.subarray(0, 200).toString('latin1').split('\r\n\r\n').join(' | ');
  return `#${outcome.request.index} [${outcome.request.kinds.join(' ')}] ${JSON.stringify(requestLine)} -> ${outcome.ending} ${outcome.status ?? '-'} after ${Math.round(outcome.waitedMs)} ms: ${JSON.stringify(answer)}`;
}
