/**
 * log-output: one random UUID for the life of the instance, logged every 5 s; `GET /` shows the
 * configured message, the timestamp line and pingpong's count, fetched over HTTP.
 */
import { http } from '@google-cloud/functions-framework';
import { v4 as uuidv4 } from 'uuid';
import { allowMethods, drainOnShutdown, sendNotFound, sendReason } from '../shared/http';
import { gatherWhileBusy } from '../shared/waiting';
import { readLogOutputConfig } from './config';
import { pageText, stampLine } from './page';

const config = readLogOutputConfig(process.env);
const instanceId = uuidv4();

console.log(stampLine(new Date(), instanceId));
const stamping = setInterval(() => console.log(stampLine(new Date(), instanceId)), 5000);

const PINGPONG_DEADLINE_MS = config.pingpongTimeoutMs;
// The start-up gate of GET /healthz: closed until pingpong has answered once, then open for good.
let pingpongHasAnswered = false;

/** Pingpong's count, or an error whose message says what went wrong, in one line that names pingpong. */
async function fetchPongs(): Promise<number> {
  let response: Response;
  try {
    response = await fetch(`${config.pingpongUrl}/pongs`, { signal: AbortSignal.timeout(PINGPONG_DEADLINE_MS) });
  } catch (error) {
    const timedOut = (error as Error).name === 'TimeoutError';
    const cause = (error as { cause?: { code?: string } }).cause?.code ?? 'no connection';
    throw new Error(timedOut ? `pingpong did not answer within ${PINGPONG_DEADLINE_MS} ms` : `pingpong is unreachable (${cause})`);
  }
  if (!response.ok) throw new Error(`pingpong answered ${response.status}`);
  const body: unknown = await response.json().catch(() => undefined);
  const pongs = (body as { pongs?: unknown } | undefined)?.pongs;
  if (!Number.isSafeInteger(pongs) || (pongs as number) < 0) throw new Error('pingpong answered something that is not {"pongs": N}');
  return pongs as number;
}

// Page views waiting at the same moment share one request to pingpong; each still gets a count read after it arrived.
const nextPongs = gatherWhileBusy(async (k) => Array<number>(k).fill(await fetchPongs()), PINGPONG_DEADLINE_MS, 'pingpong');

http(
  'log-output',
  drainOnShutdown(async (req, res) => {
    if (!allowMethods(req, res, ['GET', 'HEAD'])) return;
    // Liveness asks nothing else: pingpong being down must not restart log-output.
    if (req.path === '/livez') return void res.type('text/plain').send('ok');
    if (req.path !== '/' && req.path !== '/healthz') return sendNotFound(req, res);
    // Ready once pingpong has answered (the course's rule), without asking it again on every probe, so that
    // the probes do not keep pingpong from scaling to zero.
    if (req.path === '/healthz' && pingpongHasAnswered) return void res.type('text/plain').send('ok');
    let pongs: number;
    try {
      pongs = await nextPongs();
    } catch (error) {
      console.error(`log-output: ${req.path}: ${(error as Error).message}`);
      return sendReason(res, 503, (error as Error).message);
    }
    pingpongHasAnswered = true;
    if (req.path === '/healthz') return void res.type('text/plain').send('ok');
    res.type('text/plain').send(pageText(config.message, stampLine(new Date(), instanceId), pongs));
  }, async () => clearInterval(stamping)),
);
