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

test('while a batch hangs past every deadline, calls that come later still give up at theirs, and batches nobody waits for are never run', async (t) => {
  // A commit waiting for a synchronous standby that is gone hangs past any statement timeout
  // (test/chaos/failover.test.ts): the batch gathering behind it times out too, and must stop gathering,
  // or every later call joins a batch whose timer has already fired and waits for ever.
  let letGo!: () => void;
  const hanging = new Promise<void>((resolve) => (letGo = resolve));
  const sizes: number[] = [];
  const read = gatherWhileBusy(async (k) => {
    sizes.push(k);
    if (sizes.length === 1) await hanging;
    return Array<string>(k).fill('answer');
  }, 100, 'the store');
  const keepAlive = setInterval(() => undefined, 1000);
  t.teardown(() => clearInterval(keepAlive));

  const inFlight = read(); // the batch that hangs
  const gatheringBehind = read(); // waits behind it, in the next batch
  for (const call of [inFlight, gatheringBehind]) await t.throwsAsync(call, { instanceOf: TimeoutError });
  // The calls settling at all is the proof, however slow the machine: before the fix these two never did.
  const [later, evenLater] = await Promise.allSettled([read(), read()]);
  for (const result of [later, evenLater]) t.true(result!.status === 'rejected' && result.reason instanceof TimeoutError);
  letGo();
  t.is(await read(), 'answer', 'once the store answers again, a new call gets its own answer');
  t.deepEqual(sizes, [1, 1], 'the batches that gave up while gathering were never run');
});
