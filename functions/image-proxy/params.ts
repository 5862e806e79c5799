/** Reading what a client asks for: anything malformed becomes a `BadRequest` whose message says what is wrong. */
import { MAX_PAGE } from './pixabay';

/** A request's query string as Express parses it: repeated names give arrays. */
export type Query = Record<string, unknown>;

/** A request the client must fix: 400 with this one-line message. */
export class BadRequest extends Error {
  override name = 'BadRequest';
}

export type ImageSize = 'preview' | 'web';

/** Pixabay's own limit on `q`. */
const MAX_QUERY_LENGTH = 100;

/** `?q=`, or `fallback` when it is missing or blank. */
export function readSearchQuery(query: Query, fallback: string): string {
  const q = single(query, 'q')?.trim();
  if (!q) return fallback;
  if ([...q].length > MAX_QUERY_LENGTH) throw new BadRequest(`q must be at most ${MAX_QUERY_LENGTH} characters`);
  return q;
}

/** `?page=`, 1 when missing. */
export function readPage(query: Query): number {
  const raw = single(query, 'page');
  if (raw === undefined || raw === '') return 1;
  const page = /^\d{1,3}$/.test(raw) ? Number(raw) : NaN;
  if (!(page >= 1 && page <= MAX_PAGE)) throw new BadRequest(`page must be a whole number from 1 to ${MAX_PAGE}`);
  return page;
}

/** `?size=`: `preview` (Pixabay's 150 px) unless `web` (640 px) is asked for. */
export function readImageSize(query: Query): ImageSize {
  const size = single(query, 'size') || 'preview';
  if (size !== 'preview' && size !== 'web') throw new BadRequest('size must be preview or web');
  return size;
}

/** The `:id` of `/images/:id`: Pixabay's ids are positive whole numbers. */
export function parseImageId(raw: string): number {
  if (!/^[1-9]\d{0,14}$/.test(raw)) throw new BadRequest('the image id must be a positive whole number');
  return Number(raw);
}

function single(query: Query, name: string): string | undefined {
  const value = query[name];
  if (value === undefined || typeof value === 'string') return value;
  throw new BadRequest(`${name} must be given once`);
}
