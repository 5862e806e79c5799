import test from 'ava';
import { UpstreamError } from '../../functions/image-proxy/pixabay';
import { databaseFailureReason } from '../../functions/shared/db';
import { methodLabel, routeOf } from '../../functions/shared/metrics';
import { TimeoutError } from '../../functions/shared/waiting';

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
