/** The few HTTP answers every function gives the same way. */
import type { HttpFunction, Request, Response } from '@google-cloud/functions-framework';

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
 * Wraps a handler so that SIGTERM and SIGINT drain it: functions-framework itself exits the moment a
 * signal arrives, cutting off requests in flight (for pingpong: a ping counted but never answered).
 * The swap happens on the first request, when the framework has surely installed its own listeners;
 * before that nothing is in flight and its immediate exit is right.
 */
export function drainOnShutdown(handler: HttpFunction, close: () => Promise<void>, maxWaitMs = 10_000): HttpFunction {
  let inFlight = 0;
  let installed = false;
  // One shared listener, not a closure per request: this runs on every request's hot path.
  const responseClosed = () => inFlight--;
  const drainAndExit = async () => {
    const giveUpAt = Date.now() + maxWaitMs;
    while (inFlight > 0 && Date.now() < giveUpAt) await new Promise((resolve) => setTimeout(resolve, 10));
    await close().catch(() => undefined);
    process.exit(0);
  };
  return (req, res) => {
    if (!installed) {
      installed = true;
      for (const signal of ['SIGTERM', 'SIGINT'] as const) {
        process.removeAllListeners(signal);
        process.once(signal, drainAndExit);
      }
    }
    inFlight++;
    res.on('close', responseClosed);
    return handler(req, res);
  };
}
