/**
 * image-proxy against a stand-in Pixabay that will be told to misbehave, with a host that must never be
 * contacted beside it. Every answer our client gets is read to the end (or to where it breaks) and
 * scanned for the API key; `keyLeaks()` counts the answers and log that held it.
 */
import { randomUUID } from 'node:crypto';
import type { ExecutionContext } from 'ava';
import { forbiddenHost, type ForbiddenHost } from './forbidden-host';
import { startFunction, type RunningFunction } from './functions';
import { fakePixabay, holdsKey, type FakePixabay } from './pixabay';

export interface ClientAnswer {
  status: number;
  headers: Headers;
  /** The bytes that arrived, all of them or those before the connection broke. */
  body: Buffer;
  text: string;
  /** The body ended before its content-length, or the connection broke: a client can tell. */
  broken: boolean;
  /** From sending the request to the last byte (or the break). */
  ms: number;
}

export interface HostileSetUp {
  pixabay: FakePixabay;
  proxy: RunningFunction;
  forbidden: ForbiddenHost;
  /** The id of an image whose hit image-proxy has cached, so asking for it goes straight to the image server. */
  imageId: number;
  ask(path: string): Promise<ClientAnswer>;
  /** Requests asked so far. */
  asked(): number;
  /** Answers that held the key, plus 1 when image-proxy's log does. */
  keyLeaks(): number;
}

export async function hostileSetUp(t: ExecutionContext): Promise<HostileSetUp> {
  // '+', '/' and '=' change under URL-encoding, so an encoded leak is a different string from a raw one.
  const pixabay = await fakePixabay(t, { apiKey: `test+key/${randomUUID()}=` });
  const forbidden = await forbiddenHost(t);
  const proxy = await startFunction(t, 'image-proxy', pixabay.env);
  let asked = 0;
  let leakingAnswers = 0;

  const ask = async (path: string): Promise<ClientAnswer> => {
    asked++;
    const started = Date.now();
    // Far past the proxy's 5 s deadline: a request that needs this long has hung, and fails its test.
    const response = await fetch(`${proxy.url}${path}`, { signal: AbortSignal.timeout(20_000) });
    const chunks: Uint8Array[] = [];
    let broken = false;
    try {
      for await (const chunk of response.body ?? []) chunks.push(chunk);
    } catch {
      broken = true;
    }
    const body = Buffer.concat(chunks);
    const everything = [response.statusText, ...[...response.headers].flat(), body.toString('latin1')].join('\n');
    if (holdsKey(everything, pixabay.apiKey)) leakingAnswers++;
    return { status: response.status, headers: response.headers, body, text: body.toString('utf8'), broken, ms: Date.now() - started };
  };

  const list = await ask('/api/images');
  if (list.status !== 200) throw new Error(`image-proxy could not search the stand-in: ${list.status} ${list.text}`);
  const imageId = JSON.parse(list.text).images[0].id as number;
  return {
    pixabay,
    proxy,
    forbidden,
    imageId,
    ask,
    asked: () => asked,
    keyLeaks: () => leakingAnswers + (holdsKey(proxy.output(), pixabay.apiKey) ? 1 : 0),
  };
}
