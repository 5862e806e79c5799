/**
 * A stand-in for Pixabay (no machine here reaches the real one): real HTTP on a free port, answering
 * the search API as Pixabay documents it (key, pages, rate-limit headers included) and serving real
 * PNGs from the same server. `npm run demo` runs it so that the gallery shows without a key; the tests'
 * stand-in (test/helpers/pixabay.ts) is this one with misbehaviour and counters on top.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { sunsetPng } from './png';

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

export type ImageSize = 'preview' | 'web';

/** One HTTP answer, before it is sent. */
export interface Answer {
  status: number;
  headers: Record<string, string>;
  body: string | Buffer;
}

export interface PixabayStandInOptions {
  /** The key it accepts; by default one made at run time in Pixabay's shape. */
  apiKey?: string;
  /** Requests per window before 429 (Pixabay: 100 per 60 s). */
  rateLimit?: number;
  windowSeconds?: number;
}

/** A running stand-in: what a client needs to use it, and how to stop it. */
export interface PixabayStandIn {
  /** For `PIXABAY_API_URL`. */
  url: string;
  /** For `PIXABAY_IMAGE_HOSTS`: where the images are served (`127.0.0.1:port`). */
  imageHost: string;
  /** The key it accepts; any other gets Pixabay's 400. */
  apiKey: string;
  /** What image-proxy needs to use this stand-in. */
  env: { API_KEY: string; PIXABAY_API_URL: string; PIXABAY_IMAGE_HOSTS: string };
  /** The hits a search for `q` answers, all pages: the order depends on `q`, the set does not. */
  hitsFor(q: string): PixabayHit[];
  /** The bytes behind a hit's previewURL (`preview`) or webformatURL (`web`). */
  imageBytes(id: number, size: ImageSize): Buffer;
  close(): Promise<void>;
}

/** An image path as Pixabay's hits give them: `/cdn/photo/<id>_150.png` (preview) or `/get/<id>_640.png` (web). */
export interface ImageAsked {
  hit: PixabayHit;
  size: ImageSize;
  /** A `/get/` link, which Pixabay answers with a redirect to the CDN. */
  viaGet: boolean;
}

/** Pixabay's answers for a stand-in served at `origin`: the parts a server puts together. */
export interface PixabayAnswers {
  origin: string;
  apiKey: string;
  hitsFor(q: string): PixabayHit[];
  /** Every request as Pixabay answers it: the search API at `/api/`, images under `/cdn/` and `/get/`, 404 for the rest. */
  answer(requestUrl: string): Answer;
  /**
   * The search API's gate: Pixabay's 400 for a wrong key, or its 429 past the rate limit (or whenever
   * `overLimit`); else the rate-limit headers the answer carries. Every call counts against the limit.
   */
  admit(params: URLSearchParams, overLimit?: boolean): { refusal: Answer } | { rateHeaders: Record<string, string> };
  /** The page of hits `params` asks for, or the one hit its `id` names; Pixabay's 400 for a page out of range. `rewrite` changes each hit sent. */
  results(params: URLSearchParams, rateHeaders: Record<string, string>, rewrite?: (hit: PixabayHit) => PixabayHit): Answer;
  /** What an image path asks for, or undefined when it names no image of the catalogue. */
  imageAsked(pathname: string): ImageAsked | undefined;
  /** The image as Pixabay serves it: a `/get/` link redirects to `prefix` + the CDN path, the CDN sends the PNG. */
  imageAnswer(asked: ImageAsked, prefix?: string): Answer;
}

/** How many images any search finds: three pages of Pixabay's default 20. */
export const CATALOGUE_SIZE = 45;
const SIZES = { preview: [150, 100], web: [640, 427] } as const;
// Real-looking names, one with characters that must be escaped wherever it is shown.
const AUTHORS = ['Josch13', 'Ylanite', 'Zoë & <Co> "Light"', 'skeeze', 'Pexels', 'Free-Photos', 'jplenio', 'Hans'];
const TAGS = ['sky', 'sunset', 'clouds', 'dusk', 'evening', 'red', 'horizon', 'nature', 'landscape', 'hills'];
export const NOT_FOUND: Answer = { status: 404, headers: { 'content-type': 'text/plain' }, body: 'not found' };

/** The stand-in on a free port of 127.0.0.1, answering as Pixabay does until it is closed. */
export async function startPixabayStandIn(options: PixabayStandInOptions = {}): Promise<PixabayStandIn> {
  let pixabay: PixabayAnswers | undefined;
  const server = await listen((req, res) => send(res, pixabay ? pixabay.answer(req.url ?? '/') : NOT_FOUND));
  pixabay = pixabayAnswers(`http://127.0.0.1:${server.port}`, options);
  return runningStandIn(pixabay, server.close);
}

/** What clients of a stand-in served at `answers.origin` need, with `close` to stop it. */
export function runningStandIn(answers: PixabayAnswers, close: () => Promise<void>): PixabayStandIn {
  const url = `${answers.origin}/api/`;
  const imageHost = new URL(answers.origin).host;
  return {
    url,
    imageHost,
    apiKey: answers.apiKey,
    env: { API_KEY: answers.apiKey, PIXABAY_API_URL: url, PIXABAY_IMAGE_HOSTS: imageHost },
    hitsFor: answers.hitsFor,
    imageBytes,
    close,
  };
}

export function pixabayAnswers(origin: string, options: PixabayStandInOptions = {}): PixabayAnswers {
  // Made at run time in Pixabay's shape, so the tree holds nothing that looks like a real key.
  const apiKey = options.apiKey ?? `${randomInt(10_000_000, 100_000_000)}-${randomBytes(13).toString('hex').slice(0, 25)}`;
  const rateLimit = options.rateLimit ?? 100;
  const windowMs = (options.windowSeconds ?? 60) * 1000;
  let window = { startedAt: Date.now(), used: 0 };

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

  const admit: PixabayAnswers['admit'] = (params, overLimit = false) => {
    if (Date.now() - window.startedAt >= windowMs) window = { startedAt: Date.now(), used: 0 };
    window.used++;
    const limited = overLimit || window.used > rateLimit;
    const rateHeaders = {
      'X-RateLimit-Limit': String(rateLimit),
      'X-RateLimit-Remaining': String(limited ? 0 : rateLimit - window.used),
      'X-RateLimit-Reset': String(Math.ceil((window.startedAt + windowMs - Date.now()) / 1000)),
    };
    if (params.get('key') !== apiKey) return { refusal: text(400, '[ERROR 400] Invalid or missing API key', rateHeaders) };
    if (limited) return { refusal: text(429, '[ERROR 429] API rate limit exceeded', rateHeaders) };
    return { rateHeaders };
  };

  const results: PixabayAnswers['results'] = (params, rateHeaders, rewrite = (hit) => hit) => {
    let hits: PixabayHit[];
    if (params.has('id')) {
      hits = catalogue.filter((hit) => String(hit.id) === params.get('id'));
    } else {
      const perPage = Number(params.get('per_page') ?? 20);
      const page = Number(params.get('page') ?? 1);
      if (!(perPage >= 3 && perPage <= 200)) return text(400, '[ERROR 400] "per_page" is out of valid range.', rateHeaders);
      if (!(page >= 1 && (page - 1) * perPage < CATALOGUE_SIZE)) return text(400, '[ERROR 400] "page" is out of valid range.', rateHeaders);
      hits = hitsFor(params.get('q') ?? '').slice((page - 1) * perPage, page * perPage);
    }
    const total = params.has('id') ? hits.length : CATALOGUE_SIZE;
    return json(JSON.stringify({ total, totalHits: total, hits: hits.map(rewrite) }), rateHeaders);
  };

  function imageAsked(pathname: string): ImageAsked | undefined {
    const match = /^\/(cdn\/photo|get)\/(\d+)_(150|640)\.png$/.exec(pathname);
    const hit = match && catalogue.find((candidate) => candidate.id === Number(match[2]));
    return hit ? { hit, size: match[3] === '150' ? 'preview' : 'web', viaGet: match[1] === 'get' } : undefined;
  }

  function imageAnswer({ hit, size, viaGet }: ImageAsked, prefix = ''): Answer {
    // Like Pixabay's /get/ links, the web size answers with a redirect to where the bytes are.
    if (viaGet) return { status: 302, headers: { location: `${prefix}/cdn/photo/${hit.id}_640.png` }, body: '' };
    return { status: 200, headers: { 'content-type': 'image/png', 'cache-control': 'max-age=31536000' }, body: imageBytes(hit.id, size) };
  }

  function answer(requestUrl: string): Answer {
    const url = new URL(requestUrl, origin);
    if (url.pathname === '/api/') {
      const admitted = admit(url.searchParams);
      return 'refusal' in admitted ? admitted.refusal : results(url.searchParams, admitted.rateHeaders);
    }
    const asked = imageAsked(url.pathname);
    return asked ? imageAnswer(asked) : NOT_FOUND;
  }

  return { origin, apiKey, hitsFor, answer, admit, results, imageAsked, imageAnswer };
}

// The bytes depend only on id and size: made once per process, however many stand-ins run.
const images = new Map<string, Buffer>();
export function imageBytes(id: number, size: ImageSize): Buffer {
  const key = `${id}_${size}`;
  let bytes = images.get(key);
  if (!bytes) images.set(key, (bytes = sunsetPng(SIZES[size][0], SIZES[size][1], id)));
  return bytes;
}

export function text(status: number, body: string, headers: Record<string, string> = {}): Answer {
  return { status, headers: { ...headers, 'content-type': 'text/plain' }, body };
}

export function json(body: string, headers: Record<string, string> = {}): Answer {
  return { status: 200, headers: { ...headers, 'content-type': 'application/json' }, body };
}

/** A server on a free port of 127.0.0.1; `close` cuts the connections still open. */
export async function listen(handle: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ port: number; close(): Promise<void> }> {
  const server = createServer(handle);
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

export function send(res: ServerResponse, { status, headers, body }: Answer): void {
  if (res.destroyed) return;
  res.on('error', () => undefined); // a client that hangs up early is not the stand-in's problem
  res.writeHead(status, { ...headers, 'content-length': String(Buffer.byteLength(body)) }).end(body);
}
