/**
 * A stand-in for Pixabay (no machine here reaches the real one): real HTTP on a free port, answering
 * the search API as Pixabay documents it (rate-limit headers included) and serving real
 * PNGs from the same server. It can be told to misbehave, and it counts what it is asked.
 * `startFakePixabay()` works anywhere (the benchmark uses it); `fakePixabay(t)` also stops it after the test.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { createServer, type IncomingMessage, type OutgoingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { createGzip } from 'node:zlib';
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

/** The stand-in's two sides: the search API (`/api/`) and the image server (`/cdn/...`, `/get/...`). */
export type PixabayRoute = 'api' | 'images';

/**
 * Misbehaviour with parameters, for the hostile-upstream tests. It replaces the route's 200 answers
 * (its errors, and the redirect `/get/` answers with, stay as they are) until it is set to undefined.
 */
export type HostileAnswer =
  /** `count` redirects: through `/hop/<n>/...` on the stand-in, the last one to `to`, or without `to` to the true answer. */
  | { kind: 'redirects'; count: number; to?: string }
  /** A redirect to the very URL that was asked for, every time. */
  | { kind: 'redirect-loop' }
  /** 200 with `megabytes` of a true-looking start and filler (endless when Infinity), as fast as it is read. */
  | { kind: 'flood'; megabytes: number; sized: boolean }
  /** The same, gzip-compressed on the way: a little on the wire, `megabytes` once fetch has inflated it. */
  | { kind: 'gzip-bomb'; megabytes: number }
  /** The true answer, one byte every `msPerByte`, with or without its content-length. */
  | { kind: 'trickle'; msPerByte: number; sized: boolean }
  /**
   * The true answer under a hand-written head, for framing no HTTP library would send: one
   * `content-length` line per value `contentLength(bodyLength)` gives, optionally chunked too; then the connection closes.
   */
  | { kind: 'framing'; contentLength: (bodyLength: number) => string[]; chunked?: boolean };

/** One hostile answer as it went: the body bytes written, and when its connection closed (either side closing it). */
export interface HostileExchange {
  route: PixabayRoute;
  kind: HostileAnswer['kind'];
  startedAt: number;
  closedAt?: number;
  bytesSent: number;
}

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
  /** From now on `route` answers so (undefined: as before); `/plain/...` paths always answer truly. */
  setHostile(route: PixabayRoute, answer: HostileAnswer | undefined): void;
  /** Every hostile answer given so far, in order. */
  hostileExchanges: HostileExchange[];
  /** Every API answer waits this long first (0 by default): a Pixabay that is far away but within the deadline. */
  setDelay(ms: number): void;
  /** API answers wait from now until the returned function is called: a request held in flight for as long as a test needs. */
  holdApi(): () => void;
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
const MB = 1024 * 1024;
const OVERSIZE_BYTES = 11 * MB;
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
  let apiHeld: Promise<void> | undefined;
  const calls = { api: 0, images: 0, elsewhere: 0 };
  const apiRequests: URLSearchParams[] = [];
  const timers = new Set<NodeJS.Timeout>();
  let window = { startedAt: Date.now(), used: 0 };

  const elsewhere = await listen((_req, res) => {
    calls.elsewhere++;
    send(res, 200, { 'content-type': 'image/png' }, sunsetPng(150, 100, 666));
  });
  const hostile: Partial<Record<PixabayRoute, HostileAnswer>> = {};
  const hostileExchanges: HostileExchange[] = [];
  const server = await listen((req, res) => {
    const { hop, plain, path } = unwrap(req.url ?? '/');
    const url = new URL(path, origin);
    const route = url.pathname === '/api/' ? 'api' : /^\/(cdn|get)\//.test(url.pathname) ? 'images' : undefined;
    if (!route) return send(res, 404, { 'content-type': 'text/plain' }, 'not found');
    const answer = plain ? undefined : hostile[route];
    const deliver: Deliver = (status, headers, body) =>
      answer && status === 200 ? answerHostile(route, answer, path, res, headers, body) : send(res, status, headers, body);
    if (hop !== undefined) {
      calls[route]++;
      if (answer?.kind !== 'redirects') return send(res, 404, { 'content-type': 'text/plain' }, 'not found');
      return redirect(res, nextHop(answer, hop, path));
    }
    if (route === 'api') {
      calls.api++;
      apiRequests.push(url.searchParams);
      if (apiHeld) return void apiHeld.then(() => answerApi(url.searchParams, deliver));
      return delayMs ? later(() => answerApi(url.searchParams, deliver), delayMs) : answerApi(url.searchParams, deliver);
    }
    answerImage(url.pathname, res, deliver, plain ? '/plain' : '');
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

  function answerApi(params: URLSearchParams, deliver: Deliver): void {
    if (Date.now() - window.startedAt >= windowMs) window = { startedAt: Date.now(), used: 0 };
    window.used++;
    const limited = behaviour === 'rate-limited' || window.used > rateLimit;
    const rateHeaders = {
      'X-RateLimit-Limit': String(rateLimit),
      'X-RateLimit-Remaining': String(limited ? 0 : rateLimit - window.used),
      'X-RateLimit-Reset': String(Math.ceil((window.startedAt + windowMs - Date.now()) / 1000)),
    };
    const text = (status: number, body: string) => deliver(status, { ...rateHeaders, 'content-type': 'text/plain' }, body);
    const json = (body: string) => deliver(200, { ...rateHeaders, 'content-type': 'application/json' }, body);

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

  function answerImage(path: string, res: ServerResponse, deliver: Deliver, prefix: string): void {
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
    if (match[1] === 'get') return send(res, 302, { location: `${prefix}/cdn/photo/${hit.id}_640.png` }, '');
    deliver(200, { 'content-type': 'image/png', 'cache-control': 'max-age=31536000' }, imageBytes(hit.id, size));
  }

  function answerHostile(route: PixabayRoute, answer: HostileAnswer, path: string, res: ServerResponse, headers: OutgoingHttpHeaders, body: string | Buffer): void {
    const exchange: HostileExchange = { route, kind: answer.kind, startedAt: Date.now(), bytesSent: 0 };
    hostileExchanges.push(exchange);
    res.once('close', () => (exchange.closedAt = Date.now()));
    res.on('error', () => undefined);
    const bytes = Buffer.from(body);
    switch (answer.kind) {
      case 'redirects':
        return redirect(res, nextHop(answer, 0, path));
      case 'redirect-loop':
        return redirect(res, path);
      case 'flood': {
        const length = answer.sized ? { 'content-length': String(answer.megabytes * MB) } : {};
        res.writeHead(200, { 'content-type': headers['content-type'], ...length });
        return pump(res, exchange, floodChunks(route, answer.megabytes * MB));
      }
      case 'gzip-bomb': {
        res.writeHead(200, { 'content-type': headers['content-type'], 'content-encoding': 'gzip' });
        const gzip = Readable.from(floodChunks(route, answer.megabytes * MB)).pipe(createGzip());
        res.once('close', () => gzip.destroy());
        return pump(res, exchange, gzip[Symbol.asyncIterator]());
      }
      case 'trickle': {
        res.writeHead(200, { ...headers, ...(answer.sized ? { 'content-length': String(bytes.length) } : {}) });
        const timer = setInterval(() => {
          if (res.destroyed || exchange.bytesSent === bytes.length) {
            clearInterval(timer);
            timers.delete(timer);
            return void res.end();
          }
          res.write(bytes.subarray(exchange.bytesSent, ++exchange.bytesSent));
        }, answer.msPerByte);
        return void timers.add(timer);
      }
      case 'framing': {
        const lengths = answer.contentLength(bytes.length).map((value) => `content-length: ${value}\r\n`).join('');
        const chunked = answer.chunked ? 'transfer-encoding: chunked\r\n' : '';
        const head = `HTTP/1.1 200 OK\r\ncontent-type: ${headers['content-type']}\r\n${lengths}${chunked}connection: close\r\n\r\n`;
        const payload = answer.chunked ? Buffer.concat([Buffer.from(`${bytes.length.toString(16)}\r\n`), bytes, Buffer.from('\r\n0\r\n\r\n')]) : bytes;
        exchange.bytesSent = payload.length;
        return void res.socket!.end(Buffer.concat([Buffer.from(head, 'latin1'), payload]));
      }
    }
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
    setHostile: (route, answer) => (hostile[route] = answer),
    hostileExchanges,
    setDelay: (ms) => (delayMs = ms),
    holdApi: () => {
      let release!: () => void;
      apiHeld = new Promise((resolve) => (release = resolve));
      return () => {
        apiHeld = undefined;
        release();
      };
    },
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

/** Answers with a status, headers and a body: as the stand-in normally does, or as a hostile answer replaces it. */
type Deliver = (status: number, headers: Record<string, string>, body: string | Buffer) => void;

/** `/hop/<n>/path` and `/plain/path` wrap a path of the stand-in: a step in a redirect chain, or the true answer. */
function unwrap(requestUrl: string): { hop?: number; plain: boolean; path: string } {
  const hop = /^\/hop\/(\d+)(\/.*)$/s.exec(requestUrl);
  if (hop) return { hop: Number(hop[1]), plain: false, path: hop[2]! };
  if (requestUrl.startsWith('/plain/')) return { plain: true, path: requestUrl.slice('/plain'.length) };
  return { plain: false, path: requestUrl };
}

/** Where redirect `done + 1` of a chain of `count` points when `path` was asked for. */
function nextHop(answer: { count: number; to?: string }, done: number, path: string): string {
  return done + 1 < answer.count ? `/hop/${done + 1}${path}` : (answer.to ?? `/plain${path}`);
}

/** A 302 as Express writes one, the target repeated in the body. */
function redirect(res: ServerResponse, location: string): void {
  send(res, 302, { location, 'content-type': 'text/plain' }, `Found. Redirecting to ${location}`);
}

/** `bytes` (Infinity: no end) of what looks like the start of an answer, then filler. */
function* floodChunks(route: PixabayRoute, bytes: number): Generator<Buffer> {
  const start = route === 'api' ? Buffer.from('{"total":45,"totalHits":45,"hits":[') : Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const filler = Buffer.alloc(64 * 1024, route === 'api' ? '{"id":1,"tags":"flood"},' : '\0');
  yield start;
  for (let left = bytes - start.length; left > 0; left -= filler.length) yield left < filler.length ? filler.subarray(0, left) : filler;
}

/** Writes `chunks` as fast as the client reads them, counting the bytes, until they end or the client hangs up. */
function pump(res: ServerResponse, exchange: HostileExchange, chunks: Iterator<Buffer> | AsyncIterator<Buffer>): void {
  const next = async (): Promise<void> => {
    while (!res.destroyed) {
      const { value, done } = await chunks.next();
      if (done) return void res.end();
      exchange.bytesSent += value.length;
      if (!res.write(value)) return void res.once('drain', () => void next().catch(() => res.destroy()));
    }
  };
  next().catch(() => res.destroy());
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

/** Whether `text` holds `key` in any form a URL or a log might carry it: raw, percent-encoded in either case, or form-encoded. */
export function holdsKey(text: string, key: string): boolean {
  const haystack = text.toLowerCase();
  return [key, encodeURIComponent(key), new URLSearchParams({ key }).toString().slice(4)].some((form) => haystack.includes(form.toLowerCase()));
}
