/**
 * Fetching one image's bytes from a URL Pixabay gave us. Only allowed hosts are ever contacted, at
 * every redirect too, and the answer must be a whole raster image no larger than the cap before a
 * byte of it is passed on: the proxy must never become a way to fetch anything else.
 */
import { MB, UPSTREAM_DEADLINE_MS, UpstreamError, countPixabayRequest, fetchFailure, readCapped } from './pixabay';

/**
 * Pixabay's previews are about 5-20 KB and its 640 px images about 50-150 KB: 10 MB is far above any
 * real one, and bounds what one request can make us hold.
 */
export const MAX_IMAGE_BYTES = 10 * MB;
const MAX_REDIRECTS = 3;
const WHO = "Pixabay's image server";

/** An image read whole and checked: held in memory (at most `MAX_IMAGE_BYTES`) so nothing is sent before it is known good. */
export interface UpstreamImage {
  contentType: string;
  bytes: Buffer;
}

/** Fetches the image at `href`, following at most a few redirects, each to an allowed host; counted as one request to Pixabay. */
export async function openImage(href: string, allowedHosts: ReadonlySet<string>): Promise<UpstreamImage> {
  try {
    const image = await fetchImage(href, allowedHosts);
    countPixabayRequest('image', 'ok');
    return image;
  } catch (error) {
    countPixabayRequest('image', error instanceof UpstreamError ? error.outcome : 'error');
    throw error;
  }
}

async function fetchImage(href: string, allowedHosts: ReadonlySet<string>): Promise<UpstreamImage> {
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
      await response.body?.cancel().catch(() => undefined);
      if (redirects === MAX_REDIRECTS) throw new UpstreamError(503, `${WHO} redirected more than ${MAX_REDIRECTS} times`, `GET ${url.href}`);
      url = allowedUrl(new URL(location, url).href, allowedHosts, 'redirected the image to a URL');
      continue;
    }
    return await checkedImage(response, url);
  }
}

/** `href` as a URL when it is http(s) on an allowed host, without credentials; else the reason it is refused. */
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
  // `URL.host` leaves out `user:pass@`, so `http://allowed@elsewhere/` must be refused on its own account.
  if (url.username || url.password) throw new UpstreamError(503, `Pixabay ${what} with credentials in it`);
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
  // Read whole before our status line goes out: a body that breaks off, trickles past the deadline or
  // is cut short by a wrong content-length then becomes a clean 503/504, not a 200 that stops halfway.
  let bytes: Buffer | undefined;
  try {
    bytes = await readCapped(response, MAX_IMAGE_BYTES);
  } catch (error) {
    throw fetchFailure(error, WHO, detail);
  }
  if (!bytes) throw new UpstreamError(503, `the image is larger than ${MAX_IMAGE_BYTES / MB} MB`, detail);
  if (!isWholeImage(bytes)) throw new UpstreamError(503, `${WHO} sent an image that is cut short or not a PNG, JPEG, GIF or WebP`, detail);
  return { contentType, bytes };
}

const PNG_START = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const PNG_END = Buffer.from([0, 0, 0, 0, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82]); // the empty IEND chunk
const JPEG_START = Buffer.from([0xff, 0xd8, 0xff]);
const JPEG_END = Buffer.from([0xff, 0xd9]);

/**
 * Whether `bytes` are a whole image in one of the formats Pixabay serves: each format says where it
 * ends, so an image cut short (which HTTP cannot tell when the content-length itself was wrong) is caught.
 */
export function isWholeImage(bytes: Buffer): boolean {
  if (startsWith(bytes, PNG_START)) return endsWith(bytes, PNG_END);
  // Some encoders pad a JPEG with zero bytes after its end marker.
  if (startsWith(bytes, JPEG_START)) return endsWith(bytes.subarray(0, lengthWithoutTrailingZeros(bytes)), JPEG_END);
  if (/^GIF8[79]a$/.test(bytes.toString('latin1', 0, 6))) return bytes.at(-1) === 0x3b; // the trailer
  if (bytes.toString('latin1', 0, 4) === 'RIFF' && bytes.toString('latin1', 8, 12) === 'WEBP') return bytes.readUInt32LE(4) + 8 === bytes.length;
  return false;
}

function startsWith(bytes: Buffer, prefix: Buffer): boolean {
  return bytes.length > prefix.length && bytes.subarray(0, prefix.length).equals(prefix);
}

function endsWith(bytes: Buffer, suffix: Buffer): boolean {
  return bytes.length >= suffix.length && bytes.subarray(bytes.length - suffix.length).equals(suffix);
}

function lengthWithoutTrailingZeros(bytes: Buffer): number {
  let end = bytes.length;
  while (end > 0 && bytes[end - 1] === 0) end--;
  return end;
}
