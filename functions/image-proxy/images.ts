/**
 * Fetching one image's bytes from a URL Pixabay gave us. Only allowed hosts are ever contacted, at
 * every redirect too, and the answer must be a raster image no larger than the cap before a byte of
 * it is passed on: the proxy must never become a way to fetch anything else.
 */
import { Readable } from 'node:stream';
import { UPSTREAM_DEADLINE_MS, UpstreamError, fetchFailure } from './pixabay';

export const MAX_IMAGE_BYTES = 10 * 1024 * 1024;
const MAX_REDIRECTS = 3;
const WHO = "Pixabay's image server";

export interface UpstreamImage {
  contentType: string;
  contentLength: number;
  body: Readable;
}

/** Opens the image at `href`, following at most a few redirects, each to an allowed host. */
export async function openImage(href: string, allowedHosts: ReadonlySet<string>): Promise<UpstreamImage> {
  // One deadline for the whole exchange, body included: nothing upstream can hold a request open.
  const signal = AbortSignal.timeout(UPSTREAM_DEADLINE_MS);
  let url = allowedUrl(href, allowedHosts, 'gave an image URL');
  for (let redirects = 0; ; redirects++) {
    let response: Response;
    try {
      response = await fetch(url, { redirect: 'manual', signal });
    } catch (error) {
      throw fetchFailure(error, WHO, `GET ${url.href}`);
    }
    const location = response.headers.get('location');
    if (response.status >= 300 && response.status < 400 && location) {
      await response.body?.cancel();
      if (redirects === MAX_REDIRECTS) throw new UpstreamError(503, `${WHO} redirected more than ${MAX_REDIRECTS} times`, `GET ${url.href}`);
      url = allowedUrl(new URL(location, url).href, allowedHosts, 'redirected the image to a URL');
      continue;
    }
    return await checkedImage(response, url);
  }
}

/** `href` as a URL when it is http(s) on an allowed host; else the reason it is refused. */
function allowedUrl(href: string, allowedHosts: ReadonlySet<string>, what: string): URL {
  let url: URL | undefined;
  try {
    url = new URL(href);
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:')) {
    throw new UpstreamError(503, `Pixabay ${what} that is not http(s)`);
  }
  if (!allowedHosts.has(url.host)) {
    throw new UpstreamError(503, `Pixabay ${what} on a host that is not allowed (${url.host}); see PIXABAY_IMAGE_HOSTS`);
  }
  return url;
}

async function checkedImage(response: Response, url: URL): Promise<UpstreamImage> {
  const detail = `GET ${url.href}`;
  const refuse = async (status: 404 | 503, reason: string): Promise<never> => {
    await response.body?.cancel().catch(() => undefined);
    throw new UpstreamError(status, reason, detail);
  };
  if (response.status === 404 || response.status === 410) return refuse(404, 'Pixabay no longer has this image');
  if (!response.ok) return refuse(503, `${WHO} answered ${response.status}`);

  const contentType = response.headers.get('content-type')?.trim() ?? '';
  // SVG can carry scripts, which would run on our origin if someone opened the image directly.
  if (!/^image\/[\w.+-]+/i.test(contentType) || /^image\/svg/i.test(contentType)) {
    return refuse(503, `${WHO} answered ${contentType || 'no content-type'} instead of an image`);
  }
  // fetch undoes a content-encoding, after which the declared length no longer counts our bytes.
  const declared = response.headers.get('content-encoding') ? null : response.headers.get('content-length');
  const length = declared === null ? undefined : Number(declared);
  if (length !== undefined && !(Number.isSafeInteger(length) && length >= 0)) return refuse(503, `${WHO} answered a malformed content-length`);
  if (length !== undefined && length > MAX_IMAGE_BYTES) return refuse(503, `the image is larger than ${MAX_IMAGE_BYTES / 1024 / 1024} MB`);
  if (!response.body) return { contentType, contentLength: 0, body: Readable.from([]) };

  const body = Readable.fromWeb(response.body as import('node:stream/web').ReadableStream);
  // HTTP framing holds the body to exactly the declared length: it can be streamed as it comes.
  if (length !== undefined) return { contentType, contentLength: length, body };

  // Without a declared length we must hold the bytes to tell our client theirs; the cap bounds that.
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for await (const chunk of body as AsyncIterable<Uint8Array>) {
      total += chunk.length;
      if (total > MAX_IMAGE_BYTES) {
        body.destroy();
        throw new UpstreamError(503, `the image is larger than ${MAX_IMAGE_BYTES / 1024 / 1024} MB`, detail);
      }
      chunks.push(chunk);
    }
  } catch (error) {
    throw error instanceof UpstreamError ? error : fetchFailure(error, WHO, detail);
  }
  return { contentType, contentLength: total, body: Readable.from([Buffer.concat(chunks)]) };
}
