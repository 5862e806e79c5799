/**
 * pingpong: `GET /pingpong` answers `pong N` and counts the ping in Postgres; `GET /pongs` tells the
 * count without counting.
 */
import { http, type Response } from '@google-cloud/functions-framework';
import { connect, DATABASE_FAILURE_REASONS, databaseFailureReason, migrate, readDatabaseConfig } from '../shared/db';
import { allowMethods, managed, sendNotFound, sendReason } from '../shared/http';
import { log } from '../shared/log';
import { Counter, Histogram } from '../shared/metrics';
import { gatherWhileBusy, withDeadline } from '../shared/waiting';
import { batchPings } from './counter';

const config = readDatabaseConfig(process.env);
const sql = connect(config, 'pingpong');

/** Answers within this, whatever the database does. */
const DATABASE_DEADLINE_MS = 1200;
const HEALTH_DEADLINE_MS = 1000;

// Applied lazily on first use (module scope does no network I/O); forgotten on failure, so the next request retries.
let schemaReady: Promise<unknown> | undefined;
function ensureSchema(): Promise<unknown> {
  schemaReady ??= migrate(sql).catch((error) => {
    schemaReady = undefined;
    throw error;
  });
  return schemaReady;
}

const pings = new Counter({ name: 'pingpong_pings_total', help: 'Pings counted in Postgres and answered with pong N' });
const statementPings = new Histogram({
  name: 'pingpong_statement_pings',
  help: 'Pings each committed counting UPDATE carried: the pings waiting at the same moment share one',
  buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
});
const databaseFailures = new Counter({
  name: 'pingpong_database_failures_total',
  help: 'Requests answered 503 because the database failed them, by reason',
  labelNames: ['reason'],
});
for (const reason of DATABASE_FAILURE_REASONS) databaseFailures.inc({ reason }, 0);
// Each failure is counted above; the log tells an outage in a few lines (functions/shared/log.ts).
const postgresLog = log.dependency('postgres');

const recordPing = batchPings(async (k) => {
  await ensureSchema();
  const [row] = await sql<[{ n: string }]>`update pings set n = n + ${k} returning n`;
  postgresLog.answered();
  statementPings.observe(k);
  return Number(row.n);
}, DATABASE_DEADLINE_MS);

// Reads waiting at the same moment share one query too; each still sees every ping answered before it arrived.
const countPongs = gatherWhileBusy(async (k) => {
  await ensureSchema();
  const [row] = await sql<[{ n: string }]>`select n from pings`;
  postgresLog.answered();
  return Array<number>(k).fill(Number(row.n));
}, DATABASE_DEADLINE_MS, 'the database');

http(
  'pingpong',
  managed((req, res) => {
    if (!allowMethods(req, res, ['GET', 'HEAD'])) return;
    switch (req.path) {
      case '/pingpong':
        // HEAD is for probes: it must not count.
        if (req.method === 'HEAD') return void res.type('text/plain').end();
        // Every ping is news: never stored by a cache, and `end` rather than `send`, whose freshness check would
        // turn a conditional request (If-None-Match: *) into a 304 that hides the number of a ping it counted.
        return answer(res, recordPing(), (n) => {
          pings.inc();
          res.set('Cache-Control', 'no-store').type('text/plain').end(`pong ${n}`);
        });
      case '/pongs':
        return answer(res, countPongs(), (pongs) => res.json({ pongs }));
      case '/healthz':
        return answer(res, withDeadline(sql`select 1`, HEALTH_DEADLINE_MS, 'the database'), () => {
          postgresLog.answered();
          res.type('text/plain').send('ok');
        });
      case '/livez':
        // Liveness never asks Postgres: a database outage must not restart every pod.
        return void res.type('text/plain').send('ok');
      default:
        return sendNotFound(req, res);
    }
  }, { routes: ['/pingpong', '/pongs', '/healthz', '/livez'], close: () => sql.end({ timeout: 5 }) }),
);

/**
 * Sends what `work` gives, or 503 with the database's one-line reason. A plain `then` rather than an
 * async handler: the framework runs each request in a domain, where every extra promise costs.
 */
function answer<T>(res: Response, work: Promise<T>, send: (value: T) => void): void {
  work.then(send).catch((error: unknown) => {
    const reason = databaseFailureReason(error);
    databaseFailures.inc({ reason });
    // `other` is a failure nobody foresaw: its stack goes to the log too.
    postgresLog.failed(reason, describe(error), reason === 'other' ? error : undefined);
    if (res.headersSent) return void res.destroy();
    sendReason(res, 503, `database unavailable: ${describe(error)}`);
  });
}

/** One line a client may see: the error's message or code, never a stack. */
function describe(error: unknown): string {
  const { message, code } = error as { message?: string; code?: string };
  return (message || code || 'unknown error').split('\n')[0]!;
}
