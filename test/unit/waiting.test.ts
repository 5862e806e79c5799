import test from 'ava';
import { gatherWhileBusy, TimeoutError } from '../../functions/shared/waiting';

test('a call never joins a batch that started before it arrived', async (t) => {
  let value = 0;
  const started: number[] = [];
  const read = gatherWhileBusy(async (k) => {
    started.push(k);
    const seen = value;
    await new Promise((resolve) => setTimeout(resolve, 20));
    return Array<number>(k).fill(seen);
  }, 1000, 'the store');

  const first = read(); // starts a batch that sees 0
  value = 1; // a write answered after the first read went out...
  const late = [read(), read()]; // ...so these must see it: they wait for the next batch
  t.is(await first, 0);
  t.deepEqual(await Promise.all(late), [1, 1]);
  t.deepEqual(started, [1, 2], 'the two late calls shared one batch');
});

test('results go to callers in the order they came', async (t) => {
  const next = gatherWhileBusy(async (k) => Array.from({ length: k }, (_, i) => i), 1000, 'the store');
  t.deepEqual(await Promise.all([next(), next(), next()]), [0, 0, 1]);
});

test('a call gives up at its deadline while its batch hangs, and a later call goes through', async (t) => {
  // The first batch hangs until the test lets it go, so the calls settling at all is the proof that they
  // gave up on their own, however slow the machine.
  let letGo!: () => void;
  const hanging = new Promise<void>((resolve) => (letGo = resolve));
  let batches = 0;
  let hungBatchEnded!: () => void;
  const hungBatchEnd = new Promise<void>((resolve) => (hungBatchEnded = resolve));
  const read = gatherWhileBusy(async (k) => {
    if (++batches === 1) {
      await hanging;
      hungBatchEnded();
    }
    return Array<string>(k).fill('answer');
  }, 100, 'the store');

  // The deadline's timer is unref'd (it must not keep a function alive); a server keeps the process up.
  const keepAlive = setInterval(() => undefined, 1000);
  t.teardown(() => clearInterval(keepAlive));
  const stuck = await Promise.allSettled([read(), read()]);
  for (const result of stuck) {
    t.is(result.status, 'rejected');
    t.true((result as PromiseRejectedResult).reason instanceof TimeoutError);
    t.is((result as PromiseRejectedResult).reason.message, 'the store did not answer within 100 ms');
  }
  letGo();
  await hungBatchEnd; // its answer has nobody left to go to
  t.is(await read(), 'answer', 'the next call gets an answer of its own');
  t.is(batches, 2);
});
