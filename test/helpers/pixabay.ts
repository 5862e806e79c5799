/**
 * A stand-in for Pixabay (no machine here reaches the real one): real HTTP on a free port, answering
 * the search API as Pixabay documents it (rate-limit headers included) and serving real
 * PNGs from the same server. It can be told to misbehave, and it counts what it is asked.
 * `startFakePixabay()` works anywhere (the benchmark uses it); `fakePixabay(t)` also stops it after the test.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ExecutionContext } from 'ava';
import { sunsetPng } from './png';

export type PixabayBehaviour =
  /** Search results and images, as Pixabay answers them. */
  | 'normal'
  /** The API: `"hits": []`. */
  | 'no-hits'
  /** The API and the images: nothing for 6 s, longer than the proxy waits. */
  | 'slow'
  /** The API: 429 with `X-RateLimit-Remaining: 0`, as past Pixabay's limit. */
  | 'rate-limited'
  /** The API and the images: 500 with a plain-text reason. */
  | 'server-error'
  /** The API: 200 with JSON cut off in the middle. */
  | 'malformed-json'
  /** The API: hits whose image URLs point at the other server, outside the allowed hosts. */
  | 'image-url-elsewhere'
  /** The images: 200 text/html. */
  | 'not-an-image'
  /** The images: 11 MB of image/png with its content-length. */
  | 'oversize-image'
  /** The images: 11 MB of image/png, chunked, without a content-length. */
  | 'oversize-image-unsized'
  /** The images: a 302 to the other server, outside the allowed hosts. */
  | 'redirect-elsewhere';

/** A hit as Pixabay sends it (the fields the documentation shows). */
export interface PixabayHit {
  id: number;
  pageURL: string;
  type: string;
  tags: string;
  previewURL: string;
  previewWidth: number;
  previewHeight: number;
  webformatURL: string;
  webformatWidth: number;
  webformatHeight: number;
  largeImageURL: string;
  imageWidth: number;
  imageHeight: number;
  imageSize: number;
  views: number;
  downloads: number;
  likes: number;
  comments: number;
  user_id: number;
  user: string;
  userImageURL: string;
}

export interface FakePixabay {
  /** For `PIXABAY_API_URL`. */
  url: string;
  /** For `PIXABAY_IMAGE_HOSTS`: where the images are served (`127.0.0.1:port`). */
  imageHost: string;
  /** The key it accepts; any other gets Pixabay's 400. */
  apiKey: string;
  /** What image-proxy needs to use this stand-in. */
  env: { API_KEY: string; PIXABAY_API_URL: string; PIXABAY_IMAGE_HOSTS: string };
  /** Requests so far: to the search API, for images, and to the other server (which nobody should reach). */
  calls: { api: number; images: number; elsewhere: number };
  /** The query parameters of every API request, in order (the key included). */
  apiRequests: URLSearchParams[];
  setBehaviour(behaviour: PixabayBehaviour): void;
  /** Every API answer waits this long first (0 by default): a Pixabay that is far away but within the deadline. */
  setDelay(ms: number): void;
  /** The hits a search for `q` answers, all pages: the order depends on `q`, the set does not. */
  hitsFor(q: string): PixabayHit[];
  /** The bytes behind a hit's previewURL (`preview`) or webformatURL (`web`). */
  imageBytes(id: number, size: 'preview' | 'web'): Buffer;
  close(): Promise<void>;
}

export interface FakePixabayOptions {
  apiKey?: string;
  /** Requests per window before 429 (Pixabay: 100 per 60 s). */
  rateLimit?: number;
  windowSeconds?: number;
}

/** How many images any search finds: three pages of Pixabay's default 20. */
export const CATALOGUE_SIZE = 45;
const SLOW_MS = 6000;
const OVERSIZE_BYTES = 11 * 1024 * 1024;
const SIZES = { preview: [150, 100], web: [640, 427] } as const;
// Real-looking names, one with characters that must be escaped wherever it is shown.
const AUTHORS = ['Josch13', 'Ylanite', 'Zoë & <Co> "Light"', 'skeeze', 'Pexels', 'Free-Photos', 'jplenio', 'Hans'];
const TAGS = ['sky', 'sunset', 'clouds', 'dusk', 'evening', 'red', 'horizon', 'nature', 'landscape', 'hills'];

export async function startFakePixabay(options: FakePixabayOptions = {}): Promise<FakePixabay> {
  // Made at run time in Pixabay's shape, so the tree holds nothing that looks like a real key.
  const apiKey = options.apiKey ?? `${randomInt(10_000_000, 100_000_000)}-${randomBytes(13).toString('hex').slice(0, 25)}`;
  const rateLimit = options.rateLimit ?? 100;
  const windowMs = (options.windowSeconds ?? 60) * 1000;
  let behaviour: PixabayBehaviour = 'normal';
  let delayMs = 0;
  const calls = { api: 0, images: 0, elsewhere: 0 };
  const apiRequests: URLSearchParams[] = [];
  const timers = new Set<NodeJS.Timeout>();
  let window = { startedAt: Date.now(), used: 0 };

  const elsewhere = await listen((_req, res) => {
    calls.elsewhere++;
    send(res, 200, { 'content-type': 'image/png' }, sunsetPng(150, 100, 666));
  });
  const server = await listen((req, res) => {
    const url = new URL(req.url ?? '/', origin);
    if (url.pathname === '/api/') {
      calls.api++;
      apiRequests.push(url.searchParams);
      return delayMs ? later(() => answerApi(url.searchParams, res), delayMs) : answerApi(url.searchParams, res);
    }
    if (/^\/(cdn|get)\//.test(url.pathname)) return answerImage(url.pathname, res);
    send(res, 404, { 'content-type': 'text/plain' }, 'not found');
  });
  const origin = `http://127.0.0.1:${server.port}`;
  const elsewhereOrigin = `http://127.0.0.1:${elsewhere.port}`;

  const catalogue: PixabayHit[] = Array.from({ length: CATALOGUE_SIZE }, (_, i) => {
    const id = 1_000_001 + i * 7;
    const tags = [TAGS[i % TAGS.length], TAGS[(i * 3 + 1) % TAGS.length], TAGS[(i * 7 + 2) % TAGS.length]];
    return {
      id,
      pageURL: `https://pixabay.com/photos/${tags.join('-')}-${id}/`,
      type: 'photo',
      tags: [...new Set(tags)].join(', '),
      previewURL: `${origin}/cdn/photo/${id}_150.png`,
      previewWidth: SIZES.preview[0],
      previewHeight: SIZES.preview[1],
      webformatURL: `${origin}/get/${id}_640.png`,
      webformatWidth: SIZES.web[0],
      webformatHeight: SIZES.web[1],
      largeImageURL: `${origin}/get/${id}_1280.png`,
      imageWidth: 4000,
      imageHeight: 2667,
      imageSize: 2_731_420 + i,
      views: 7671 + i,
      downloads: 6439 + i,
      likes: 5 + i,
      comments: i % 4,
      user_id: 48_777 + i,
      user: AUTHORS[i % AUTHORS.length]!,
      userImageURL: `${origin}/cdn/user/${48_777 + i}_250x250.png`,
    };
  });

  function hitsFor(q: string): PixabayHit[] {
    const turn = [...q].reduce((sum, char) => sum + char.codePointAt(0)!, 0) % CATALOGUE_SIZE;
    return [...catalogue.slice(turn), ...catalogue.slice(0, turn)];
  }

  function answerApi(params: URLSearchParams, res: ServerResponse): void {
    if (Date.now() - window.startedAt >= windowMs) window = { startedAt: Date.now(), used: 0 };
    window.used++;
    const limited = behaviour === 'rate-limited' || window.used > rateLimit;
    const rateHeaders = {
      'X-RateLimit-Limit': String(rateLimit),
      'X-RateLimit-Remaining': String(limited ? 0 : rateLimit - window.used),
      'X-RateLimit-Reset': String(Math.ceil((window.startedAt + windowMs - Date.now()) / 1000)),
    };
    const text = (status: number, body: string) => send(res, status, { ...rateHeaders, 'content-type': 'text/plain' }, body);
    const json = (body: string) => send(res, 200, { ...rateHeaders, 'content-type': 'application/json' }, body);

    if (params.get('key') !== apiKey) return text(400, '[ERROR 400] Invalid or missing API key');
    if (limited) return text(429, '[ERROR 429] API rate limit exceeded');
    if (behaviour === 'slow') return later(() => json(JSON.stringify({ total: 0, totalHits: 0, hits: [] })));
    if (behaviour === 'server-error') return text(500, '[ERROR 500] Internal server error');
    if (behaviour === 'malformed-json') return json('{"total": 4692, "totalHits": 500, "hits": [{"id": 195893, "pageURL": "ht');
    if (behaviour === 'no-hits') return json(JSON.stringify({ total: 0, totalHits: 0, hits: [] }));

    let hits: PixabayHit[];
    if (params.has('id')) {
      hits = catalogue.filter((hit) => String(hit.id) === params.get('id'));
    } else {
      const perPage = Number(params.get('per_page') ?? 20);
      const page = Number(params.get('page') ?? 1);
      if (!(perPage >= 3 && perPage <= 200)) return text(400, '[ERROR 400] "per_page" is out of valid range.');
      if (!(page >= 1 && (page - 1) * perPage < CATALOGUE_SIZE)) return text(400, '[ERROR 400] "page" is out of valid range.');
      hits = hitsFor(params.get('q') ?? '').slice((page - 1) * perPage, page * perPage);
    }
    if (behaviour === 'image-url-elsewhere') {
      hits = hits.map((hit) => ({ ...hit, previewURL: `${elsewhereOrigin}/photo.png`, webformatURL: `${elsewhereOrigin}/photo.png` }));
    }
    const total = params.has('id') ? hits.length : CATALOGUE_SIZE;
    json(JSON.stringify({ total, totalHits: total, hits }));
  }

  function answerImage(path: string, res: ServerResponse): void {
    calls.images++;
    const match = /^\/(cdn\/photo|get)\/(\d+)_(150|640)\.png$/.exec(path);
    const hit = match && catalogue.find((candidate) => candidate.id === Number(match[2]));
    if (!match || !hit) return send(res, 404, { 'content-type': 'text/plain' }, 'not found');
    const size = match[3] === '150' ? 'preview' : 'web';

    switch (behaviour) {
      case 'slow':
        return later(() => send(res, 200, { 'content-type': 'image/png' }, imageBytes(hit.id, size)));
      case 'server-error':
        return send(res, 500, { 'content-type': 'text/plain' }, 'internal error');
      case 'not-an-image':
        return send(res, 200, { 'content-type': 'text/html' }, '<html><body>Sign in to continue</body></html>');
      case 'oversize-image':
        return send(res, 200, { 'content-type': 'image/png' }, Buffer.alloc(OVERSIZE_BYTES, 1));
      case 'oversize-image-unsized':
        return streamUnsized(res, OVERSIZE_BYTES);
      case 'redirect-elsewhere':
        return send(res, 302, { location: `${elsewhereOrigin}/photo.png` }, '');
    }
    // Like Pixabay's /get/ links, the web size answers with a redirect to where the bytes are.
    if (match[1] === 'get') return send(res, 302, { location: `/cdn/photo/${hit.id}_640.png` }, '');
    send(res, 200, { 'content-type': 'image/png', 'cache-control': 'max-age=31536000' }, imageBytes(hit.id, size));
  }

  function later(answer: () => void, ms = SLOW_MS): void {
    const timer = setTimeout(() => {
      timers.delete(timer);
      answer();
    }, ms);
    timers.add(timer);
  }

  return {
    url: `${origin}/api/`,
    imageHost: `127.0.0.1:${server.port}`,
    apiKey,
    env: { API_KEY: apiKey, PIXABAY_API_URL: `${origin}/api/`, PIXABAY_IMAGE_HOSTS: `127.0.0.1:${server.port}` },
    calls,
    apiRequests,
    setBehaviour: (next) => (behaviour = next),
    setDelay: (ms) => (delayMs = ms),
    hitsFor,
    imageBytes,
    close: async () => {
      for (const timer of timers) clearTimeout(timer);
      await Promise.all([server.close(), elsewhere.close()]);
    },
  };
}

// The bytes depend only on id and size: made once per process, however many stand-ins run.
const images = new Map<string, Buffer>();
function imageBytes(id: number, size: 'preview' | 'web'): Buffer {
  const key = `${id}_${size}`;
  let bytes = images.get(key);
  if (!bytes) images.set(key, (bytes = sunsetPng(SIZES[size][0], SIZES[size][1], id)));
  return bytes;
}

/** `startFakePixabay`, stopped when the test ends. */
export async function fakePixabay(t: ExecutionContext, options?: FakePixabayOptions): Promise<FakePixabay> {
  const pixabay = await startFakePixabay(options);
  t.teardown(() => pixabay.close());
  return pixabay;
}

async function listen(handle: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ port: number; close(): Promise<void> }> {
  const server: Server = createServer(handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function send(res: ServerResponse, status: number, headers: Record<string, string>, body: string | Buffer): void {
  if (res.destroyed) return;
  res.on('error', () => undefined); // a client that hangs up early is not the stand-in's problem
  res.writeHead(status, { ...headers, 'content-length': String(Buffer.byteLength(body)) }).end(body);
}

/** `bytes` of image/png without a content-length, in chunks, until done or the client hangs up. */
function streamUnsized(res: ServerResponse, bytes: number): void {
  res.on('error', () => undefined);
  res.writeHead(200, { 'content-type': 'image/png' });
  const piece = Buffer.alloc(64 * 1024, 1);
  let sent = 0;
  const pump = (): void => {
    while (sent < bytes && !res.destroyed) {
      sent += piece.length;
      if (!res.write(piece)) return void res.once('drain', pump);
    }
    res.end();
  };
  pump();
}
