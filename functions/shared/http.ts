/** The few HTTP answers every function gives the same way. */
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import type { HttpFunction, Request, Response } from '@google-cloud/functions-framework';
import { log } from './log';
import { requestRecorder, sendMetrics } from './metrics';

/** Answers 405 with an `Allow` header unless the request's method is one of `allowed`; true when it is. */
export function allowMethods(req: Request, res: Response, allowed: readonly string[]): boolean {
  if (allowed.includes(req.method)) return true;
  res.set('Allow', allowed.join(', '));
  sendReason(res, 405, `method ${req.method} is not allowed; use ${allowed.join(' or ')}`);
  return false;
}

/**
 * A plain-text answer whose body is one line saying why. The reason may quote the request (a path, a
 * query), so no browser may sniff it into HTML.
 */
export function sendReason(res: Response, status: number, reason: string): void {
  res.status(status).set('X-Content-Type-Options', 'nosniff').type('text/plain').send(`${reason}\n`);
}

export function sendNotFound(req: Request, res: Response): void {
  sendReason(res, 404, `no such path: ${req.path}`);
}

/**
 * A function's handler as every function runs: `GET /metrics` answered before it (never counted, never
 * waiting on a dependency), each request timed under its route's template (`routes`: the paths the
 * handler answers, `:name` for a path segment), and drained on shutdown, `close` closing what it holds.
 */
export function managed(handler: HttpFunction, { routes, close }: { routes: readonly string[]; close: () => Promise<void> }): HttpFunction {
  const serve: HttpFunction = (req, res) => {
    if (req.path !== '/metrics') return handler(req, res);
    if (allowMethods(req, res, ['GET', 'HEAD'])) sendMetrics(req, res);
  };
  return drainOnShutdown(serve, close, { onClosed: requestRecorder([...routes, '/metrics']) });
}

export interface DrainOptions {
  /** How long requests in flight may take to finish once a signal came. */
  maxWaitMs?: number;
  /** Called with each response once it has closed, and the `performance.now()` its request arrived at. */
  onClosed?: (res: Response, startedAt: number) => void;
}

/**
 * Wraps a handler so that SIGTERM and SIGINT shut the function down gracefully: it stops taking new
 * connections, lets the requests in flight finish (at most `maxWaitMs`), tells their clients the
 * connection closes after the answer, runs `close` (the database pool) and exits 0. functions-framework
 * itself exits the moment a signal arrives, cutting off requests in flight (for pingpong: a ping counted
 * but never answered). Its listeners are swapped for ours on the first request, when it has surely
 * installed them; before that nothing is in flight and its immediate exit is right.
 */
export function drainOnShutdown(handler: HttpFunction, close: () => Promise<void>, { maxWaitMs = 10_000, onClosed }: DrainOptions = {}): HttpFunction {
  // Each request in flight, with the time it arrived.
  const inFlight = new Map<Response, number>();
  let server: Server | undefined;
  let draining = false;
  let whenIdle: (() => void) | undefined;
  // One shared listener, not a closure per request: this runs on every request's hot path.
  function responseClosed(this: Response) {
    onClosed?.(this, inFlight.get(this)!);
    inFlight.delete(this);
    if (inFlight.size === 0) whenIdle?.();
  }

  async function shutDown(signal: NodeJS.Signals) {
    if (draining) return;
    draining = true;
    server?.close(); // also closes the idle keep-alive connections
    // Said only once it is true: whoever reads this line finds new connections refused.
    log.info(`${signal}: finishing ${inFlight.size} request(s) in flight, taking no new ones`, { signal, in_flight: inFlight.size });
    for (const res of inFlight.keys()) if (!res.headersSent) res.setHeader('Connection', 'close');
    if (inFlight.size > 0) {
      const idle = new Promise<void>((resolve) => (whenIdle = resolve));
      await Promise.race([idle, new Promise((resolve) => setTimeout(resolve, maxWaitMs))]);
    }
    const abandoned = inFlight.size;
    if (abandoned > 0) log.error(`${signal}: gave up on ${abandoned} request(s) still in flight after ${maxWaitMs} ms`, { signal, abandoned });
    await close().catch((error: unknown) => log.error(`${signal}: closing failed: ${(error as Error)?.message ?? String(error)}`, { signal }));
    // The failures counted since their last line, so that the log's counts add up to the metrics'.
    log.flush();
    process.exit(abandoned > 0 ? 1 : 0);
  }

  return (req, res) => {
    if (!server) {
      // The framework does not hand out its server; every connection it accepted knows it.
      server = (req.socket as Socket & { server: Server }).server;
      for (const signal of ['SIGTERM', 'SIGINT'] as const) {
        process.removeAllListeners(signal);
        process.on(signal, shutDown);
      }
    }
    // A request that slipped in on a kept-alive connection is still answered, and that connection then closes.
    if (draining) res.setHeader('Connection', 'close');
    inFlight.set(res, performance.now());
    res.on('close', responseClosed);
    return handler(req, res);
  };
}
