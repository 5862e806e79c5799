/**
 * Asking pingpong for its count over HTTP. node:http rather than fetch: fetch loads undici on its first
 * call, which cost log-output about 30 ms of CPU and 12 MB of memory at its first answer (its cold start
 * waits on that call; docs/cold-start.md), for one small GET.
 */
import { get, type IncomingMessage } from 'node:http';

/** pingpong's answer is `{"pongs": N}`; anything much longer is not that. */
const MAX_BODY_BYTES = 64 * 1024;
const NOT_PONGS = 'pingpong answered something that is not {"pongs": N}';

export const PINGPONG_FAILURE_REASONS = ['timeout', 'unreachable', 'bad_status', 'bad_body'] as const;
export type PingpongFailureReason = (typeof PINGPONG_FAILURE_REASONS)[number];

/** Pingpong failed us; the message says how, in one line that names pingpong. */
export class PingpongFailure extends Error {
  constructor(
    readonly reason: PingpongFailureReason,
    message: string,
  ) {
    super(message);
  }
}

/** Pingpong's count, or a `PingpongFailure`. */
export async function fetchPongs(pingpongUrl: string, deadlineMs: number): Promise<number> {
  const response = await getText(`${pingpongUrl}/pongs`, deadlineMs);
  if (response.status < 200 || response.status > 299) throw new PingpongFailure('bad_status', `pingpong answered ${response.status}`);
  let pongs: unknown;
  try {
    pongs = (JSON.parse(response.body) as { pongs?: unknown } | null)?.pongs;
  } catch {
    // not JSON: said below
  }
  if (!Number.isSafeInteger(pongs) || (pongs as number) < 0) throw new PingpongFailure('bad_body', NOT_PONGS);
  return pongs as number;
}

/** GET `url`: its status and whole body within `deadlineMs`, or a `PingpongFailure` saying why not. */
function getText(url: string, deadlineMs: number): Promise<{ status: number; body: string }> {
  const signal = AbortSignal.timeout(deadlineMs);
  const timedOut = () => new PingpongFailure('timeout', `pingpong did not answer within ${deadlineMs} ms`);
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
        else if (tooLong) reject(new PingpongFailure('bad_body', NOT_PONGS));
        else reject(signal.aborted ? timedOut() : new PingpongFailure('bad_body', "pingpong's answer broke off"));
      });
    }).on('error', (error: NodeJS.ErrnoException) => {
      reject(signal.aborted ? timedOut() : new PingpongFailure('unreachable', `pingpong is unreachable (${error.code ?? 'no connection'})`));
    });
  });
}
