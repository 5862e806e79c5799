import test from 'ava';
import { batchPings } from '../../functions/pingpong/counter';

/** A counter in memory that records the size of each batch it was asked to add. */
function fakeDatabase() {
  let n = 0;
  const batches: number[] = [];
  const addPings = async (k: number) => {
    batches.push(k);
    await new Promise((resolve) => setTimeout(resolve, 5));
    n += k;
    return n;
  };
  return { addPings, batches, count: () => n };
}

test('one ping at a time gets 0, 1, 2 in order, one statement each', async (t) => {
  const db = fakeDatabase();
  const recordPing = batchPings(db.addPings, 1000);
  t.deepEqual([await recordPing(), await recordPing(), await recordPing()], [0, 1, 2]);
  t.deepEqual(db.batches, [1, 1, 1]);
});

test('pings waiting together share a statement and each gets its own number', async (t) => {
  const db = fakeDatabase();
  const recordPing = batchPings(db.addPings, 1000);
  const numbers = await Promise.all(Array.from({ length: 100 }, () => recordPing()));
  t.deepEqual([...numbers].sort((a, b) => a - b), Array.from({ length: 100 }, (_, i) => i));
  t.is(db.count(), 100);
  t.true(db.batches.length <= 2, `100 concurrent pings took ${db.batches.length} statements`);
});

test('a failed statement fails only its own batch, and the next batch goes through', async (t) => {
  let fail = true;
  let n = 0;
  const recordPing = batchPings(async (k) => {
    if (fail) throw new Error('database down');
    n += k;
    return n;
  }, 1000);
  const failed = await Promise.allSettled([recordPing(), recordPing()]);
  t.deepEqual(failed.map((result) => result.status), ['rejected', 'rejected']);
  fail = false;
  t.deepEqual(await Promise.all([recordPing(), recordPing()]), [0, 1]);
});
