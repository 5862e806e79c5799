import { createHash } from 'node:crypto';
import test from 'ava';
import { readImageProxyConfig } from '../../functions/image-proxy/config';
import { GALLERY_CSP, escapeHtml, renderGallery } from '../../functions/image-proxy/gallery';
import { LruCache } from '../../functions/image-proxy/lru';
import { BadRequest, parseImageId, readImageSize, readPage, readSearchQuery } from '../../functions/image-proxy/params';
import { normaliseQuery, parseSearchResult, redactor, type Hit } from '../../functions/image-proxy/pixabay';
import { summarise } from '../../functions/image-proxy/summary';
import { ConfigError } from '../../functions/shared/config';

const hit: Hit = {
  id: 195893,
  pageURL: 'https://pixabay.com/en/blossom-bloom-flower-195893/',
  tags: 'blossom, bloom, flower',
  user: 'Josch13',
  userId: 48777,
  previewURL: 'https://cdn.pixabay.com/photo/2013/10/15/09/12/flower-195893_150.jpg',
  previewWidth: 150,
  previewHeight: 84,
  webformatURL: 'https://pixabay.com/get/35bbf209e13e39d2_640.jpg',
  webformatWidth: 640,
  webformatHeight: 360,
  imageWidth: 4000,
  imageHeight: 2250,
};

test('config: Pixabay by default, the API URL always ending in /, hosts checked', (t) => {
  const defaults = readImageProxyConfig({});
  t.is(defaults.apiKey, undefined);
  t.is(defaults.apiUrl, 'https://pixabay.com/api/');
  t.is(defaults.defaultQuery, 'red sky');
  t.deepEqual([...defaults.imageHosts], ['cdn.pixabay.com', 'pixabay.com']);

  const local = readImageProxyConfig({ API_KEY: ' k ', PIXABAY_API_URL: 'http://127.0.0.1:9000/api', PIXABAY_IMAGE_HOSTS: '127.0.0.1:9000, CDN.example.com' });
  t.is(local.apiKey, 'k');
  t.is(local.apiUrl, 'http://127.0.0.1:9000/api/');
  t.deepEqual([...local.imageHosts], ['127.0.0.1:9000', 'cdn.example.com']);
  t.is(readImageProxyConfig({ API_KEY: '  ' }).apiKey, undefined, 'a blank key is no key');

  for (const bad of ['https://cdn.pixabay.com', 'cdn.pixabay.com/photo', 'a b', ' , ']) {
    t.throws(() => readImageProxyConfig({ PIXABAY_IMAGE_HOSTS: bad }), { instanceOf: ConfigError, message: /^PIXABAY_IMAGE_HOSTS must/ }, bad);
  }
  t.throws(() => readImageProxyConfig({ PIXABAY_API_URL: 'ftp://pixabay.com/api/' }), { message: /^PIXABAY_API_URL must be an http\(s\) URL/ });
});

test('config: demo images only when DEMO_IMAGES says so, and only from a Pixabay on this machine', (t) => {
  t.false(readImageProxyConfig({}).demo, 'not a demo by default');
  t.false(readImageProxyConfig({ DEMO_IMAGES: 'false' }).demo);
  for (const url of ['http://127.0.0.1:9000/api/', 'http://localhost:9000/api/', 'http://[::1]:9000/api/']) {
    t.true(readImageProxyConfig({ DEMO_IMAGES: 'true', PIXABAY_API_URL: url }).demo, url);
  }
  t.throws(() => readImageProxyConfig({ DEMO_IMAGES: 'true' }), {
    instanceOf: ConfigError,
    message: "DEMO_IMAGES is for npm run demo's stand-in on this machine, but PIXABAY_API_URL is https://pixabay.com/api/",
  });
  t.throws(() => readImageProxyConfig({ DEMO_IMAGES: 'true', PIXABAY_API_URL: 'http://127.0.0.1.example.com/api/' }), { message: /^DEMO_IMAGES is for npm run demo/ });
  t.throws(() => readImageProxyConfig({ DEMO_IMAGES: 'yes' }), { instanceOf: ConfigError, message: 'DEMO_IMAGES must be true or false, got "yes"' });
});

test('request parameters: defaults, limits and one-line reasons', (t) => {
  t.is(readSearchQuery({}, 'red sky'), 'red sky');
  t.is(readSearchQuery({ q: '   ' }, 'red sky'), 'red sky');
  t.is(readSearchQuery({ q: ' sunset ' }, 'red sky'), 'sunset');
  t.is(readSearchQuery({ q: 'é'.repeat(100) }, 'x'), 'é'.repeat(100), '100 characters, however many bytes');
  t.throws(() => readSearchQuery({ q: 'a'.repeat(101) }, 'x'), { instanceOf: BadRequest, message: 'q must be at most 100 characters' });
  t.throws(() => readSearchQuery({ q: ['a', 'b'] }, 'x'), { instanceOf: BadRequest, message: 'q must be given once' });

  t.is(readPage({}), 1);
  t.is(readPage({ page: '25' }), 25);
  for (const bad of ['0', '26', '-1', '1.5', 'two', '0001']) {
    t.throws(() => readPage({ page: bad }), { instanceOf: BadRequest, message: 'page must be a whole number from 1 to 25' }, bad);
  }

  t.is(readImageSize({}), 'preview');
  t.is(readImageSize({ size: 'web' }), 'web');
  t.throws(() => readImageSize({ size: 'large' }), { instanceOf: BadRequest, message: 'size must be preview or web' });

  t.is(parseImageId('195893'), 195893);
  for (const bad of ['0', '-1', '1e3', '01', 'abc', '', 'http:%2F%2Fevil', '9'.repeat(16)]) {
    t.throws(() => parseImageId(bad), { instanceOf: BadRequest }, bad);
  }
});

test('queries that differ only in case and spacing are one search', (t) => {
  t.is(normaliseQuery('  Red \t SKY '), 'red sky');
  t.is(normaliseQuery('cafe\u0301'), normaliseQuery('café'));
});

test('the redactor hides the key raw and URL-encoded', (t) => {
  const key = 'k+y/1=2 3';
  const redact = redactor(key);
  const url = new URL('https://pixabay.com/api/');
  url.search = new URLSearchParams({ key, q: 'x' }).toString();
  t.is(redact(url.href), 'https://pixabay.com/api/?key=REDACTED&q=x');
  t.is(redact(`failed: ${key} ${encodeURIComponent(key)}`), 'failed: REDACTED REDACTED');
});

test('the LRU cache keeps the most recently used entries and marks old ones stale', (t) => {
  let now = 0;
  const cache = new LruCache<string, number>(2, 1000, () => now);
  cache.set('a', 1);
  cache.set('b', 2);
  t.deepEqual(cache.get('a'), { value: 1, fresh: true }); // a is now the most recent
  cache.set('c', 3);
  t.is(cache.get('b'), undefined, 'b was least recently used');
  t.is(cache.size, 2);
  now = 1000;
  t.deepEqual(cache.get('a'), { value: 1, fresh: false });
  cache.set('a', 4);
  t.deepEqual(cache.get('a'), { value: 4, fresh: true });
});

test('search results are read by field name, unknown keys ignored, broken hits left out', (t) => {
  const body = JSON.stringify({
    totalHits: 2,
    newKey: { anything: true },
    hits: [
      { ...rawHit(), likes: 5 },
      { id: 'not a number', pageURL: 'x', previewURL: 'x', webformatURL: 'x' },
      { id: 7, pageURL: 'https://pixabay.com/p-7/' }, // no image URLs
    ],
    total: 3,
  });
  t.deepEqual(parseSearchResult(body), { total: 3, totalHits: 2, hits: [hit] });
  t.deepEqual(parseSearchResult('{"total":0,"totalHits":0,"hits":[]}'), { total: 0, totalHits: 0, hits: [] });
  for (const bad of ['', '{"total":1', '[]', 'null', '{"total":1,"totalHits":1}', '{"total":-1,"totalHits":0,"hits":[]}']) {
    t.is(parseSearchResult(bad), undefined, bad);
  }
});

test('a hit is shown with our URLs for its bytes, never Pixabay\'s', (t) => {
  const summary = summarise(hit);
  t.deepEqual(summary, {
    id: 195893,
    tags: ['blossom', 'bloom', 'flower'],
    pageUrl: 'https://pixabay.com/en/blossom-bloom-flower-195893/',
    author: 'Josch13',
    authorUrl: 'https://pixabay.com/users/Josch13-48777/',
    width: 4000,
    height: 2250,
    preview: { url: '/images/195893?size=preview', width: 150, height: 84 },
    web: { url: '/images/195893?size=web', width: 640, height: 360 },
  });
  t.is(summarise({ ...hit, pageURL: 'javascript:alert(1)' }).pageUrl, null, 'only http(s) links');
});

test('the gallery escapes everything that came from outside', (t) => {
  const evil = '"><script>alert(1)</script>';
  const page = renderGallery({
    query: evil,
    page: 1,
    totalHits: 1,
    images: [summarise({ ...hit, user: `<b>${evil}`, tags: `sky, ${evil}`, pageURL: `https://pixabay.com/?a="${evil}` })],
  });
  t.false(page.includes('<script'), 'no script element');
  t.false(page.includes('<b>'));
  t.true(page.includes(`value="${escapeHtml(evil)}"`));
  t.true(page.includes(`<h1>${escapeHtml(evil)}</h1>`));
  t.true(page.includes('href="https://pixabay.com/?a=%22%22%3E%3Cscript%3Ealert(1)%3C/script%3E"'), 'the URL parser already encoded it');
  t.is(escapeHtml(`<a href='x'>&"`), '&#60;a href=&#39;x&#39;&#62;&#38;&#34;');
});

test('the gallery shows results, pages, an empty search and an error', (t) => {
  const images = [summarise(hit)];
  const first = renderGallery({ query: 'red sky', page: 1, totalHits: 45, images });
  t.true(first.includes('<p class="credit">Images from <a href="https://pixabay.com/">Pixabay</a></p>'));
  t.true(first.includes('45 images · page 1 of 3'));
  t.true(first.includes('<a class="photo" href="https://pixabay.com/en/blossom-bloom-flower-195893/"'));
  t.true(first.includes('<img src="/images/195893?size=web" width="640" height="360" alt="blossom, bloom, flower"'));
  t.true(first.includes('<a class="author" href="https://pixabay.com/users/Josch13-48777/">Josch13</a>'));
  t.true(first.includes('<a rel="next" href="/?q=red%20sky&#38;page=2">'));
  t.false(first.includes('rel="prev"'));
  const last = renderGallery({ query: 'red sky', page: 3, totalHits: 45, images });
  t.true(last.includes('rel="prev"') && !last.includes('rel="next"'));

  t.true(renderGallery({ query: 'x', page: 1, totalHits: 0, images: [] }).includes('No images found'));
  const failed = renderGallery({ query: 'x', page: 1, totalHits: 0, images: [], error: 'Pixabay answered 500' });
  t.true(failed.includes('<p class="notice error" role="alert">Pixabay answered 500</p>'));
  t.true(failed.includes('Images from'), 'the credit and the form stay');
});

test('demo images: a banner says so and how to use a real key, escaped like the rest; never without the switch', (t) => {
  const images = [summarise(hit)];
  for (const view of [{ query: 'red sky', page: 1, totalHits: 45, images }, { query: 'x', page: 1, totalHits: 0, images: [], error: 'Pixabay answered 500' }]) {
    const demo = renderGallery({ ...view, demo: true });
    t.regex(demo, /<p class="notice demo" role="note"><strong>Demo images\.<\/strong> <code>npm run demo<\/code> made these up with a stand-in for Pixabay/);
    t.true(demo.includes('run <code>API_KEY=&#60;your key&#62; npm start</code>.</p>'), 'the command, with <your key> escaped');
    t.is(demo.indexOf('class="notice demo"'), demo.lastIndexOf('class="notice demo"'), 'one banner');
    t.true(demo.includes('<p class="credit">Demo images, not Pixabay\'s</p>'), 'and the credit does not claim Pixabay');
    t.false(demo.includes('Images from'));
    t.false(renderGallery(view).includes('Demo images'), 'no banner without the switch');
    t.false(renderGallery({ ...view, demo: false }).includes('notice demo'));
  }
});

test('the CSP allows exactly the inline style the page carries', (t) => {
  const page = renderGallery({ query: 'x', page: 1, totalHits: 0, images: [] });
  const style = /<style>([\s\S]*)<\/style>/.exec(page)![1]!;
  t.true(GALLERY_CSP.includes(`'sha256-${createHash('sha256').update(style).digest('base64')}'`));
  t.regex(GALLERY_CSP, /default-src 'none'/);
  t.false(/<script|<link|@import|url\(/.test(page), 'nothing external and no script');
});

function rawHit() {
  return {
    id: 195893,
    pageURL: hit.pageURL,
    type: 'photo',
    tags: hit.tags,
    previewURL: hit.previewURL,
    previewWidth: 150,
    previewHeight: 84,
    webformatURL: hit.webformatURL,
    webformatWidth: 640,
    webformatHeight: 360,
    largeImageURL: 'https://pixabay.com/get/ed6a99fd0a76647_1280.jpg',
    imageWidth: 4000,
    imageHeight: 2250,
    imageSize: 4731420,
    views: 7671,
    downloads: 6439,
    comments: 2,
    user_id: 48777,
    user: 'Josch13',
    userImageURL: 'https://cdn.pixabay.com/user/2013/11/05/02-10-23-764_250x250.jpg',
  };
}
