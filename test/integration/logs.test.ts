/**
 * The functions' logs during an outage (docs/logs.md): a dependency down for several seconds under
 * concurrent load writes a few lines per function, not one per failed request, while the failure counters
 * still count every 503; the line saying it is back appears once it is; every line is JSON (but
 * log-output's exercise line), and none holds a secret.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import test, { type ExecutionContext } from 'ava';
import { REPEAT_INTERVAL_MS } from '../../functions/shared/log';
import { frameworkMain, functionsEntry } from '../../scripts/functions';
import { startFunction, type RunningFunction } from '../helpers/functions';
import { HANG_MS, sleep } from '../helpers/load';
import { failuresLogged, readLog, STAMP_LINE, type LogEntry } from '../helpers/logs';
import { readMetrics } from '../helpers/metrics';
import { fakePixabay, holdsKey } from '../helpers/pixabay';
import { startTestPostgres } from '../helpers/postgres';
import { BUSY_MACHINE_SLACK_MS } from '../helpers/timing';

const CLIENTS = 8; // per function
const OUTAGE_MS = 8000; // longer than one repeat interval, so that the lines in between show too
// Postgres answers within a second of starting and pingpong reconnects within half a second (docs/reliability.md).
const RECOVERY_MS = 5000 + BUSY_MACHINE_SLACK_MS;
const FAILURE_EVENTS = ['dependency_failed', 'dependency_still_failing'];

test.serial('Postgres down for 8 s under load: pingpong and log-output each write a few lines, count every 503, and say when it is back', async (t) => {
  const db = await startTestPostgres(t);
  const pingpong = await startFunction(t, 'pingpong', { DATABASE_URL: db.url, K_REVISION: 'pingpong-00007' });
  const logOutput = await startFunction(t, 'log-output', { PINGPONG_URL: pingpong.url, MESSAGE: 'Hello' });
  t.is((await fetch(`${logOutput.url}/`)).status, 200, 'all up before the outage');

  const pings = startLoad(() => `${pingpong.url}/pingpong`, CLIENTS);
  const pages = startLoad(() => `${logOutput.url}/`, CLIENTS);
  t.teardown(() => Promise.all([pings.stop(), pages.stop()]).then(() => undefined));
  await sleep(1000);
  const linesBefore = { pingpong: lineCount(pingpong), logOutput: lineCount(logOutput) };
  const down = Date.now();
  await db.stop();
  await sleep(OUTAGE_MS);
  await db.start();
  await eventually(() => recoveryLines(pingpong, 'postgres').length > 0 && recoveryLines(logOutput, 'pingpong').length > 0, RECOVERY_MS);
  await sleep(1000); // answers go on after the recovery
  await Promise.all([pings.stop(), pages.stop()]);
  const windowSeconds = (Date.now() - down) / 1000;
  t.true(pings.count(200) > 0 && pages.count(200) > 0, 'answers came after the outage');

  const pingpongMetrics = await readMetrics(pingpong.url);
  const logOutputMetrics = await readMetrics(logOutput.url);
  const databaseFailures = pingpongMetrics.sum('pingpong_database_failures_total');
  const pingpongFailures = logOutputMetrics.sum('log_output_pingpong_failures_total');
  const pingpong503s = pingpongMetrics.sum('http_server_request_duration_seconds_count', { http_response_status_code: '503' });
  // pingpong's 503s went to our clients and to log-output; log-output's only to ours.
  t.is(databaseFailures, pingpong503s, "pingpong's failure counter counts each 503 it answered");
  t.true(pings.count(503) > CLIENTS && pings.count(503) <= pingpong503s, `our clients got ${pings.count(503)} of them`);
  t.is(pingpongFailures, pages.count(503), "log-output's failure counter counts each 503 our clients got");
  t.deepEqual(pings.errors.concat(pages.errors).slice(0, 3), [], 'every request was answered');

  const during = {
    pingpong: assertBoundedOutage(t, 'pingpong', 'postgres', readLog(pingpong.output()).entries.slice(linesBefore.pingpong), windowSeconds),
    logOutput: assertBoundedOutage(t, 'log-output', 'pingpong', readLog(logOutput.output()).entries.slice(linesBefore.logOutput), windowSeconds),
  };
  t.true(during.pingpong.every((entry) => entry.revision === 'pingpong-00007'), "every line names pingpong's revision");
  t.true(during.logOutput.every((entry) => entry.revision === undefined), 'no revision where none is set');

  // Stopped, each writes the failures counted since its last line: then the lines add up to the counters.
  await Promise.all([logOutput.stop(), pingpong.stop()]);
  t.is(failuresLogged(readLog(pingpong.output()).entries, 'postgres'), databaseFailures, "the failures in pingpong's lines add up to its counter");
  t.is(failuresLogged(readLog(logOutput.output()).entries, 'pingpong'), pingpongFailures, "the failures in log-output's lines add up to its counter");

  assertEveryLineJson(t, pingpong, []);
  assertEveryLineJson(t, logOutput, [STAMP_LINE]);
  const password = decodeURIComponent(new URL(db.url).password);
  t.true(password.length > 8);
  t.false(holdsKey(pingpong.output(), password), "no line of pingpong's holds the database password");
  t.log(
    `window ${windowSeconds.toFixed(1)} s; pingpong: ${pingpong503s} 503s, ${during.pingpong.length} lines; ` +
      `log-output: ${pages.count(503)} 503s, ${during.logOutput.length} lines`,
  );
});

test.serial('Pixabay failing for 8 s under load: image-proxy writes a few lines, counts every failed call, says when it is back, and never the key', async (t) => {
  // '+', '/' and '=' change under URL-encoding, so an encoded leak is a different string from a raw one.
  const pixabay = await fakePixabay(t, { apiKey: `test+key/${randomUUID()}=`, rateLimit: 1_000_000 });
  const proxy = await startFunction(t, 'image-proxy', pixabay.env);
  t.is((await fetch(`${proxy.url}/api/images?q=before`)).status, 200);
  const callsFailedBefore = (await readMetrics(proxy.url)).sum('image_proxy_pixabay_requests_total', { outcome: 'error' });

  // Every request a new search: no cache or shared call between them, so each 503 is one failed call to Pixabay.
  let query = 0;
  const searches = startLoad(() => `${proxy.url}/api/images?q=outage+${query++}`, CLIENTS);
  t.teardown(() => searches.stop());
  await sleep(500);
  const linesBefore = lineCount(proxy);
  const down = Date.now();
  pixabay.setBehaviour('server-error');
  await sleep(OUTAGE_MS);
  pixabay.setBehaviour('normal');
  await eventually(() => recoveryLines(proxy, 'pixabay').length > 0, RECOVERY_MS);
  await sleep(1000);
  await searches.stop();
  const windowSeconds = (Date.now() - down) / 1000;

  const callsFailed = (await readMetrics(proxy.url)).sum('image_proxy_pixabay_requests_total', { outcome: 'error' }) - callsFailedBefore;
  t.true(searches.count(503) > CLIENTS, `${searches.count(503)} 503s`);
  t.is(callsFailed, searches.count(503), 'the counter of failed calls to Pixabay counts each 503');
  t.deepEqual(searches.errors.slice(0, 3), []);
  const during = assertBoundedOutage(t, 'image-proxy', 'pixabay', readLog(proxy.output()).entries.slice(linesBefore), windowSeconds);
  t.true(during[0]!.message.includes('key=REDACTED'), 'the first line names the call, its key redacted');

  await proxy.stop();
  t.is(failuresLogged(readLog(proxy.output()).entries, 'pixabay'), searches.count(503), 'the failures in its lines add up to the 503s');
  assertEveryLineJson(t, proxy, []);
  t.false(holdsKey(proxy.output(), pixabay.apiKey), 'no line holds the key, raw, encoded or escaped');
  t.log(`window ${windowSeconds.toFixed(1)} s; image-proxy: ${searches.count(503)} 503s, ${during.length} lines`);
});

test('a function that cannot start says why in one JSON line, without a stack for a wrong setting', async (t) => {
  const child = spawn(process.execPath, [frameworkMain, `--source=${functionsEntry}`, '--target=image-proxy'], {
    env: { ...process.env, FUNCTION_TARGET: 'image-proxy', PORT: '0', DEMO_IMAGES: 'true', PIXABAY_API_URL: 'https://pixabay.com/api/' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const code = await new Promise((resolve) => child.once('close', resolve));
  t.is(code, 1);
  const { entries, others } = readLog(output);
  t.deepEqual(others, [], 'nothing but JSON lines');
  t.is(entries.length, 1);
  t.like(entries[0], {
    severity: 'CRITICAL',
    message: "could not start: DEMO_IMAGES is for npm run demo's stand-in on this machine, but PIXABAY_API_URL is https://pixabay.com/api/",
    event: 'start_failed',
    function: 'image-proxy',
  });
  t.is(entries[0]!.stack_trace, undefined);
});

/**
 * The lines `fn` wrote while `dependency` was out, in a window of `windowSeconds` (docs/logs.md, How few lines):
 * at most K × (1 + ⌊T / 5 s⌋) failure lines for K kinds of failure, each a line at once and then at most one
 * per interval, and a line saying it is back for each outage a failure line told of (a straggler failing just
 * after the first answer is an outage of its own). Returns them.
 */
function assertBoundedOutage(t: ExecutionContext, name: string, dependency: string, entries: LogEntry[], windowSeconds: number): LogEntry[] {
  t.log(`${name}'s lines:\n${entries.map((entry) => `  ${entry.time} ${entry.severity} ${entry.message} [failures ${entry.failures}]`).join('\n')}`);
  const failures = entries.filter((entry) => FAILURE_EVENTS.includes(entry.event as string));
  const recoveries = entries.filter((entry) => entry.event === 'dependency_recovered');
  const kinds = new Set(failures.map((entry) => entry.reason));
  const bound = kinds.size * (1 + Math.floor((windowSeconds * 1000) / REPEAT_INTERVAL_MS));
  t.true(failures.every((entry) => entry.dependency === dependency && entry.severity === 'ERROR'), `${name}: every failure line is an ERROR naming ${dependency}`);
  t.true(failures.length >= 2 && failures.length <= bound, `${name}: ${failures.length} failure lines in ${windowSeconds.toFixed(1)} s for ${kinds.size} kind(s): at most ${bound}`);
  t.true(failures.some((entry) => entry.event === 'dependency_still_failing'), `${name}: the outage outlasted an interval, and a line said so with a count`);
  t.true(failures.every((entry) => entry.stack_trace === undefined), `${name}: no stack for a foreseen failure`);
  t.true(recoveries.length >= 1 && recoveries.length <= failures.length, `${name}: ${recoveries.length} line(s) say ${dependency} is back`);
  const [first] = recoveries;
  // From the first failed request to the first answer: requests in flight at either switch may shorten it.
  t.true((first!.outage_seconds as number) >= (OUTAGE_MS - BUSY_MACHINE_SLACK_MS) / 1000 && (first!.outage_seconds as number) <= windowSeconds + 0.1, `${name}: out for ${first!.outage_seconds} s`);
  t.is(entries.length, failures.length + recoveries.length, `${name}: nothing else was written during the outage`);
  t.is(entries.at(-1)!.event, 'dependency_recovered', `${name}: the last line says ${dependency} is back`);
  return entries;
}

/** Every line `fn` printed is a JSON log line, or matches one of `plain`. */
function assertEveryLineJson(t: ExecutionContext, fn: RunningFunction, plain: RegExp[]): void {
  const { entries, others } = readLog(fn.output());
  t.true(entries.length > 0);
  t.deepEqual(others.filter((line) => !plain.some((pattern) => pattern.test(line))).slice(0, 5), [], 'every line is JSON');
  t.true(entries.every((entry) => typeof entry.function === 'string' && typeof entry.time === 'string'), 'every line names its function and time');
}

function lineCount(fn: RunningFunction): number {
  return readLog(fn.output()).entries.length;
}

function recoveryLines(fn: RunningFunction, dependency: string): LogEntry[] {
  return readLog(fn.output()).entries.filter((entry) => entry.event === 'dependency_recovered' && entry.dependency === dependency);
}

/** `clients` clients asking `url()` in a loop, each its next request as soon as the last one answered. */
function startLoad(url: () => string, clients: number) {
  const statuses: number[] = [];
  const errors: string[] = [];
  let stopping = false;
  const client = async () => {
    while (!stopping) {
      try {
        const response = await fetch(url(), { signal: AbortSignal.timeout(HANG_MS) });
        await response.arrayBuffer();
        statuses.push(response.status);
      } catch (error) {
        errors.push(String((error as Error).cause ?? error));
        await sleep(20);
      }
    }
  };
  const running = Promise.all(Array.from({ length: clients }, client));
  return {
    errors,
    count: (status: number) => statuses.filter((s) => s === status).length,
    stop: async () => {
      stopping = true;
      await running;
    },
  };
}

async function eventually(condition: () => boolean, ms: number): Promise<void> {
  const giveUpAt = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > giveUpAt) throw new Error(`not within ${ms} ms`);
    await sleep(50);
  }
}
