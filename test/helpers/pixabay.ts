/**
 * The tests' stand-in for Pixabay: the one `npm run demo` runs (scripts/pixabay-stand-in.ts: real HTTP,
 * Pixabay's answers, real PNGs), which can also be told to misbehave, and counts what it is asked.
 * `startFakePixabay()` works anywhere (the benchmark uses it); `fakePixabay(t)` also stops it after the test.
 */
import type { ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { createGzip } from 'node:zlib';
import type { ExecutionContext } from 'ava';
import {
  imageBytes, json, listen, NOT_FOUND, pixabayAnswers, runningStandIn, send, text,
  type Answer, type PixabayHit, type PixabayStandIn, type PixabayStandInOptions,
} from '../../scripts/pixabay-stand-in';
import { sunsetPng } from '../../scripts/png';
import { decodedStrings } from './logs';

export { CATALOGUE_SIZE, type PixabayHit } from '../../scripts/pixabay-stand-in';

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

/** The stand-in as `npm run demo` runs it, with counters and switches for misbehaviour. */
export interface FakePixabay extends PixabayStandIn {
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
}

export type FakePixabayOptions = PixabayStandInOptions;

const SLOW_MS = 6000;
const MB = 1024 * 1024;
const OVERSIZE_BYTES = 11 * MB;

export async function startFakePixabay(options: FakePixabayOptions = {}): Promise<FakePixabay> {
  let behaviour: PixabayBehaviour = 'normal';
  let delayMs = 0;
  let apiHeld: Promise<void> | undefined;
  const calls = { api: 0, images: 0, elsewhere: 0 };
  const apiRequests: URLSearchParams[] = [];
  const timers = new Set<NodeJS.Timeout>();

  const elsewhere = await listen((_req, res) => {
    calls.elsewhere++;
    send(res, { status: 200, headers: { 'content-type': 'image/png' }, body: sunsetPng(150, 100, 666) });
  });
  const hostile: Partial<Record<PixabayRoute, HostileAnswer>> = {};
  const hostileExchanges: HostileExchange[] = [];
  const server = await listen((req, res) => {
    const { hop, plain, path } = unwrap(req.url ?? '/');
    const url = new URL(path, pixabay.origin);
    const route = url.pathname === '/api/' ? 'api' : /^\/(cdn|get)\//.test(url.pathname) ? 'images' : undefined;
    if (!route) return send(res, NOT_FOUND);
    const answer = plain ? undefined : hostile[route];
    const deliver: Deliver = (given) => (answer && given.status === 200 ? answerHostile(route, answer, path, res, given) : send(res, given));
    if (hop !== undefined) {
      calls[route]++;
      if (answer?.kind !== 'redirects') return send(res, NOT_FOUND);
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
  const pixabay = pixabayAnswers(`http://127.0.0.1:${server.port}`, options);
  const elsewhereOrigin = `http://127.0.0.1:${elsewhere.port}`;

  /** Misbehaviour starts once the key and the rate limit have been checked, as a failing Pixabay's would. */
  function answerApi(params: URLSearchParams, deliver: Deliver): void {
    const admitted = pixabay.admit(params, behaviour === 'rate-limited');
    if ('refusal' in admitted) return deliver(admitted.refusal);
    const { rateHeaders } = admitted;
    const noHits = () => json(JSON.stringify({ total: 0, totalHits: 0, hits: [] }), rateHeaders);
    if (behaviour === 'slow') return later(() => deliver(noHits()));
    if (behaviour === 'server-error') return deliver(text(500, '[ERROR 500] Internal server error', rateHeaders));
    if (behaviour === 'malformed-json') return deliver(json('{"total": 4692, "totalHits": 500, "hits": [{"id": 195893, "pageURL": "ht', rateHeaders));
    if (behaviour === 'no-hits') return deliver(noHits());
    const elsewhereUrls = (hit: PixabayHit) => ({ ...hit, previewURL: `${elsewhereOrigin}/photo.png`, webformatURL: `${elsewhereOrigin}/photo.png` });
    deliver(pixabay.results(params, rateHeaders, behaviour === 'image-url-elsewhere' ? elsewhereUrls : undefined));
  }

  function answerImage(pathname: string, res: ServerResponse, deliver: Deliver, prefix: string): void {
    calls.images++;
    const asked = pixabay.imageAsked(pathname);
    if (!asked) return send(res, NOT_FOUND);
    const png = (body: Buffer): Answer => ({ status: 200, headers: { 'content-type': 'image/png' }, body });

    switch (behaviour) {
      case 'slow':
        return later(() => send(res, png(imageBytes(asked.hit.id, asked.size))));
      case 'server-error':
        return send(res, text(500, 'internal error'));
      case 'not-an-image':
        return send(res, { status: 200, headers: { 'content-type': 'text/html' }, body: '<html><body>Sign in to continue</body></html>' });
      case 'oversize-image':
        return send(res, png(Buffer.alloc(OVERSIZE_BYTES, 1)));
      case 'oversize-image-unsized':
        return streamUnsized(res, OVERSIZE_BYTES);
      case 'redirect-elsewhere':
        return send(res, { status: 302, headers: { location: `${elsewhereOrigin}/photo.png` }, body: '' });
    }
    deliver(pixabay.imageAnswer(asked, prefix));
  }

  function answerHostile(route: PixabayRoute, answer: HostileAnswer, path: string, res: ServerResponse, { headers, body }: Answer): void {
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
    ...runningStandIn(pixabay, async () => {
      for (const timer of timers) clearTimeout(timer);
      await Promise.all([server.close(), elsewhere.close()]);
    }),
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
  };
}

/** `startFakePixabay`, stopped when the test ends. */
export async function fakePixabay(t: ExecutionContext, options?: FakePixabayOptions): Promise<FakePixabay> {
  const pixabay = await startFakePixabay(options);
  t.teardown(() => pixabay.close());
  return pixabay;
}

/** Sends an answer: as the stand-in normally does, or as a hostile answer replaces it. */
type Deliver = (answer: Answer) => void;

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
  send(res, { status: 302, headers: { location, 'content-type': 'text/plain' }, body: `Found. Redirecting to ${location}` });
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

/**
 * Whether `text` holds `key` in any form a URL or a log might carry it: raw, percent-encoded in either case,
 * form-encoded, JSON-escaped, or in any string of a JSON log line once decoded.
 */
export function holdsKey(text: string, key: string): boolean {
  const forms = [key, encodeURIComponent(key), new URLSearchParams({ key }).toString().slice(4), JSON.stringify(key).slice(1, -1)].map((form) => form.toLowerCase());
  // A log line is JSON: its strings are read decoded too, so no escape JSON allows can hide the key.
  return [text, ...decodedStrings(text)].some((haystack) => forms.some((form) => haystack.toLowerCase().includes(form)));
}
