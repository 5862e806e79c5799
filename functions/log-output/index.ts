/**
 * log-output: one random UUID for the life of the instance, logged every 5 s; `GET /` shows the
 * configured message, the timestamp line and pingpong's count, fetched over HTTP.
 */
import { randomUUID } from 'node:crypto';
import { http } from '@google-cloud/functions-framework';
import { allowMethods, managed, sendNotFound, sendReason } from '../shared/http';
import { log } from '../shared/log';
import { Counter } from '../shared/metrics';
import { gatherWhileBusy, TimeoutError } from '../shared/waiting';
import { readLogOutputConfig } from './config';
import { pageText, stampLine } from './page';
import { fetchPongs, PINGPONG_FAILURE_REASONS, PingpongFailure } from './pongs';

const config = readLogOutputConfig(process.env);
const instanceId = randomUUID();

// The course's exercise line, as the course prints it: plain text, not one of the JSON lines of functions/shared/log.ts.
console.log(stampLine(new Date(), instanceId));
const stamping = setInterval(() => console.log(stampLine(new Date(), instanceId)), 5000);

const PINGPONG_DEADLINE_MS = config.pingpongTimeoutMs;
// The start-up gate of GET /healthz: closed until pingpong has answered once, then open for good.
let pingpongHasAnswered = false;

const pingpongFailures = new Counter({
  name: 'log_output_pingpong_failures_total',
  help: 'Requests answered 503 because pingpong failed them, by reason',
  labelNames: ['reason'],
});
for (const reason of PINGPONG_FAILURE_REASONS) pingpongFailures.inc({ reason }, 0);
// Each failure is counted above; the log tells an outage in a few lines (functions/shared/log.ts).
const pingpongLog = log.dependency('pingpong');

// Page views waiting at the same moment share one request to pingpong; each still gets a count read after it arrived.
const nextPongs = gatherWhileBusy(
  async (k) => {
    const pongs = await fetchPongs(config.pingpongUrl, PINGPONG_DEADLINE_MS);
    pingpongLog.answered();
    return Array<number>(k).fill(pongs);
  },
  PINGPONG_DEADLINE_MS,
  'pingpong',
);

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
      // Else the batch's deadline (TimeoutError), the same as the request's, fired first: pingpong did not answer in time.
      const reason = error instanceof PingpongFailure ? error.reason : 'timeout';
      pingpongFailures.inc({ reason });
      const foreseen = error instanceof PingpongFailure || error instanceof TimeoutError;
      pingpongLog.failed(reason, (error as Error).message, foreseen ? undefined : error);
      return sendReason(res, 503, (error as Error).message);
    }
    pingpongHasAnswered = true;
    if (req.path === '/healthz') return void res.type('text/plain').send('ok');
    res.type('text/plain').send(pageText(config.message, stampLine(new Date(), instanceId), pongs));
  }, { routes: ['/', '/healthz', '/livez'], close: async () => clearInterval(stamping) }),
);
