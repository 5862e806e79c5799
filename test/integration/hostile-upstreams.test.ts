/**
 * Hostile upstreams, the fast part (every case well under a second): redirects of every kind and
 * broken HTTP framing, from the search API and from the image server. Nothing off the allow-list is
 * ever contacted (a recording host must see zero connections), no answer is passed on cut short or
 * padded, and the key is in no answer and no log line. Floods and trickles are in test/chaos/.
 */
import test from 'ava';
import { hostileSetUp } from '../helpers/hostile-upstream';
import type { HostileAnswer } from '../helpers/pixabay';

type Framing = Extract<HostileAnswer, { kind: 'framing' }>;

test('the search API: a redirect is never followed, wherever it points, and the key is echoed nowhere', async (t) => {
  const { pixabay, forbidden, ask, asked, keyLeaks } = await hostileSetUp(t);
  const key = encodeURIComponent(pixabay.apiKey);
  const elsewhere = `127.0.0.1:${forbidden.port}`;
  const redirects: [string, HostileAnswer][] = [
    ['to another host, the key in the query', { kind: 'redirects', count: 1, to: `http://${elsewhere}/api/?key=${key}` }],
    ['to another host, the key as userinfo', { kind: 'redirects', count: 1, to: `http://${key}@${elsewhere}/api/` }],
    ['to localhost', { kind: 'redirects', count: 1, to: `http://localhost:${forbidden.port}/api/` }],
    ['to [::1]', { kind: 'redirects', count: 1, to: `http://[::1]:${forbidden.port}/api/` }],
    ['within the API host', { kind: 'redirects', count: 1 }],
    ['a chain of 3 within the API host', { kind: 'redirects', count: 3 }],
    ['a chain that leaves at the 2nd hop', { kind: 'redirects', count: 2, to: `http://${elsewhere}/` }],
    ['a loop', { kind: 'redirect-loop' }],
    ['to file:', { kind: 'redirects', count: 1, to: 'file:///etc/passwd' }],
    ['to javascript:', { kind: 'redirects', count: 1, to: 'javascript:alert(document.cookie)' }],
    ['to data:', { kind: 'redirects', count: 1, to: 'data:application/json,{"total":1,"totalHits":1,"hits":[]}' }],
  ];
  for (const [i, [name, answer]] of redirects.entries()) {
    pixabay.setHostile('api', answer);
    const before = pixabay.calls.api;
    for (const path of [`/api/images?q=redirect+${i}`, `/image?q=redirect+${i}`, `/?q=redirect+${i}`]) {
      const got = await ask(path);
      t.is(got.status, 503, `${name}: ${path}`);
      t.true(got.text.includes('Pixabay answered 302, a redirect, which is not followed'), `${name}: ${path}: ${got.text}`);
    }
    t.is(pixabay.calls.api - before, 3, `${name}: one upstream request per search, no hop taken`);
  }
  pixabay.setHostile('api', undefined);
  t.is((await ask('/api/images?q=redirect+0')).status, 200, 'recovers as soon as Pixabay does');

  t.is(forbidden.contacts(), 0, 'the host off the allow-list was never contacted');
  t.is(keyLeaks(), 0, 'the key is in no answer and no log line');
  t.log(`API redirects: ${redirects.length} kinds, ${asked()} requests, forbidden contacts ${forbidden.contacts()}, key leaks ${keyLeaks()}`);
});

test('images: at most 3 redirects, each to an http(s) URL without credentials on an allowed host', async (t) => {
  const { pixabay, forbidden, imageId, ask, asked, keyLeaks } = await hostileSetUp(t);
  const preview = `/images/${imageId}?size=preview`;
  const key = encodeURIComponent(pixabay.apiKey);
  const allowed = pixabay.imageHost;
  const port = forbidden.port;
  const elsewhere = `http://127.0.0.1:${port}/photo.png?key=${key}`;

  pixabay.setHostile('images', { kind: 'redirects', count: 3 });
  const atTheLimit = await ask(preview);
  t.is(atTheLimit.status, 200, 'three redirects within the allow-list are followed');
  t.true(atTheLimit.body.equals(pixabay.imageBytes(imageId, 'preview')));

  const tooMany = /^Pixabay's image server redirected more than 3 times\n$/;
  const offList = new RegExp(`^Pixabay redirected the image to a URL on a host that is not allowed \\(.*:${port}\\); see PIXABAY_IMAGE_HOSTS\\n$`);
  const notHttp = /^Pixabay redirected the image to a URL that is not http\(s\)\n$/;
  const credentials = /^Pixabay redirected the image to a URL with credentials in it\n$/;
  // [what, the answer, requests the image server should see, the reason our client gets]
  const refusals: [string, HostileAnswer, number, RegExp][] = [
    ['4 redirects within the allow-list', { kind: 'redirects', count: 4 }, 4, tooMany],
    ['a redirect loop', { kind: 'redirect-loop' }, 4, tooMany],
    ['off the allow-list at the 2nd hop', { kind: 'redirects', count: 2, to: elsewhere }, 2, offList],
    ['off the allow-list at the 3rd hop', { kind: 'redirects', count: 3, to: elsewhere }, 3, offList],
    ['off the allow-list at the 5th hop', { kind: 'redirects', count: 5, to: elsewhere }, 4, tooMany],
    ...['file:///etc/passwd', 'data:image/png;base64,iVBORw0KGgo=', 'javascript:alert(1)', `ftp://127.0.0.1:${port}/photo.png`, `gopher://127.0.0.1:${port}/_GET%20/`, `ws://127.0.0.1:${port}/`].map(
      (to, i): [string, HostileAnswer, number, RegExp] => [`to ${to}`, { kind: 'redirects', count: 1 + (i % 2), to }, 1 + (i % 2), notHttp],
    ),
    ['to an allowed host with a user and password', { kind: 'redirects', count: 1, to: `http://user:pass@${allowed}/cdn/photo/${imageId}_150.png` }, 1, credentials],
    ['to an allowed host with the key as the user', { kind: 'redirects', count: 1, to: `http://${key}@${allowed}/cdn/photo/${imageId}_150.png` }, 1, credentials],
    ['to another host behind an allowed one as userinfo', { kind: 'redirects', count: 1, to: `http://${allowed}@127.0.0.1:${port}/photo.png` }, 1, credentials],
    // The ways to write "this machine" that URL parsing and the resolver accept; none is on the list.
    ...['localhost', 'LOCALHOST', 'localhost.', '%6c%6fcalhost', '127.1', '127.0.0.1.', '2130706433', '0x7f000001', '0177.0.0.1', '0', '[::1]', '[::ffff:127.0.0.1]', '[::]'].map(
      (host): [string, HostileAnswer, number, RegExp] => [`to ${host}`, { kind: 'redirects', count: 1, to: `http://${host}:${port}/photo.png` }, 1, offList],
    ),
    ['to a scheme-relative URL elsewhere', { kind: 'redirects', count: 1, to: `//127.0.0.1:${port}/photo.png` }, 1, offList],
    ['to a backslashed URL elsewhere', { kind: 'redirects', count: 1, to: `\\\\127.0.0.1:${port}\\photo.png` }, 1, offList],
  ];
  for (const [name, answer, requests, reason] of refusals) {
    pixabay.setHostile('images', answer);
    const before = pixabay.calls.images;
    const got = await ask(preview);
    t.is(got.status, 503, name);
    t.regex(got.text, reason, name);
    t.is(pixabay.calls.images - before, requests, `${name}: the image server saw ${requests} request(s)`);
    t.is(forbidden.contacts(), 0, `${name}: the forbidden host was not contacted`);
  }
  pixabay.setHostile('images', undefined);
  t.is((await ask(preview)).status, 200, 'recovers as soon as the image server does');

  t.is(keyLeaks(), 0, 'the key is in no answer and no log line');
  t.log(`image redirects: ${refusals.length + 1} kinds, ${asked()} requests, forbidden contacts ${forbidden.contacts()}, key leaks ${keyLeaks()}`);
});

test('wrong framing from the API or the image server: a clean 503 before any byte, never a 200 cut short', async (t) => {
  const { pixabay, imageId, ask, asked, keyLeaks } = await hostileSetUp(t);
  const framings: [string, Framing, 'whole' | { api: RegExp; images: RegExp }][] = [
    // Two valid framings first: the checks below refuse what is wrong, not what is unusual.
    ['no content-length, the body ending at close', { kind: 'framing', contentLength: () => [] }, 'whole'],
    ['chunked', { kind: 'framing', contentLength: () => [], chunked: true }, 'whole'],
    ['1000 bytes more declared than sent, then closed', { kind: 'framing', contentLength: (n) => [String(n + 1000)] }, { api: /^Pixabay broke off its answer/, images: /^Pixabay's image server broke off its answer/ }],
    ['half of what is sent declared', { kind: 'framing', contentLength: (n) => [String(n >> 1)] }, { api: /^Pixabay answered something that is not search results/, images: /^Pixabay's image server sent an image that is cut short or not a PNG, JPEG, GIF or WebP/ }],
    ...[['a word', () => ['twelve']], ['a negative number', () => ['-1']], ['a number and junk', (n: number) => [`${n}abc`]], ['a list', (n: number) => [`${n}, ${n}`]], ['two that disagree', (n: number) => [String(n), String(n + 1)]], ['two that agree', (n: number) => [String(n), String(n)]]].map(
      ([what, contentLength]): [string, Framing, { api: RegExp; images: RegExp }] => [
        `content-length: ${what as string}`,
        { kind: 'framing', contentLength: contentLength as Framing['contentLength'] },
        { api: /^Pixabay answered something that is not valid HTTP \(HPE_/, images: /^Pixabay's image server answered something that is not valid HTTP \(HPE_/ },
      ],
    ),
    ['content-length and chunked both', { kind: 'framing', contentLength: (n) => [String(n)], chunked: true }, { api: /not valid HTTP \(HPE_/, images: /not valid HTTP \(HPE_/ }],
  ];
  let cutShort = 0;
  for (const [i, [name, framing, expected]] of framings.entries()) {
    for (const route of ['api', 'images'] as const) {
      pixabay.setHostile(route, framing);
      const got = await ask(route === 'api' ? `/api/images?q=framing+${i}` : `/images/${imageId}?size=preview`);
      pixabay.setHostile(route, undefined);
      if (got.status === 200 && (got.broken || got.body.length !== Number(got.headers.get('content-length')))) cutShort++;
      t.false(got.broken, `${route}, ${name}: the answer arrived whole`);
      if (expected === 'whole') {
        t.is(got.status, 200, `${route}, ${name}`);
        if (route === 'api') t.is(JSON.parse(got.text).images.length, 20);
        else t.true(got.body.equals(pixabay.imageBytes(imageId, 'preview')), `${route}, ${name}: the same bytes`);
      } else {
        t.is(got.status, 503, `${route}, ${name}`);
        t.regex(got.text, expected[route], `${route}, ${name}`);
      }
    }
  }
  t.is(cutShort, 0, 'no 200 was cut short or longer than it said');
  t.is(keyLeaks(), 0, 'the key is in no answer and no log line');
  t.log(`framing: ${framings.length} kinds x 2 routes, ${asked()} requests, 200s cut short ${cutShort}, key leaks ${keyLeaks()}`);
});
