/**
 * image-proxy served by functions-framework from dist/, against the stand-in Pixabay over real HTTP.
 * Every answer is scanned for the API key, and so is everything the function printed.
 */
import { randomUUID } from 'node:crypto';
import test, { type ExecutionContext } from 'ava';
import { startFunction, type RunningFunction } from '../helpers/functions';
import { fakePixabay, holdsKey, type FakePixabay, type FakePixabayOptions } from '../helpers/pixabay';
import { freePort } from '../helpers/ports';

interface Answer {
  status: number;
  headers: Headers;
  body: Buffer;
  text: string;
}

/** A stand-in with a key that URL-encoding changes, and image-proxy pointed at it. */
async function setUp(t: ExecutionContext, options: FakePixabayOptions = {}) {
  const pixabay = await fakePixabay(t, { apiKey: `test+key/${randomUUID()}=`, ...options });
  const proxy = await startFunction(t, 'image-proxy', pixabay.env);
  const get = (path: string, init?: RequestInit) => fetchChecked(t, pixabay.apiKey, `${proxy.url}${path}`, init);
  return { pixabay, proxy, get };
}

/** Fetches, and fails the test if the key, raw or encoded, is anywhere in the status line, headers or body. */
async function fetchChecked(t: ExecutionContext, key: string, url: string, init?: RequestInit): Promise<Answer> {
  const response = await fetch(url, init);
  const body = Buffer.from(await response.arrayBuffer());
  const everything = [response.statusText, ...[...response.headers].flat(), body.toString('latin1')].join('\n');
  t.false(holdsKey(everything, key), `the answer to ${url} holds the key`);
  return { status: response.status, headers: response.headers, body, text: body.toString('utf8') };
}

function assertLogClean(t: ExecutionContext, proxy: RunningFunction, pixabay: FakePixabay): void {
  t.false(holdsKey(proxy.output(), pixabay.apiKey), 'the log holds the key');
}

test.serial('GET /api/images: the search as JSON with our URLs, cached per normalised query', async (t) => {
  const { pixabay, proxy, get } = await setUp(t);
  const answer = await get('/api/images?q=Red%20Sky');
  t.is(answer.status, 200);
  t.regex(answer.headers.get('content-type')!, /^application\/json/);
  const body = JSON.parse(answer.text);
  t.like(body, { query: 'Red Sky', page: 1, total: 45, totalHits: 45 });
  const upstream = pixabay.hitsFor('red sky');
  t.is(body.images.length, 20);
  t.deepEqual(body.images[0], {
    id: upstream[0]!.id,
    tags: upstream[0]!.tags.split(', '),
    pageUrl: upstream[0]!.pageURL,
    author: upstream[0]!.user,
    authorUrl: `https://pixabay.com/users/${encodeURIComponent(upstream[0]!.user)}-${upstream[0]!.user_id}/`,
    width: 4000,
    height: 2667,
    preview: { url: `/images/${upstream[0]!.id}?size=preview`, width: 150, height: 100 },
    web: { url: `/images/${upstream[0]!.id}?size=web`, width: 640, height: 427 },
  });
  t.false(answer.text.includes(pixabay.imageHost), "Pixabay's image URLs are not handed out");

  t.is((await get('/api/images?q=red+sky')).status, 200);
  t.is((await get('/api/images?q=%20RED%20%20sky%20')).status, 200);
  t.is(pixabay.calls.api, 1, 'one upstream request for three spellings');
  const page3 = JSON.parse((await get('/api/images?q=red+sky&page=3')).text);
  t.deepEqual(page3.images.map((image: { id: number }) => image.id), upstream.slice(40).map((hit) => hit.id));
  t.is(pixabay.calls.api, 2);

  const defaults = JSON.parse((await get('/api/images')).text);
  t.is(defaults.query, 'red sky');
  t.is(pixabay.calls.api, 2, 'no q means the default query, already cached');
  assertLogClean(t, proxy, pixabay);
});

test.serial('GET /images/:id: the upstream bytes, type and length, cacheable; an unseen id is looked up once', async (t) => {
  const { pixabay, proxy, get } = await setUp(t);
  const [first] = JSON.parse((await get('/api/images')).text).images;

  for (const size of ['preview', 'web'] as const) {
    const answer = await get(`/images/${first.id}?size=${size}`);
    t.is(answer.status, 200, size);
    t.is(answer.headers.get('content-type'), 'image/png');
    t.is(answer.headers.get('content-length'), String(answer.body.length));
    t.regex(answer.headers.get('cache-control')!, /max-age=86400/);
    t.is(answer.headers.get('x-content-type-options'), 'nosniff');
    t.true(answer.body.equals(pixabay.imageBytes(first.id, size)), `${size}: the same bytes`);
  }
  t.true((await get(`/images/${first.id}`)).body.equals(pixabay.imageBytes(first.id, 'preview')), 'preview by default');
  t.is(pixabay.calls.api, 1, 'ids from a search need no lookup');

  const unseen = pixabay.hitsFor('red sky')[44]!;
  const looked = await get(`/images/${unseen.id}?size=web`);
  t.is(looked.status, 200);
  t.true(looked.body.equals(pixabay.imageBytes(unseen.id, 'web')));
  t.is(pixabay.apiRequests.at(-1)!.get('id'), String(unseen.id));
  await get(`/images/${unseen.id}`);
  t.is(pixabay.calls.api, 2, 'one lookup for the id');

  const head = await fetch(`${proxy.url}/images/${first.id}`, { method: 'HEAD' });
  t.is(head.status, 200);
  t.is(head.headers.get('content-length'), String(pixabay.imageBytes(first.id, 'preview').length));

  const missing = await get('/images/424242');
  t.is(missing.status, 404);
  t.is(missing.text, 'no image with id 424242\n');
  assertLogClean(t, proxy, pixabay);
});

test.serial("GET /image: the first hit's preview, like the course's app; no hits is a 404 with a reason", async (t) => {
  const { pixabay, proxy, get } = await setUp(t);
  const answer = await get('/image');
  t.is(answer.status, 200);
  t.is(answer.headers.get('content-type'), 'image/png');
  t.true(answer.body.equals(pixabay.imageBytes(pixabay.hitsFor('red sky')[0]!.id, 'preview')));
  t.is(pixabay.apiRequests[0]!.get('q'), 'red sky');
  t.is(pixabay.apiRequests[0]!.get('safesearch'), 'true');

  const other = await get('/image?q=sunset');
  t.true(other.body.equals(pixabay.imageBytes(pixabay.hitsFor('sunset')[0]!.id, 'preview')));

  pixabay.setBehaviour('no-hits');
  const none = await get('/image?q=nothing+like+this');
  t.is(none.status, 404);
  t.is(none.text, 'no images found for "nothing like this"\n');
  const emptyList = JSON.parse((await get('/api/images?q=nothing+like+this')).text);
  t.like(emptyList, { total: 0, images: [] });
  assertLogClean(t, proxy, pixabay);
});

test.serial('bad requests get 400 with a reason and never reach Pixabay; a page past the results, other paths 404; other methods 405', async (t) => {
  const { pixabay, proxy, get } = await setUp(t);
  const cases: [string, string][] = [
    [`/api/images?q=${'a'.repeat(101)}`, 'q must be at most 100 characters'],
    [`/image?q=${'a'.repeat(101)}`, 'q must be at most 100 characters'],
    ['/api/images?q=a&q=b', 'q must be given once'],
    ['/api/images?page=0', 'page must be a whole number from 1 to 25'],
    ['/api/images?page=26', 'page must be a whole number from 1 to 25'],
    ['/api/images?page=two', 'page must be a whole number from 1 to 25'],
    ['/images/1000001?size=large', 'size must be preview or web'],
    ['/images/abc', 'the image id must be a positive whole number'],
    ['/images/0', 'the image id must be a positive whole number'],
    ['/images/-5', 'the image id must be a positive whole number'],
    ['/images/http:%2F%2Fexample.com%2Fx.png', 'the image id must be a positive whole number'],
  ];
  for (const [path, reason] of cases) {
    const answer = await get(path);
    t.is(answer.status, 400, path);
    t.is(answer.text, `${reason}\n`, path);
  }
  t.is((await get(`/api/images?q=${'a'.repeat(100)}`)).status, 200, '100 characters are fine');
  t.is(pixabay.calls.api, 1, 'only the valid request went upstream');

  // Any search of the stand-in finds 45 hits, three pages of 20: page 4 is valid to ask for, but past the end.
  for (const path of ['/api/images?q=sky&page=4', '/?q=sky&page=4']) {
    const pastTheEnd = await get(path);
    t.is(pastTheEnd.status, 404, path);
    t.true(pastTheEnd.text.includes('page 4 is past the last page of results'), path);
  }

  t.is((await get('/images/1000001/extra')).status, 404);
  t.is((await get('/nope')).status, 404);
  const post = await get('/api/images', { method: 'POST' });
  t.is(post.status, 405);
  t.is(post.headers.get('allow'), 'GET, HEAD');
  assertLogClean(t, proxy, pixabay);
});

test.serial('Pixabay failing: 503 with a one-line reason naming it, and recovery without a restart', async (t) => {
  const { pixabay, proxy, get } = await setUp(t);
  const cases: [Parameters<FakePixabay['setBehaviour']>[0], string][] = [
    ['server-error', 'Pixabay answered 500: [ERROR 500] Internal server error'],
    ['malformed-json', 'Pixabay answered something that is not search results'],
  ];
  for (const [behaviour, reason] of cases) {
    pixabay.setBehaviour(behaviour);
    for (const path of [`/api/images?q=${behaviour}`, `/image?q=${behaviour}`]) {
      const answer = await get(path);
      t.is(answer.status, 503, `${behaviour} ${path}`);
      t.is(answer.text, `${reason}\n`, `${behaviour} ${path}`);
    }
    const gallery = await get(`/?q=${behaviour}`);
    t.is(gallery.status, 503);
    t.true(gallery.text.includes(`role="alert">${reason}</p>`), 'the gallery says why, on the page');
  }
  t.true(proxy.output().includes('key=REDACTED'), 'the log names the upstream URL, with the key redacted');

  pixabay.setBehaviour('normal');
  t.is((await get('/api/images?q=server-error')).status, 200, 'failures are not cached');
  assertLogClean(t, proxy, pixabay);
});

test.serial('a wrong key and an unreachable Pixabay: 503 saying so, the key in neither', async (t) => {
  const pixabay = await fakePixabay(t);
  const wrongKey = `wrong+key/${randomUUID()}`;
  const wrong = await startFunction(t, 'image-proxy', { ...pixabay.env, API_KEY: wrongKey });
  const refused = await fetchChecked(t, wrongKey, `${wrong.url}/api/images`);
  t.is(refused.status, 503);
  t.is(refused.text, 'Pixabay answered 400: [ERROR 400] Invalid or missing API key\n');
  t.false(holdsKey(wrong.output(), wrongKey));

  const nowhere = await startFunction(t, 'image-proxy', { ...pixabay.env, PIXABAY_API_URL: `http://127.0.0.1:${await freePort()}/api/` });
  const down = await fetchChecked(t, pixabay.apiKey, `${nowhere.url}/api/images`);
  t.is(down.status, 503);
  t.is(down.text, 'Pixabay is unreachable (ECONNREFUSED)\n');
  t.false(holdsKey(nowhere.output(), pixabay.apiKey));
});

test.serial('429 from Pixabay: 503 with Retry-After, and no upstream request until the reset', async (t) => {
  const { pixabay, proxy, get } = await setUp(t, { windowSeconds: 60 });
  t.is((await get('/api/images?q=cached')).status, 200);
  pixabay.setBehaviour('rate-limited');
  const limited = await get('/api/images?q=new');
  t.is(limited.status, 503);
  t.regex(limited.text, /^Pixabay's rate limit is used up; try again in \d+ s\n$/);
  const retryAfter = Number(limited.headers.get('retry-after'));
  t.true(retryAfter > 30 && retryAfter <= 60, `Retry-After: ${retryAfter}`);
  const calls = pixabay.calls.api;
  t.is((await get('/api/images?q=other')).status, 503);
  t.truthy((await get('/?q=other')).headers.get('retry-after'), 'the gallery says when, too');
  t.is(pixabay.calls.api, calls, 'no upstream request while blocked');
  t.is((await get('/api/images?q=cached')).status, 200, 'a cached search is still served');
  assertLogClean(t, proxy, pixabay);
});

test.serial('after a 429 it asks again once Retry-After has passed, and recovers', async (t) => {
  const { pixabay, proxy, get } = await setUp(t, { windowSeconds: 1 });
  pixabay.setBehaviour('rate-limited');
  const limited = await get('/api/images?q=new');
  t.is(limited.status, 503);
  pixabay.setBehaviour('normal');
  await new Promise((resolve) => setTimeout(resolve, Number(limited.headers.get('retry-after')) * 1000 + 100));
  t.is((await get('/api/images?q=new')).status, 200);
  assertLogClean(t, proxy, pixabay);
});

test.serial('X-RateLimit-Remaining: 0 is honoured before Pixabay has to answer 429', async (t) => {
  const { pixabay, proxy, get } = await setUp(t, { rateLimit: 2 });
  t.is((await get('/api/images?q=one')).status, 200);
  t.is((await get('/api/images?q=two')).status, 200); // Remaining: 0 from here
  const blocked = await get('/api/images?q=three');
  t.is(blocked.status, 503);
  t.truthy(blocked.headers.get('retry-after'));
  t.is(pixabay.calls.api, 2, 'the third search never went upstream');
  t.is((await get('/api/images?q=one')).status, 200);
  assertLogClean(t, proxy, pixabay);
});

test.serial('concurrent requests for one uncached query share one upstream request', async (t) => {
  const { pixabay, proxy, get } = await setUp(t);
  pixabay.setDelay(300);
  const answers = await Promise.all(['sunset', 'Sunset', ' sunset ', 'SUNSET', 'sunset'].map((q) => get(`/api/images?q=${encodeURIComponent(q)}`)));
  t.deepEqual(answers.map((answer) => answer.status), [200, 200, 200, 200, 200]);
  t.is(pixabay.calls.api, 1);
  assertLogClean(t, proxy, pixabay);
});

test.serial('Pixabay slower than 5 s: 504 with a reason, never a hang (search and image)', async (t) => {
  const { pixabay, proxy, get } = await setUp(t);
  const [first] = JSON.parse((await get('/api/images')).text).images; // cached, so the image request needs no search
  pixabay.setBehaviour('slow');
  const started = Date.now();
  const [search, image] = await Promise.all([get('/api/images?q=slow'), get(`/images/${first.id}`)]);
  const took = Date.now() - started;
  t.is(search.status, 504);
  t.is(search.text, 'Pixabay did not answer within 5000 ms\n');
  t.is(image.status, 504);
  t.is(image.text, "Pixabay's image server did not answer within 5000 ms\n");
  t.true(took >= 4900 && took < 12_000, `took ${took} ms`);
  assertLogClean(t, proxy, pixabay);
});

test.serial('an upstream image is checked before a byte is passed on; no host outside the allow-list is ever contacted', async (t) => {
  const { pixabay, proxy, get } = await setUp(t);
  const [first] = JSON.parse((await get('/api/images')).text).images;
  const cases: [Parameters<FakePixabay['setBehaviour']>[0], number, RegExp][] = [
    ['not-an-image', 503, /^Pixabay's image server answered text\/html instead of an image\n$/],
    ['oversize-image', 503, /^the image is larger than 10 MB\n$/],
    ['oversize-image-unsized', 503, /^the image is larger than 10 MB\n$/],
    ['server-error', 503, /^Pixabay's image server answered 500\n$/],
    ['redirect-elsewhere', 503, /^Pixabay redirected the image to a URL on a host that is not allowed \(127\.0\.0\.1:\d+\); see PIXABAY_IMAGE_HOSTS\n$/],
  ];
  for (const [behaviour, status, reason] of cases) {
    pixabay.setBehaviour(behaviour);
    for (const path of [`/images/${first.id}?size=preview`, `/images/${first.id}?size=web`, '/image']) {
      const answer = await get(path);
      t.is(answer.status, status, `${behaviour} ${path}`);
      t.regex(answer.text, reason, `${behaviour} ${path}`);
    }
  }

  pixabay.setBehaviour('image-url-elsewhere');
  const foreign = await get('/image?q=foreign');
  t.is(foreign.status, 503);
  t.regex(foreign.text, /^Pixabay gave an image URL on a host that is not allowed \(127\.0\.0\.1:\d+\)/);

  // Nothing a client sends becomes a URL to fetch.
  pixabay.setBehaviour('normal');
  const elsewhere = /\((127\.0\.0\.1:\d+)\)/.exec(foreign.text)![1];
  for (const path of [`/image?q=http://${elsewhere}/photo.png`, `/images/${first.id}?url=http://${elsewhere}/photo.png`, `/api/images?q=http://${elsewhere}/`]) {
    t.is((await get(path)).status, 200, path);
  }
  t.is(pixabay.calls.elsewhere, 0, 'the other server was never contacted');
  assertLogClean(t, proxy, pixabay);
});

test.serial('GET /: the gallery, escaped and self-contained, with its own CSP', async (t) => {
  const { pixabay, proxy, get } = await setUp(t);
  const answer = await get('/?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E');
  t.is(answer.status, 200);
  t.regex(answer.headers.get('content-type')!, /^text\/html/);
  t.regex(answer.headers.get('content-security-policy')!, /^default-src 'none'; img-src 'self'/);
  t.false(answer.text.includes('<script'), 'the query is escaped');
  t.true(answer.text.includes('value="&#60;script&#62;alert(1)&#60;/script&#62;"'));
  t.false(answer.text.includes('Zoë & <Co>'), "the author's name is escaped");
  t.true(answer.text.includes('Zoë &#38; &#60;Co&#62; &#34;Light&#34;'));
  t.true(answer.text.includes('Images from <a href="https://pixabay.com/">Pixabay</a>'));
  for (const hit of pixabay.hitsFor('<script>alert(1)</script>').slice(0, 20)) {
    t.true(answer.text.includes(`<a class="photo" href="${hit.pageURL}"`), hit.pageURL);
    t.true(answer.text.includes(`<img src="/images/${hit.id}?size=web"`));
  }

  const tooLong = await get(`/?q=${'a'.repeat(101)}`);
  t.is(tooLong.status, 400);
  t.true(tooLong.text.includes('role="alert">q must be at most 100 characters</p>'));
  assertLogClean(t, proxy, pixabay);
});

test.serial('without API_KEY it starts, says so, and answers every route 503 "API_KEY is not set"', async (t) => {
  const pixabay = await fakePixabay(t);
  const proxy = await startFunction(t, 'image-proxy', { ...pixabay.env, API_KEY: '' });
  for (const path of ['/', '/api/images', '/image', '/images/1000001', '/healthz', '/nope']) {
    const answer = await fetch(`${proxy.url}${path}`);
    t.is(answer.status, 503, path);
    t.is(await answer.text(), 'API_KEY is not set\n', path);
  }
  t.is(pixabay.calls.api + pixabay.calls.images, 0);
  t.true(proxy.output().includes('API_KEY is not set'));
});
