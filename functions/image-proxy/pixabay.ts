/**
 * Pixabay's search API as the proxy uses it: every answer cached for 24 h, one upstream request per
 * query at a time, the rate limit honoured, and the key kept out of every message.
 */
import { log } from '../shared/log';
import { Counter } from '../shared/metrics';
import { LruCache } from './lru';

/** The fields of a hit the proxy uses; Pixabay sends more, and may add keys at any time. */
export interface Hit {
  id: number;
  pageURL: string;
  tags: string;
  user: string;
  userId: number;
  previewURL: string;
  previewWidth: number;
  previewHeight: number;
  webformatURL: string;
  webformatWidth: number;
  webformatHeight: number;
  imageWidth: number;
  imageHeight: number;
}

export interface SearchResult {
  total: number;
  totalHits: number;
  hits: Hit[];
}

/** Pixabay's own default; with at most 500 hits per search that makes 25 pages. */
export const PAGE_SIZE = 20;
export const MAX_PAGE = 25;

/** Every upstream exchange, the JSON or an image's bytes, ends within this. */
export const UPSTREAM_DEADLINE_MS = 5000;

export const MB = 1024 * 1024;
/**
 * A page of 20 hits is about 20 KB, and Pixabay's largest page (200 hits) about 200 KB: 1 MB leaves
 * room for the keys Pixabay may add, while a flood or an endless body costs us at most this much.
 */
export const MAX_SEARCH_BYTES = 1 * MB;

// Pixabay's terms: cache searches for 24 h. Bounded so that a stream of distinct queries cannot exhaust memory.
const CACHE_TTL_MS = 24 * 60 * 60 * 1000;
const MAX_CACHED_SEARCHES = 500;
const MAX_KNOWN_IMAGES = 10_000;
// When Pixabay says the limit is reached but not for how long: its window is 60 s.
const DEFAULT_RATE_LIMIT_WAIT_S = 60;

/** Pixabay failed us; `status` is what our client gets, `message` is safe to show, `detail` is for the log. */
export class UpstreamError extends Error {
  override name = 'UpstreamError';
  constructor(
    readonly status: 404 | 503 | 504,
    message: string,
    readonly detail?: string,
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
  }

  /** Pixabay's rate limit is used up: the one failure a stale result may cover. */
  get rateLimited(): boolean {
    return this.retryAfterSeconds !== undefined;
  }

  /** How the request to Pixabay went, as `image_proxy_pixabay_requests_total` counts it. */
  get outcome(): UpstreamOutcome {
    if (this.rateLimited) return 'rate_limited';
    return this.status === 404 ? 'not_found' : this.status === 504 ? 'timeout' : 'error';
  }
}

/**
 * `ok`; `not_found`: no such image or page; `rate_limited`: the limit is used up (Pixabay's 429, or not
 * asked while it lasts); `timeout`: no whole answer within the deadline; `error`: anything else (unreachable,
 * an error status, an answer that is no search result or no image, a URL or redirect that is refused).
 */
export const UPSTREAM_OUTCOMES = ['ok', 'not_found', 'rate_limited', 'timeout', 'error'] as const;
export type UpstreamOutcome = (typeof UPSTREAM_OUTCOMES)[number];

const pixabayRequests = new Counter({
  name: 'image_proxy_pixabay_requests_total',
  help: 'Requests to Pixabay: kind "search" to its API (searches and lookups by id), "image" for the bytes (redirects included), by outcome',
  labelNames: ['kind', 'outcome'],
});
for (const kind of ['search', 'image']) for (const outcome of UPSTREAM_OUTCOMES) pixabayRequests.inc({ kind, outcome }, 0);

/** Requests that failed because Pixabay did, as a few lines per outage (functions/shared/log.ts); any answer from Pixabay ends one. */
export const pixabayLog = log.dependency('pixabay');

/** Counts one request to Pixabay by how it went; an answer (a result, or "no such thing") tells the log Pixabay is back. */
export function countPixabayRequest(kind: 'search' | 'image', outcome: UpstreamOutcome): void {
  pixabayRequests.inc({ kind, outcome });
  if (outcome === 'ok' || outcome === 'not_found') pixabayLog.answered();
}

const cacheLookups = new Counter({
  name: 'image_proxy_cache_lookups_total',
  help: 'Lookups in a cache: "searches" holds Pixabay\'s answers for 24 h, "known_images" the hits by id; a stale entry is a miss',
  labelNames: ['cache', 'result'],
});
for (const cache of ['searches', 'known_images']) for (const result of ['hit', 'miss']) cacheLookups.inc({ cache, result }, 0);

/** The same search whatever the spacing or case: one cache entry, one upstream request. */
export function normaliseQuery(query: string): string {
  return query.normalize('NFC').trim().replace(/\s+/g, ' ').toLowerCase();
}

/** Replaces `secret`, raw or URL-encoded (percent-escapes in either case), wherever it appears in `text`. */
export function redactor(secret: string): (text: string) => string {
  const forms = [...new Set([secret, encodeURIComponent(secret), new URLSearchParams({ s: secret }).toString().slice(2)])];
  // Case-insensitive: an upstream may echo the key as %2b rather than %2B, and URL hosts come back lower-cased.
  const anyForm = new RegExp(forms.map((form) => form.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|'), 'gi');
  return (text) => text.replace(anyForm, 'REDACTED');
}

// undici's codes for a connection that closed before the body it announced was complete.
const BROKEN_OFF = new Set(['UND_ERR_SOCKET', 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH']);

/** A failed `fetch` (or body read) as one line naming who failed: a timeout is a 504, anything else a 503. */
export function fetchFailure(error: unknown, who: string, detail: string): UpstreamError {
  if ((error as Error).name === 'TimeoutError') {
    return new UpstreamError(504, `${who} did not answer within ${UPSTREAM_DEADLINE_MS} ms`, detail);
  }
  const cause = (error as { cause?: { code?: string } }).cause?.code ?? (error as Error).message;
  // llhttp refuses what is not HTTP/1.1, a malformed or conflicting content-length among it.
  if (cause.startsWith('HPE_')) return new UpstreamError(503, `${who} answered something that is not valid HTTP (${cause})`, detail);
  if (BROKEN_OFF.has(cause)) return new UpstreamError(503, `${who} broke off its answer (${cause})`, detail);
  return new UpstreamError(503, `${who} is unreachable (${cause})`, detail);
}

/**
 * The whole body, or undefined once it is longer than `maxBytes` (declared so, or counted so as it
 * arrives): then the rest is never read and the connection is closed. Memory stays within the cap
 * whatever the upstream sends, endless or compressed.
 */
export async function readCapped(response: Response, maxBytes: number): Promise<Buffer | undefined> {
  if (!response.body) return Buffer.alloc(0);
  const reader = response.body.getReader();
  // fetch inflates a content-encoding, after which the declared length no longer counts our bytes.
  const declared = response.headers.has('content-encoding') ? 0 : Number(response.headers.get('content-length'));
  const chunks: Uint8Array[] = [];
  let total = declared > maxBytes ? declared : 0;
  while (total <= maxBytes) {
    const { done, value } = await reader.read();
    if (done) return Buffer.concat(chunks, total);
    chunks.push(value);
    total += value.length;
  }
  await reader.cancel().catch(() => undefined);
  return undefined;
}

function searchKey(normalisedQuery: string, page: number): string {
  return `q:${page}:${normalisedQuery}`;
}

export class PixabayClient {
  readonly redact: (text: string) => string;
  private readonly searches: LruCache<string, SearchResult>;
  private readonly knownImages: LruCache<number, Hit>;
  private readonly inFlight = new Map<string, Promise<SearchResult>>();
  /** No request goes upstream before this time (ms since the epoch): Pixabay's limit is used up. */
  private blockedUntil = 0;
  private lastRateLimitRemaining: number | undefined;

  constructor(
    private readonly apiKey: string,
    private readonly apiUrl: string,
    private readonly now: () => number = Date.now,
  ) {
    this.redact = redactor(apiKey);
    this.searches = new LruCache(MAX_CACHED_SEARCHES, CACHE_TTL_MS, now);
    this.knownImages = new LruCache(MAX_KNOWN_IMAGES, CACHE_TTL_MS, now);
  }

  /** One page of hits for `query`. */
  search(query: string, page: number): Promise<SearchResult> {
    const q = normaliseQuery(query);
    return this.cached(searchKey(q, page), { q, page: String(page), per_page: String(PAGE_SIZE), image_type: 'all', safesearch: 'true' });
  }

  /** The same page from the cache, when it is there and fresh; never asks Pixabay. */
  freshSearch(query: string, page: number): SearchResult | undefined {
    const entry = this.searches.get(searchKey(normaliseQuery(query), page));
    if (!entry?.fresh) return undefined; // a miss, counted by the search that follows
    cacheLookups.inc({ cache: 'searches', result: 'hit' });
    return entry.value;
  }

  /** The hit with this id: from a recent search when there is one, else asked of Pixabay by id. */
  async findImage(id: number): Promise<Hit | undefined> {
    const known = this.knownImages.get(id);
    cacheLookups.inc({ cache: 'known_images', result: known?.fresh ? 'hit' : 'miss' });
    if (known?.fresh) return known.value;
    try {
      const result = await this.cached(`id:${id}`, { id: String(id) });
      return result.hits.find((hit) => hit.id === id);
    } catch (error) {
      if (known && error instanceof UpstreamError && error.rateLimited) return known.value;
      throw error;
    }
  }

  /** A fresh cached answer; else one upstream request shared by every caller waiting for it; a stale answer while rate-limited. */
  private cached(key: string, params: Record<string, string>): Promise<SearchResult> {
    const entry = this.searches.get(key);
    cacheLookups.inc({ cache: 'searches', result: entry?.fresh ? 'hit' : 'miss' });
    if (entry?.fresh) return Promise.resolve(entry.value);
    let pending = this.inFlight.get(key);
    if (!pending) {
      pending = this.fetchResult(params)
        .then((result) => {
          countPixabayRequest('search', 'ok');
          this.searches.set(key, result);
          for (const hit of result.hits) this.knownImages.set(hit.id, hit);
          return result;
        })
        .catch((error: unknown) => {
          countPixabayRequest('search', error instanceof UpstreamError ? error.outcome : 'error');
          if (entry && error instanceof UpstreamError && error.rateLimited) return entry.value;
          throw error;
        })
        .finally(() => this.inFlight.delete(key));
      this.inFlight.set(key, pending);
    }
    return pending;
  }

  private async fetchResult(params: Record<string, string>): Promise<SearchResult> {
    if (this.now() < this.blockedUntil) throw this.rateLimited();
    const url = new URL(this.apiUrl);
    url.search = new URLSearchParams({ key: this.apiKey, ...params }).toString();
    const detail = `GET ${this.redact(url.href)}`;
    let response: Response;
    let body: Buffer | undefined;
    try {
      // Never followed (`manual`): a redirect would carry the key to wherever it points, even off Pixabay.
      response = await fetch(url, { redirect: 'manual', signal: AbortSignal.timeout(UPSTREAM_DEADLINE_MS) });
      body = await readCapped(response, MAX_SEARCH_BYTES);
    } catch (error) {
      throw fetchFailure(error, 'Pixabay', detail);
    }
    this.noteRateLimit(response);
    if (response.status === 429) throw this.rateLimited();
    if (response.status >= 300 && response.status < 400) {
      throw new UpstreamError(503, `Pixabay answered ${response.status}, a redirect, which is not followed`, detail);
    }
    if (!response.ok) {
      const said = this.redact((body?.toString('utf8') ?? '').trim().split('\n')[0]!.slice(0, 120));
      // Pixabay's way of saying the search has fewer results than that page would start at: the client asked too far.
      if (response.status === 400 && said.includes('"page" is out of valid range')) {
        throw new UpstreamError(404, `page ${params.page} is past the last page of results`, detail);
      }
      throw new UpstreamError(503, `Pixabay answered ${response.status}${said ? `: ${said}` : ''}`, detail);
    }
    if (!body) throw new UpstreamError(503, `Pixabay answered more than ${MAX_SEARCH_BYTES / MB} MB, which is no search result`, detail);
    const result = parseSearchResult(body.toString('utf8'));
    if (!result) throw new UpstreamError(503, 'Pixabay answered something that is not search results', detail);
    return result;
  }

  /** `X-RateLimit-Remaining: 0` or a 429 stops upstream requests for `X-RateLimit-Reset` seconds. */
  private noteRateLimit(response: Response): void {
    const remaining = Number(response.headers.get('x-ratelimit-remaining') ?? NaN);
    if (Number.isFinite(remaining)) this.lastRateLimitRemaining = remaining;
    if (response.status !== 429 && remaining !== 0) return;
    const reset = Number(response.headers.get('x-ratelimit-reset') ?? NaN);
    const waitSeconds = Number.isFinite(reset) && reset > 0 ? reset : DEFAULT_RATE_LIMIT_WAIT_S;
    this.blockedUntil = Math.max(this.blockedUntil, this.now() + waitSeconds * 1000);
  }

  /** The last `X-RateLimit-Remaining` Pixabay sent; undefined until it has sent one. */
  get rateLimitRemaining(): number | undefined {
    return this.lastRateLimitRemaining;
  }

  /** Seconds until Pixabay's rate limit resets while requests are held back for it; 0 when they are not. */
  rateLimitResetSeconds(): number {
    return Math.max(0, (this.blockedUntil - this.now()) / 1000);
  }

  private rateLimited(): UpstreamError {
    const seconds = Math.max(1, Math.ceil((this.blockedUntil - this.now()) / 1000));
    return new UpstreamError(503, `Pixabay's rate limit is used up; try again in ${seconds} s`, undefined, seconds);
  }
}

/** The search result in `body`, or undefined when it is not JSON of that shape. Hits without usable URLs are left out. */
export function parseSearchResult(body: string): SearchResult | undefined {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    return undefined;
  }
  const { total, totalHits, hits } = (json ?? {}) as Record<string, unknown>;
  if (!isCount(total) || !isCount(totalHits) || !Array.isArray(hits)) return undefined;
  return { total, totalHits, hits: hits.map(parseHit).filter((hit) => hit !== undefined) };
}

function parseHit(raw: unknown): Hit | undefined {
  const hit = (raw ?? {}) as Record<string, unknown>;
  if (!isCount(hit.id) || hit.id === 0) return undefined;
  const { pageURL, previewURL, webformatURL } = hit;
  if (typeof pageURL !== 'string' || typeof previewURL !== 'string' || typeof webformatURL !== 'string') return undefined;
  return {
    id: hit.id,
    pageURL,
    tags: typeof hit.tags === 'string' ? hit.tags : '',
    user: typeof hit.user === 'string' ? hit.user : '',
    userId: isCount(hit.user_id) ? hit.user_id : 0,
    previewURL,
    previewWidth: isCount(hit.previewWidth) ? hit.previewWidth : 0,
    previewHeight: isCount(hit.previewHeight) ? hit.previewHeight : 0,
    webformatURL,
    webformatWidth: isCount(hit.webformatWidth) ? hit.webformatWidth : 0,
    webformatHeight: isCount(hit.webformatHeight) ? hit.webformatHeight : 0,
    imageWidth: isCount(hit.imageWidth) ? hit.imageWidth : 0,
    imageHeight: isCount(hit.imageHeight) ? hit.imageHeight : 0,
  };
}

function isCount(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}
