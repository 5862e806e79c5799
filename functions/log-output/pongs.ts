/**
 * Asking pingpong for its count over HTTP. node:http rather than fetch: fetch loads undici on its first
 * call, which cost log-output about 30 ms of CPU and 12 MB of memory at its first answer (its cold start
 * waits on that call; docs/cold-start.md), for one small GET.
 */
import { get, type IncomingMessage } from 'node:http';

/** pingpong's answer is `{"pongs": N}`; anything much longer is not that. */
const MAX_BODY_BYTES = 64 * 1024;
const NOT_PONGS = 'pingpong answered something that is not {"pongs": N}';

/** Pingpong's count, or an error whose message says what went wrong, in one line that names pingpong. */
export async function fetchPongs(pingpongUrl: string, deadlineMs: number): Promise<number> {
  const response = await getText(`${pingpongUrl}/pongs`, deadlineMs);
  if (response.status < 200 || response.status > 299) throw new Error(`pingpong answered ${response.status}`);
  let pongs: unknown;
  try {
    pongs = (JSON.parse(response.body) as { pongs?: unknown } | null)?.pongs;
  } catch {
    // not JSON: said below
  }
  if (!Number.isSafeInteger(pongs) || (pongs as number) < 0) throw new Error(NOT_PONGS);
  return pongs as number;
}

/** GET `url`: its status and whole body within `deadlineMs`; a failure's message names pingpong and why. */
function getText(url: string, deadlineMs: number): Promise<{ status: number; body: string }> {
  const signal = AbortSignal.timeout(deadlineMs);
  const failure = (error?: NodeJS.ErrnoException) =>
    new Error(signal.aborted ? `pingpong did not answer within ${deadlineMs} ms` : `pingpong is unreachable (${error?.code ?? 'no connection'})`);
  return new Promise((resolve, reject) => {
    get(url, { signal }, (response: IncomingMessage) => {
      let body = '';
      let tooLong = false;
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        body += chunk;
        if (body.length > MAX_BODY_BYTES) {
          tooLong = true;
          response.destroy();
        }
      });
      response.on('error', () => undefined); // told by 'close' below
      response.on('close', () => {
        if (response.complete && !tooLong) resolve({ status: response.statusCode ?? 0, body });
        else if (tooLong) reject(new Error(NOT_PONGS));
        else reject(signal.aborted ? failure() : new Error("pingpong's answer broke off"));
      });
    }).on('error', (error) => reject(failure(error)));
  });
}
