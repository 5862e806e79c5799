import test from 'ava';
import { gatherWhileBusy } from '../../functions/shared/batch';

test('a call never joins a batch that started before it arrived', async (t) => {
  let value = 0;
  const started: number[] = [];
  const read = gatherWhileBusy(async (k) => {
    started.push(k);
    const seen = value;
    await new Promise((resolve) => setTimeout(resolve, 20));
    return Array<number>(k).fill(seen);
  });

  const first = read(); // starts a batch that sees 0
  value = 1; // a write answered after the first read went out...
  const late = [read(), read()]; // ...so these must see it: they wait for the next batch
  t.is(await first, 0);
  t.deepEqual(await Promise.all(late), [1, 1]);
  t.deepEqual(started, [1, 2], 'the two late calls shared one batch');
});

test('results go to callers in the order they came', async (t) => {
  const next = gatherWhileBusy(async (k) => Array.from({ length: k }, (_, i) => i));
  t.deepEqual(await Promise.all([next(), next(), next()]), [0, 0, 1]);
});
