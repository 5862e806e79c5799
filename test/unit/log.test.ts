/** The functions' log lines: their shape, and how few a failing dependency writes (functions/shared/log.ts). */
import test from 'ava';
import { redactor } from '../../functions/image-proxy/pixabay';
import { readLogContext, type LogContext } from '../../functions/shared/config';
import { Log, type LogOptions } from '../../functions/shared/log';
import { readableLogLine } from '../../scripts/functions';
import { holdsKey } from '../helpers/pixabay';

const INTERVAL_MS = 5000;

/** A log on a clock the test moves, writing into an array. */
function testLog(context: LogContext = { function: 'pingpong', revision: 'pingpong-00002' }, options: LogOptions = {}) {
  const lines: string[] = [];
  const clock = { ms: 0 };
  const log = new Log(context, { write: (line) => lines.push(line), now: () => clock.ms, time: () => new Date(Date.UTC(2026, 11, 1) + clock.ms), repeatIntervalMs: INTERVAL_MS, ...options });
  const entries = () => lines.map((line) => JSON.parse(line) as Record<string, unknown>);
  return { log, lines, clock, entries };
}

const failuresIn = (entries: Record<string, unknown>[]) => entries.reduce((sum, entry) => sum + ((entry.failures as number | undefined) ?? 0), 0);

test('a line is one JSON object: severity and message first, the fields, the function and revision, the time, the stack last', (t) => {
  const { log, lines, entries } = testLog();
  log.info('SIGTERM: finishing 2 request(s) in flight', { signal: 'SIGTERM', in_flight: 2, nothing: undefined });
  log.write('ERROR', 'a message\nwith "quotes" and a second line', { reason: 'other' }, 'Error: boom\n    at here (file.js:1:1)');
  t.deepEqual(entries(), [
    { severity: 'INFO', message: 'SIGTERM: finishing 2 request(s) in flight', signal: 'SIGTERM', in_flight: 2, function: 'pingpong', revision: 'pingpong-00002', time: '2026-12-01T00:00:00.000Z' },
    { severity: 'ERROR', message: 'a message\nwith "quotes" and a second line', reason: 'other', function: 'pingpong', revision: 'pingpong-00002', time: '2026-12-01T00:00:00.000Z', stack_trace: 'Error: boom\n    at here (file.js:1:1)' },
  ]);
  t.true(lines.every((line) => !line.includes('\n')), 'a newline in a message or stack stays inside its line');
  t.deepEqual(Object.keys(entries()[1]!), ['severity', 'message', 'reason', 'function', 'revision', 'time', 'stack_trace']);

  const local = testLog({ function: 'log-output', revision: undefined });
  local.log.warning('no revision here');
  t.deepEqual(Object.keys(local.entries()[0]!), ['severity', 'message', 'function', 'time'], 'no revision field where Knative set none');
});

test('the function and revision come from FUNCTION_TARGET and K_REVISION', (t) => {
  t.deepEqual(readLogContext({ FUNCTION_TARGET: 'pingpong', K_REVISION: 'pingpong-00003' }), { function: 'pingpong', revision: 'pingpong-00003' });
  t.deepEqual(readLogContext({ FUNCTION_TARGET: 'log-output', K_REVISION: ' ' }), { function: 'log-output', revision: undefined });
});

test('a minute-long outage at 100 failures a second: the first at once, one line per 5 s, one recovery line, and the failures add up', (t) => {
  const { log, clock, entries } = testLog();
  const postgres = log.dependency('postgres');
  postgres.answered();
  t.deepEqual(entries(), [], 'an answer with no outage writes nothing');

  for (clock.ms = 0; clock.ms < 60_000; clock.ms += 10) postgres.failed('connection_refused', 'connect ECONNREFUSED 127.0.0.1:5432');
  clock.ms = 60_050;
  postgres.answered();
  postgres.answered();

  const lines = entries();
  t.is(lines.length, 1 + 11 + 1, 'the first failure, a line at 5, 10, ... 55 s, and the recovery');
  t.like(lines[0], { severity: 'ERROR', message: 'postgres unavailable (connection_refused): connect ECONNREFUSED 127.0.0.1:5432', dependency: 'postgres', reason: 'connection_refused', event: 'dependency_failed', failures: 1 });
  t.like(lines[1], {
    severity: 'ERROR',
    message: 'postgres still unavailable (connection_refused): 500 requests failed in the last 5 s; the latest: connect ECONNREFUSED 127.0.0.1:5432',
    event: 'dependency_still_failing',
    failures: 500,
    seconds: 5,
    time: '2026-12-01T00:00:05.000Z',
  });
  t.like(lines[12], {
    severity: 'INFO',
    message: 'postgres answers again after 60.1 s; 6000 requests failed meanwhile (connection_refused 6000)',
    dependency: 'postgres',
    event: 'dependency_recovered',
    outage_seconds: 60.1,
    outage_failures: 6000,
    failures: 499,
  });
  t.is(failuresIn(lines), 6000, 'each failure is in exactly one line');
});

test('each kind of failure has its own first line at once and its own interval; the recovery names them all', (t) => {
  const { log, clock, entries } = testLog();
  const postgres = log.dependency('postgres');
  postgres.failed('connection_lost', 'read ECONNRESET');
  postgres.failed('connection_lost', 'read ECONNRESET');
  clock.ms = 100;
  postgres.failed('connection_refused', 'connect ECONNREFUSED');
  clock.ms = 200;
  postgres.failed('connection_refused', 'connect ECONNREFUSED');
  clock.ms = 5100;
  postgres.failed('connection_refused', 'connect ECONNREFUSED');
  clock.ms = 5200;
  postgres.answered();
  t.deepEqual(
    entries().map((entry) => [entry.event, entry.reason, entry.failures]),
    [
      ['dependency_failed', 'connection_lost', 1],
      ['dependency_failed', 'connection_refused', 1],
      ['dependency_still_failing', 'connection_refused', 2],
      ['dependency_recovered', undefined, 1],
    ],
  );
  t.is(entries()[3]!.message, 'postgres answers again after 5.2 s; 5 requests failed meanwhile (connection_lost 2, connection_refused 3)');
  t.is(failuresIn(entries()), 5);
});

test('a dependency that fails every other request for a minute still writes at most two lines per kind per interval', (t) => {
  const { log, clock, entries } = testLog();
  const pingpong = log.dependency('pingpong');
  let failed = 0;
  for (clock.ms = 0; clock.ms < 60_000; clock.ms += 10) {
    pingpong.failed('timeout', 'pingpong did not answer within 2000 ms');
    failed++;
    clock.ms += 5;
    pingpong.answered();
  }
  log.flush();
  const lines = entries();
  // Failure lines of a kind are an interval apart (13 in 60 s); each recovery line ends an outage one of them told of.
  t.true(lines.length <= 2 * (1 + 60_000 / INTERVAL_MS), `${lines.length} lines`);
  t.true(lines.length >= 12, `${lines.length} lines: the outages are still told`);
  t.is(failuresIn(lines), failed, 'and every failure is counted in one of them');
});

test('flush writes the failures not yet written, so that the counts add up at shutdown', (t) => {
  const { log, clock, entries } = testLog();
  const pixabay = log.dependency('pixabay');
  for (clock.ms = 0; clock.ms < 3000; clock.ms += 100) pixabay.failed('error', 'Pixabay answered 500');
  log.flush();
  t.deepEqual(entries().map((entry) => [entry.event, entry.failures]), [['dependency_failed', 1], ['dependency_still_failing', 29]]);
  log.flush();
  t.is(entries().length, 2, 'nothing twice');
});

test('a failure nobody foresaw, and a programming error, carry their stack; rate-limited the same way', (t) => {
  const { log, clock, entries } = testLog();
  const bug = new TypeError('hits.map is not a function');
  log.dependency('postgres').failed('other', 'something new\nsecond line', bug);
  t.like(entries()[0], { reason: 'other', message: 'postgres unavailable (other): something new', stack_trace: bug.stack });

  for (let i = 0; i < 100; i++, clock.ms += 100) log.unexpected(bug, { path: '/api/images' });
  log.flush();
  const unexpected = entries().slice(1);
  t.is(unexpected.length, 3, 'at 0 s, 5 s, and the rest at flush');
  t.like(unexpected[0], { severity: 'ERROR', message: 'unexpected error: TypeError: hits.map is not a function', event: 'unexpected_error', path: '/api/images', failures: 1, stack_trace: bug.stack });
  t.like(unexpected[1], { message: '50 unexpected errors in the last 4.9 s; the latest: TypeError: hits.map is not a function', failures: 50, stack_trace: bug.stack });
  t.is(failuresIn(unexpected), 100);
});

test('a redacted secret appears in no field, however it is quoted', (t) => {
  const key = 'ab+cd/ef=';
  const { log, lines } = testLog({ function: 'image-proxy', revision: undefined });
  log.redactWith(redactor(key));
  const url = `https://pixabay.com/api/?key=${encodeURIComponent(key)}&q=x`;
  const error = new Error(`fetch ${url} failed`);
  log.dependency('pixabay').failed('error', `Pixabay is unreachable (GET ${url})`, error);
  log.unexpected(new Error(`raw ${key}`), { path: `/x/${key}` });
  log.warning(`form-encoded ${new URLSearchParams({ key })}`);
  t.is(lines.length, 3);
  for (const line of lines) {
    const values = Object.values(JSON.parse(line) as Record<string, unknown>).map(String).join('\n');
    t.false([key, encodeURIComponent(key), new URLSearchParams({ k: key }).toString().slice(2)].some((form) => values.includes(form) || line.includes(form)), line);
  }
  t.true(lines[0]!.includes('key=REDACTED'));
});

test('npm start shows a JSON line as its severity and message, its stack below; other lines as they are', (t) => {
  const { log, lines } = testLog();
  log.info('SIGTERM: finishing 0 request(s) in flight, taking no new ones');
  log.dependency('postgres').failed('connection_refused', 'connect ECONNREFUSED 127.0.0.1:5432');
  log.unexpected(Object.assign(new Error('boom'), { stack: 'Error: boom\n    at one (a.js:1:1)\n    at two (b.js:2:2)' }));
  t.deepEqual(readableLogLine(lines[0]!), ['SIGTERM: finishing 0 request(s) in flight, taking no new ones']);
  t.deepEqual(readableLogLine(lines[1]!), ['ERROR postgres unavailable (connection_refused): connect ECONNREFUSED 127.0.0.1:5432']);
  t.deepEqual(readableLogLine(lines[2]!), ['ERROR unexpected error: Error: boom', '    at one (a.js:1:1)', '    at two (b.js:2:2)']);
  const stamp = '2026-12-01T10:00:00.000Z: 0ff3a59f-3bc5-46d7-a852-4580b8830f7c.';
  t.deepEqual(readableLogLine(stamp), [stamp], "log-output's exercise line is not touched");
  t.deepEqual(readableLogLine('{not json'), ['{not json']);
  t.deepEqual(readableLogLine('{"a":1}'), ['{"a":1}'], 'JSON without a severity and message is shown as it is');
});

test("the tests' key-leak check reads a JSON line's strings decoded: no escape hides the key", (t) => {
  const key = 'ab+cd/ef=';
  const escaped = JSON.stringify({ severity: 'ERROR', message: `leaked ${key}` }).replace('+', '\\u002b').replace('/', '\\/');
  t.false(escaped.includes(key), 'the raw line does not show it');
  t.true(holdsKey(escaped, key));
  t.false(holdsKey(JSON.stringify({ severity: 'ERROR', message: 'key=REDACTED' }), key));
});
