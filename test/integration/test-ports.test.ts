/**
 * The tests run many functions at once, each on a port found free a moment before it binds it. Another
 * process can take the port in that moment; then that process, not ours, answers there.
 */
import { createServer } from 'node:http';
import test from 'ava';
import { startFunction } from '../helpers/functions';
import { freePort, listensOn } from '../helpers/ports';

const logOutput = { PINGPONG_URL: 'http://127.0.0.1:1' }; // /livez answers without pingpong

test('a function whose port another process took is not mistaken for the one answering there', async (t) => {
  const port = await freePort();
  const squatter = createServer((_req, res) => res.end('ok'));
  await new Promise<void>((resolve) => squatter.listen(port, resolve));
  t.teardown(() => squatter.close());
  t.true(listensOn(process.pid, port));

  const error = await t.throwsAsync(startFunction(t, 'log-output', logOutput, { port, waitPath: '/livez' }));
  t.regex(String(error?.cause), new RegExp(`port ${port} was taken by another process`));

  const started = await startFunction(t, 'log-output', logOutput, { waitPath: '/livez' });
  t.true(listensOn(started.pid(), started.port), 'a port of its own');
  t.false(listensOn(started.pid(), port));
});
