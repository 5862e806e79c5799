import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { UpstreamError } from '../../functions/image-proxy/pixabay';
import { databaseFailureReason } from '../../functions/shared/db';
import { endsColdStart, methodLabel, processAgeSeconds, routeOf } from '../../functions/shared/metrics';
import { TimeoutError } from '../../functions/shared/waiting';
import { tempDir } from '../helpers/temp';

test('a path becomes its route template, or other', (t) => {
  const route = routeOf(['/', '/api/images', '/images/:id', '/healthz']);
  t.is(route('/'), '/');
  t.is(route('/api/images'), '/api/images');
  t.is(route('/images/42'), '/images/:id');
  t.is(route('/images/not-a-number'), '/images/:id', 'the handler answers it (400), so it is the route');
  t.is(route('/images/'), '/images/:id');
  t.is(route('/images/42/more'), 'other');
  t.is(route('/api/images/'), 'other');
  t.is(route('//'), 'other');
  t.is(route('/healthz?x=1'), 'other', 'a query string is never part of a path handed in, and never a label');
  t.is(route('/%2e%2e/etc/passwd'), 'other');
  t.is(routeOf(['/a.b'])('/axb'), 'other', 'a template is literal apart from its :name segments');
});

test('a method HTTP defines is its own label; any other is _OTHER', (t) => {
  for (const method of ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'TRACE', 'CONNECT']) t.is(methodLabel(method), method);
  for (const method of ['PROPFIND', 'PURGE', 'M-SEARCH', 'get', 'FOO']) t.is(methodLabel(method), '_OTHER');
});

test('database failures by reason: what postgres.js and Node say, in a few words', (t) => {
  const coded = (code: string, name = 'Error') => Object.assign(new Error(code), { code, name });
  t.is(databaseFailureReason(new TimeoutError('the database did not answer within 1200 ms')), 'timeout');
  t.is(databaseFailureReason(coded('CONNECT_TIMEOUT')), 'timeout');
  t.is(databaseFailureReason(coded('57014', 'PostgresError')), 'timeout', 'the statement timeout');
  t.is(databaseFailureReason(coded('ECONNREFUSED')), 'connection_refused');
  t.is(databaseFailureReason(coded('57P03', 'PostgresError')), 'connection_refused', 'starting up or shutting down');
  t.is(databaseFailureReason(coded('CONNECTION_CLOSED')), 'connection_lost');
  t.is(databaseFailureReason(coded('ECONNRESET')), 'connection_lost');
  t.is(databaseFailureReason(coded('57P01', 'PostgresError')), 'connection_lost', 'terminated by an administrator or a shutdown');
  t.is(databaseFailureReason(coded('ENOTFOUND')), 'unreachable');
  t.is(databaseFailureReason(coded('28P01', 'PostgresError')), 'rejected', 'a wrong password');
  t.is(databaseFailureReason(coded('53300', 'PostgresError')), 'rejected', 'too many connections');
  t.is(databaseFailureReason(coded('SOMETHING_NEW')), 'other');
  t.is(databaseFailureReason(new Error('no code')), 'other');
  t.is(databaseFailureReason(undefined), 'other');
});

test("Pixabay's failures by outcome", (t) => {
  t.is(new UpstreamError(503, "Pixabay's rate limit is used up", undefined, 30).outcome, 'rate_limited');
  t.is(new UpstreamError(404, 'Pixabay no longer has this image').outcome, 'not_found');
  t.is(new UpstreamError(504, 'Pixabay did not answer within 5000 ms').outcome, 'timeout');
  t.is(new UpstreamError(503, 'Pixabay answered 500').outcome, 'error');
  t.is(new UpstreamError(503, 'Pixabay is unreachable (ECONNREFUSED)').outcome, 'error');
});

test('the cold start ends at the first answer below 500 that is not a scrape', (t) => {
  const answer = (http_route: string, http_response_status_code?: number) => ({ http_request_method: 'GET', http_route, ...(http_response_status_code && { http_response_status_code }) });
  t.true(endsColdStart(answer('/healthz', 200)));
  t.true(endsColdStart(answer('/livez', 200)), "image-proxy's readiness probe");
  t.true(endsColdStart(answer('other', 404)), 'a junk path answered is a request served');
  t.true(endsColdStart(answer('/pingpong', 499)));
  t.false(endsColdStart(answer('/healthz', 503)), 'a dependency not there yet: not serving');
  t.false(endsColdStart(answer('/pingpong', 500)));
  t.false(endsColdStart(answer('/metrics', 200)), 'Prometheus scrapes the pod as soon as it listens');
  t.false(endsColdStart(answer('/pingpong')), 'the client left before any answer');
});

/** A fake /proc holding this process's stat with `command` and `startTicks`, and an uptime of `sinceBoot` seconds. */
function fakeProc(t: ExecutionContext, { command = 'node', startTicks, sinceBoot }: { command?: string; startTicks: number; sinceBoot: number }): string {
  const proc = tempDir(t, 'proc-');
  mkdirSync(path.join(proc, 'self'));
  // The real line's fields, with the command and field 22 (starttime) replaced.
  const real = readFileSync('/proc/self/stat', 'utf8');
  const fields = real.slice(real.lastIndexOf(')') + 2).split(' ');
  fields[19] = String(startTicks);
  writeFileSync(path.join(proc, 'self', 'stat'), `${process.pid} (${command}) ${fields.join(' ')}`);
  writeFileSync(path.join(proc, 'uptime'), `${sinceBoot.toFixed(2)} 1234.56\n`);
  return proc;
}

test("a process's age is the kernel's, from its start in /proc, never less than Node's own uptime", (t) => {
  const uptime = process.uptime();
  // Started 0.3 s before Node's main() began: the kernel's figure wins.
  const older = fakeProc(t, { startTicks: 100_000, sinceBoot: 1000 + uptime + 0.3 });
  t.true(Math.abs(processAgeSeconds(older) - (uptime + 0.3)) < 0.02, String(processAgeSeconds(older)));
  // A command name with spaces and parentheses does not shift the fields.
  const odd = fakeProc(t, { command: 'node (x) y)', startTicks: 100_000, sinceBoot: 1000 + uptime + 0.3 });
  t.true(Math.abs(processAgeSeconds(odd) - (uptime + 0.3)) < 0.02);
  // /proc's 10 ms steps may round it below Node's uptime: Node's, a lower bound, is kept.
  const rounded = fakeProc(t, { startTicks: 100_000, sinceBoot: 1000 + uptime - 0.01 });
  t.true(processAgeSeconds(rounded) >= uptime);
  // Figures that cannot be right (another tick size, another namespace's uptime): Node's alone.
  const wrong = fakeProc(t, { startTicks: 100_000, sinceBoot: 900 });
  t.true(Math.abs(processAgeSeconds(wrong) - process.uptime()) < 0.05);
  const future = fakeProc(t, { startTicks: 100_000, sinceBoot: 1000 + uptime + 60 });
  t.true(Math.abs(processAgeSeconds(future) - process.uptime()) < 0.05);
  t.true(Math.abs(processAgeSeconds(path.join(older, 'missing')) - process.uptime()) < 0.05, 'no /proc (macOS)');
  // And the real one: this process is older than Node's main() by a little (exec, loading the binary).
  const real = processAgeSeconds();
  t.true(real >= process.uptime() - 0.001 && real < process.uptime() + 2, `${real} against ${process.uptime()}`);
});
