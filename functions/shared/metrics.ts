/**
 * Prometheus metrics, with prom-client's one registry per process: every request timed under its route's
 * template, the process's own numbers (CPU, memory, event loop, GC), and the text `GET /metrics` answers.
 * Each function counts its own few things beside the code that does them, with the classes exported here.
 */
import { readFileSync } from 'node:fs';
import type { Request, Response } from '@google-cloud/functions-framework';
import type * as PromClient from 'prom-client';
import { log } from './log';

// prom-client's index also loads its pushgateway, summaries, cluster support and the default metrics (with
// OpenTelemetry's API, for exemplars we do not use): 15-30 ms of every cold start. So the pieces we use are
// loaded one by one, and the default metrics at the first scrape (`processMetricsReady`).
export const Counter: typeof PromClient.Counter = require('prom-client/lib/counter');
export const Gauge: typeof PromClient.Gauge = require('prom-client/lib/gauge');
export const Histogram: typeof PromClient.Histogram = require('prom-client/lib/histogram');
const register: PromClient.Registry = require('prom-client/lib/registry').globalRegistry;

/** The OpenTelemetry HTTP semantic conventions' buckets for a server's request duration, in seconds. */
const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];

const requestDuration = new Histogram({
  name: 'http_server_request_duration_seconds',
  help: 'Time from a request reaching the function to its answer having gone out, by method, route template and status code',
  labelNames: ['http_request_method', 'http_route', 'http_response_status_code'],
  buckets: DURATION_BUCKETS,
});

// The methods HTTP defines (RFC 9110, and PATCH); any other is `_OTHER`, as the semantic conventions say.
const KNOWN_METHODS = new Set(['CONNECT', 'DELETE', 'GET', 'HEAD', 'OPTIONS', 'PATCH', 'POST', 'PUT', 'TRACE']);

/**
 * The template `path` falls under, among `templates` (`/images/:id` for `/images/42`, a `:name` standing
 * for one path segment), or `other`: the label's values are ours, whatever path a client sends.
 */
export function routeOf(templates: readonly string[]): (path: string) => string {
  const exact = new Set(templates.filter((template) => !template.includes(':')));
  const patterns = templates
    .filter((template) => template.includes(':'))
    .map((template) => ({ template, regex: new RegExp(`^${template.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/:\w+/g, '[^/]*')}$`) }));
  return (path) => (exact.has(path) ? path : patterns.find(({ regex }) => regex.test(path))?.template ?? 'other');
}

/** The request's method when HTTP defines it, else `_OTHER`. */
export function methodLabel(method: string): string {
  return KNOWN_METHODS.has(method) ? method : '_OTHER';
}

/**
 * Records `res`'s request in the duration histogram, once its answer has gone out (or its client left:
 * then without a status code), and the process's cold start at its first answer that counts as served
 * (`endsColdStart`). Called from the one 'close' listener each request already has (`drainOnShutdown`),
 * so timing costs no timer, promise or listener of its own; after the first answer the cold start costs
 * one boolean test per request.
 */
export function requestRecorder(templates: readonly string[]): (res: Response, startedAt: number) => void {
  const route = routeOf(templates);
  return (res, startedAt) => {
    const req = res.req as Request;
    const labels: Record<string, string | number> = { http_request_method: methodLabel(req.method), http_route: route(req.path) };
    if (res.headersSent) labels.http_response_status_code = res.statusCode;
    requestDuration.observe(labels, (performance.now() - startedAt) / 1000);
    if (!coldStartRecorded && endsColdStart(labels)) recordColdStart();
  };
}

// ---------------------------------------------------------------------------------------------------
// Cold start: Knative has no metric for it (knative/serving#13459), so each process tells its own.

let coldStartRecorded = false;

/**
 * Whether an answer shows the process serving: any route but a scrape of /metrics (answered from memory as
 * soon as the process listens, whatever its dependencies), with a status below 500 (a 503 says it cannot
 * serve yet). In the cluster the first one is normally the readiness probe's first pass.
 */
export function endsColdStart(labels: Record<string, string | number>): boolean {
  const status = labels.http_response_status_code;
  return labels.http_route !== '/metrics' && typeof status === 'number' && status < 500;
}

/**
 * Sets `function_cold_start_duration_seconds`, made only now: until the process has served, there is no
 * series rather than a made-up 0.
 */
function recordColdStart(): void {
  coldStartRecorded = true;
  const coldStart = new Gauge({
    name: 'function_cold_start_duration_seconds',
    help: 'Time from this process being started (the kernel\'s record of it) to its first answer that was not a 5xx nor a /metrics scrape',
  });
  coldStart.set(processAgeSeconds());
}

/** Linux's clock ticks per second in /proc (USER_HZ): 100 on every architecture Node runs on. */
const PROC_TICKS_PER_SECOND = 100;

/**
 * Seconds since this process was started, by the kernel's clock: its start time in /proc/self/stat against
 * the time since boot in /proc/uptime, both in 10 ms steps. Node's own `process.uptime()` counts only from
 * Node's `main()`, missing the 15-80 ms of exec, loading the binary and starting V8 before it; it is still a
 * lower bound to the microsecond, so the larger of the two is taken. Without /proc (macOS), Node's alone.
 */
export function processAgeSeconds(proc = '/proc'): number {
  const sinceMain = process.uptime();
  try {
    const stat = readFileSync(`${proc}/self/stat`, 'utf8');
    // The fields after the command name, which is in parentheses and may itself hold spaces or parentheses.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const startedTicks = Number(fields[19]); // field 22, starttime: clock ticks from boot to the process's start
    const sinceBoot = Number(readFileSync(`${proc}/uptime`, 'utf8').split(' ')[0]);
    const sinceStart = sinceBoot - startedTicks / PROC_TICKS_PER_SECOND;
    // A value that cannot be right (another USER_HZ, a /proc of another namespace) is not used.
    const plausible = Number.isFinite(sinceStart) && sinceStart >= sinceMain - 0.02 && sinceStart < sinceMain + 5;
    return plausible ? Math.max(sinceStart, sinceMain) : sinceMain;
  } catch {
    return sinceMain;
  }
}

// Only counters may end in `_total` (promtool says so); the same numbers stay, by type, in the gauges without it.
const MISNAMED_DEFAULTS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];
// The event-loop delay is sampled this often; the first scrape waits for a few samples, or its lag would be empty.
const EVENT_LOOP_SAMPLE_MS = 10;
let processMetrics: Promise<void> | undefined;

/**
 * The process's own metrics (CPU, memory, heap, event-loop lag, GC), started at the first scrape: a process
 * nobody scrapes never pays for them, and a cold start never does. CPU counts from then on.
 */
function processMetricsReady(): Promise<void> {
  processMetrics ??= new Promise((resolve) => {
    const collectDefaultMetrics: typeof PromClient.collectDefaultMetrics = require('prom-client/lib/defaultMetrics');
    collectDefaultMetrics({ register, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
    for (const name of MISNAMED_DEFAULTS) register.removeSingleMetric(name);
    setTimeout(resolve, 3 * EVENT_LOOP_SAMPLE_MS);
  });
  return processMetrics;
}

/** Every metric of this process in Prometheus's text format. Reads only memory: never waits on Postgres or Pixabay. */
export function sendMetrics(req: Request, res: Response): void {
  processMetricsReady()
    .then(() => register.metrics())
    .then(
      (text) => {
        res.status(200).set('Content-Type', register.contentType).set('Cache-Control', 'no-store');
        res.end(req.method === 'HEAD' ? undefined : text);
      },
      (error: unknown) => {
        log.unexpected(error, { path: req.path });
        res.status(500).type('text/plain').end('metrics could not be collected\n');
      },
    );
}
