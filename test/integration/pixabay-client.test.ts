/** The Pixabay client against the stand-in over real HTTP, with a clock the test moves: the 24 h cache, coalescing, the rate limit. */
import test from 'ava';
import { PixabayClient, UpstreamError } from '../../functions/image-proxy/pixabay';
import { fakePixabay } from '../helpers/pixabay';

const HOUR = 60 * 60 * 1000;

async function setUp(t: import('ava').ExecutionContext, options?: Parameters<typeof fakePixabay>[1]) {
  const pixabay = await fakePixabay(t, options);
  const clock = { now: 1_800_000_000_000 };
  const client = new PixabayClient(pixabay.apiKey, pixabay.url, () => clock.now);
  return { pixabay, clock, client };
}

test('a search is asked once in 24 h, whatever its case and spacing; then asked again', async (t) => {
  const { pixabay, clock, client } = await setUp(t);
  const first = await client.search('Red Sky', 1);
  t.is(first.hits.length, 20);
  t.deepEqual(first.hits.map((hit) => hit.id), pixabay.hitsFor('red sky').slice(0, 20).map((hit) => hit.id));
  t.is(pixabay.apiRequests[0]!.get('q'), 'red sky', 'the normalised query goes upstream');

  clock.now += 24 * HOUR - 1;
  t.deepEqual(await client.search('  red   SKY ', 1), first);
  t.is(pixabay.calls.api, 1);
  await client.search('red sky', 2);
  t.is(pixabay.calls.api, 2, 'another page is another search');

  clock.now += 1;
  await client.search('red sky', 1);
  t.is(pixabay.calls.api, 3, 'after 24 h it is asked again');
});

test('concurrent misses for one query share one upstream request', async (t) => {
  const { pixabay, client } = await setUp(t);
  pixabay.setDelay(200);
  const results = await Promise.all(['sunset', 'Sunset', ' sunset', 'SUNSET ', 'sunset'].map((q) => client.search(q, 1)));
  t.is(pixabay.calls.api, 1);
  t.true(results.every((result) => result === results[0]));
  await Promise.all([client.search('dusk', 1), client.search('dawn', 1)]);
  t.is(pixabay.calls.api, 3, 'different queries do not wait for each other');
});

test('an error is not cached: the next request asks again and recovers', async (t) => {
  const { pixabay, client } = await setUp(t);
  pixabay.setBehaviour('server-error');
  const error = await t.throwsAsync(client.search('sky', 1), { instanceOf: UpstreamError });
  t.is(error!.status, 503);
  t.is(error!.message, 'Pixabay answered 500: [ERROR 500] Internal server error');
  pixabay.setBehaviour('normal');
  t.is((await client.search('sky', 1)).hits.length, 20);
  t.is(pixabay.calls.api, 2);
});

test('429: a stale result is served while one exists, else 503 with the wait; no request until the reset', async (t) => {
  const { pixabay, clock, client } = await setUp(t, { windowSeconds: 60 });
  const old = await client.search('red sky', 1);
  clock.now += 25 * HOUR;

  pixabay.setBehaviour('rate-limited');
  t.is(await client.search('red sky', 1), old, 'the stale result');
  t.is(pixabay.calls.api, 2, 'it did ask');

  const error = await t.throwsAsync(client.search('never seen', 1), { instanceOf: UpstreamError });
  t.is(error!.status, 503);
  t.true(error!.retryAfterSeconds! >= 55 && error!.retryAfterSeconds! <= 60, String(error!.retryAfterSeconds));
  t.regex(error!.message, /^Pixabay's rate limit is used up; try again in \d+ s$/);
  t.is(pixabay.calls.api, 2, 'blocked without asking');

  pixabay.setBehaviour('normal');
  clock.now += 61_000;
  t.is((await client.search('never seen', 1)).hits.length, 20, 'after the reset it asks again');
  t.is(pixabay.calls.api, 3);
});

test('X-RateLimit-Remaining: 0 stops requests until X-RateLimit-Reset, before Pixabay has to say 429', async (t) => {
  const { pixabay, clock, client } = await setUp(t, { rateLimit: 2, windowSeconds: 30 });
  await client.search('one', 1);
  await client.search('two', 1); // answered, with Remaining: 0
  const error = await t.throwsAsync(client.search('three', 1), { instanceOf: UpstreamError });
  t.true(error!.retryAfterSeconds! >= 25 && error!.retryAfterSeconds! <= 30, String(error!.retryAfterSeconds));
  t.is(pixabay.calls.api, 2);
  t.is((await client.search('one', 1)).hits.length, 20, 'a fresh cached search is still served');

  clock.now += 30_000;
  // The stand-in's own window runs on the wall clock and is still used up: what matters is that we asked.
  await t.throwsAsync(client.search('three', 1), { instanceOf: UpstreamError });
  t.is(pixabay.calls.api, 3, 'after the reset it asks again');
});

test('an image is found from a recent search without asking; otherwise by id, once', async (t) => {
  const { pixabay, clock, client } = await setUp(t);
  const [fromSearch] = (await client.search('red sky', 1)).hits;
  t.deepEqual(await client.findImage(fromSearch!.id), fromSearch);
  t.is(pixabay.calls.api, 1);

  const other = pixabay.hitsFor('red sky')[30]!; // on page 2, never searched
  t.is((await client.findImage(other.id))?.webformatURL, other.webformatURL);
  t.is(pixabay.apiRequests[1]!.get('id'), String(other.id));
  await client.findImage(other.id);
  t.is(pixabay.calls.api, 2, 'the lookup is cached too');
  t.is(await client.findImage(424242), undefined);

  clock.now += 25 * HOUR;
  pixabay.setBehaviour('rate-limited');
  t.deepEqual(await client.findImage(fromSearch!.id), fromSearch, 'stale but better than nothing while rate-limited');
});
