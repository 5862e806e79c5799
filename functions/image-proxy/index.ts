/**
 * image-proxy: searches Pixabay and serves its images from our own origin, so the API key stays here
 * and clients never hotlink. `GET /` is a gallery, `GET /api/images` the same search as JSON,
 * `GET /images/:id` one image's bytes, `GET /image` the first hit's preview (the course's app).
 */
import { http, type Request, type Response } from '@google-cloud/functions-framework';
import { allowMethods, managed, sendNotFound, sendReason } from '../shared/http';
import { log } from '../shared/log';
import { Gauge } from '../shared/metrics';
import { readImageProxyConfig } from './config';
import { GALLERY_CSP, REAL_KEY_COMMAND, renderGallery } from './gallery';
import { openImage, type UpstreamImage } from './images';
import { BadRequest, parseImageId, readImageSize, readPage, readSearchQuery } from './params';
import { PixabayClient, pixabayLog, UpstreamError, type SearchResult } from './pixabay';
import { summarise } from './summary';

const config = readImageProxyConfig(process.env);
const pixabay = config.apiKey ? new PixabayClient(config.apiKey, config.apiUrl) : undefined;
// The key never reaches the log, however an upstream or an error quotes it.
if (pixabay) log.redactWith(pixabay.redact);
if (!pixabay) log.warning('API_KEY is not set; every route answers 503 until it is');
if (config.demo) log.info(`demo images, from a stand-in for Pixabay (npm run demo); for Pixabay's photos run ${REAL_KEY_COMMAND}`);

// Both read when scraped, so the seconds left are those left now, not when the limit was hit.
new Gauge({
  name: 'image_proxy_pixabay_rate_limit_remaining',
  help: 'The last X-RateLimit-Remaining Pixabay sent: requests left in its window, for our key (NaN until Pixabay has answered)',
  collect() {
    this.set(pixabay?.rateLimitRemaining ?? NaN);
  },
});
new Gauge({
  name: 'image_proxy_pixabay_rate_limit_reset_seconds',
  help: "Seconds until Pixabay's rate limit resets while it holds our requests back; 0 when it does not",
  collect() {
    this.set(pixabay?.rateLimitResetSeconds() ?? 0);
  },
});

// The bytes under one id never change; a day is as long as Pixabay lets us keep what it sends.
const IMAGE_BY_ID_CACHE = 'public, max-age=86400, immutable';
// The first hit for a query may change when the search is asked again.
const FIRST_IMAGE_CACHE = 'public, max-age=3600';

http(
  'image-proxy',
  // Drained on SIGTERM so that images already streaming are not cut off; nothing else to close.
  managed((req, res) => {
    if (!allowMethods(req, res, ['GET', 'HEAD'])) return;
    // The probes' path: up means up, key or no key (without one every other route says so), and never a Pixabay call.
    if (req.path === '/livez') return void res.type('text/plain').send('ok');
    if (!pixabay) return sendReason(res, 503, 'API_KEY is not set');
    const fail = (error: unknown) => {
      const failure = explain(pixabay, req, error);
      if (res.headersSent) return void res.destroy();
      if (failure.retryAfter) res.set('Retry-After', String(failure.retryAfter));
      sendReason(res, failure.status, failure.reason);
    };
    // Not an async handler: a cached search is answered without a promise (see functions/shared/waiting.ts
    // on what each one costs under the framework); only the routes that wait return one.
    try {
      route(pixabay, req, res)?.catch(fail);
    } catch (error) {
      fail(error);
    }
  }, { routes: ['/', '/api/images', '/image', '/images/:id', '/healthz', '/livez'], close: async () => undefined }),
);

function route(pixabay: PixabayClient, req: Request, res: Response): Promise<void> | void {
  const imageId = /^\/images\/([^/]*)$/.exec(req.path)?.[1];
  if (imageId !== undefined) return sendImageById(pixabay, req, res, parseImageId(imageId));
  switch (req.path) {
    case '/':
      return sendGallery(pixabay, req, res);
    case '/api/images':
      return sendImageList(pixabay, req, res);
    case '/image':
      return sendFirstPreview(pixabay, req, res);
    case '/healthz':
      // Says only that we are up: asking Pixabay here would spend the rate limit on probes.
      return void res.type('text/plain').send('ok');
    default:
      return sendNotFound(req, res);
  }
}

/** `GET /?q=&page=`: the gallery. A bad request or a failed search is shown on the page, with its status. */
async function sendGallery(pixabay: PixabayClient, req: Request, res: Response): Promise<void> {
  res.set('Content-Security-Policy', GALLERY_CSP).type('html');
  let query = config.defaultQuery;
  let page = 1;
  try {
    query = readSearchQuery(req.query, config.defaultQuery);
    page = readPage(req.query);
    const result = await pixabay.search(query, page);
    res.send(renderGallery({ query, page, totalHits: result.totalHits, images: result.hits.map(summarise), demo: config.demo }));
  } catch (error) {
    const failure = explain(pixabay, req, error);
    if (failure.retryAfter) res.set('Retry-After', String(failure.retryAfter));
    res.status(failure.status).send(renderGallery({ query, page, totalHits: 0, images: [], error: failure.reason, demo: config.demo }));
  }
}

/** `GET /api/images?q=&page=`: the search as JSON, with our URLs for the bytes. */
function sendImageList(pixabay: PixabayClient, req: Request, res: Response): Promise<void> | void {
  const query = readSearchQuery(req.query, config.defaultQuery);
  const page = readPage(req.query);
  const send = (result: SearchResult) => {
    const head = JSON.stringify({ query, page, total: result.total, totalHits: result.totalHits });
    // The JSON quotes the query as given: no browser may sniff it into HTML.
    res.set('X-Content-Type-Options', 'nosniff').type('json').send(`${head.slice(0, -1)},"images":${imagesJson(result)}}`);
  };
  const cached = pixabay.freshSearch(query, page);
  return cached ? send(cached) : pixabay.search(query, page).then(send);
}

// A cached search answers many requests: summarise and serialise its hits once, not once per request.
const imagesJsonBySearch = new WeakMap<SearchResult, string>();
function imagesJson(result: SearchResult): string {
  let json = imagesJsonBySearch.get(result);
  if (json === undefined) imagesJsonBySearch.set(result, (json = JSON.stringify(result.hits.map(summarise))));
  return json;
}

/** `GET /image?q=`: the first hit's preview, as the course's app served it. */
async function sendFirstPreview(pixabay: PixabayClient, req: Request, res: Response): Promise<void> {
  const query = readSearchQuery(req.query, config.defaultQuery);
  const [first] = (await pixabay.search(query, 1)).hits;
  if (!first) return sendReason(res, 404, `no images found for "${query}"`);
  sendImage(req, res, await openImage(first.previewURL, config.imageHosts), FIRST_IMAGE_CACHE);
}

/** `GET /images/:id?size=preview|web`: that image's bytes, from the URL Pixabay gave for it. */
async function sendImageById(pixabay: PixabayClient, req: Request, res: Response, id: number): Promise<void> {
  const size = readImageSize(req.query);
  const hit = await pixabay.findImage(id);
  if (!hit) return sendReason(res, 404, `no image with id ${id}`);
  sendImage(req, res, await openImage(size === 'web' ? hit.webformatURL : hit.previewURL, config.imageHosts), IMAGE_BY_ID_CACHE);
}

/** The image, read whole and checked before this status line: nothing upstream can cut it short now. */
function sendImage(req: Request, res: Response, image: UpstreamImage, cacheControl: string): void {
  res.status(200);
  res.setHeader('Content-Type', image.contentType);
  res.setHeader('Content-Length', image.bytes.length);
  res.setHeader('Cache-Control', cacheControl);
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.end(req.method === 'HEAD' ? undefined : image.bytes);
}

/**
 * The status and one-line reason for an error. Pixabay's failures and our own mistakes are logged (the log
 * redacts the key); a client's mistake, or Pixabay saying there is no such thing, is only answered.
 */
function explain(pixabay: PixabayClient, req: Request, error: unknown): { status: number; reason: string; retryAfter?: number } {
  if (error instanceof BadRequest) return { status: 400, reason: error.message };
  if (error instanceof UpstreamError) {
    if (error.status !== 404) pixabayLog.failed(error.outcome, `${error.message}${error.detail ? ` (${error.detail})` : ''}`);
    return { status: error.status, reason: pixabay.redact(error.message), retryAfter: error.retryAfterSeconds };
  }
  log.unexpected(error, { path: req.path });
  return { status: 500, reason: 'internal error' };
}
