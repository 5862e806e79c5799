/**
 * log-output: one random UUID for the life of the instance, logged every 5 s; `GET /` shows the
 * configured message, the timestamp line and pingpong's count, fetched over HTTP.
 */
import { http } from '@google-cloud/functions-framework';
import { v4 as uuidv4 } from 'uuid';
import { allowMethods, managed, sendNotFound, sendReason } from '../shared/http';
import { Counter } from '../shared/metrics';
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

const PINGPONG_FAILURE_REASONS = ['timeout', 'unreachable', 'bad_status', 'bad_body'] as const;
type PingpongFailureReason = (typeof PINGPONG_FAILURE_REASONS)[number];

/** Pingpong failed us; the message says how, in one line that names pingpong. */
class PingpongFailure extends Error {
  constructor(
    readonly reason: PingpongFailureReason,
    message: string,
  ) {
    super(message);
  }
}

const pingpongFailures = new Counter({
  name: 'log_output_pingpong_failures_total',
  help: 'Requests answered 503 because pingpong failed them, by reason',
  labelNames: ['reason'],
});
for (const reason of PINGPONG_FAILURE_REASONS) pingpongFailures.inc({ reason }, 0);

/** Pingpong's count, or a `PingpongFailure`. */
async function fetchPongs(): Promise<number> {
  let response: Response;
  try {
    response = await fetch(`${config.pingpongUrl}/pongs`, { signal: AbortSignal.timeout(PINGPONG_DEADLINE_MS) });
  } catch (error) {
    if ((error as Error).name === 'TimeoutError') throw new PingpongFailure('timeout', `pingpong did not answer within ${PINGPONG_DEADLINE_MS} ms`);
    const cause = (error as { cause?: { code?: string } }).cause?.code ?? 'no connection';
    throw new PingpongFailure('unreachable', `pingpong is unreachable (${cause})`);
  }
  if (!response.ok) throw new PingpongFailure('bad_status', `pingpong answered ${response.status}`);
  const body: unknown = await response.json().catch(() => undefined);
  const pongs = (body as { pongs?: unknown } | undefined)?.pongs;
  if (!Number.isSafeInteger(pongs) || (pongs as number) < 0) throw new PingpongFailure('bad_body', 'pingpong answered something that is not {"pongs": N}');
  return pongs as number;
}

// Page views waiting at the same moment share one request to pingpong; each still gets a count read after it arrived.
const nextPongs = gatherWhileBusy(async (k) => Array<number>(k).fill(await fetchPongs()), PINGPONG_DEADLINE_MS, 'pingpong');

http(
  'log-output',
  managed(async (req, res) => {
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
      // Else the batch's deadline (TimeoutError), the same as fetch's, fired first: pingpong did not answer in time.
      pingpongFailures.inc({ reason: error instanceof PingpongFailure ? error.reason : 'timeout' });
      return sendReason(res, 503, (error as Error).message);
    }
    pingpongHasAnswered = true;
    if (req.path === '/healthz') return void res.type('text/plain').send('ok');
    res.type('text/plain').send(pageText(config.message, stampLine(new Date(), instanceId), pongs));
  }, { routes: ['/', '/healthz', '/livez'], close: async () => clearInterval(stamping) }),
);
