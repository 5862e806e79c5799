/**
 * Flagger's checks on a real Prometheus (Debian's). Two revisions of pingpong and two of image-proxy run side
 * by side, each the real compiled function in its own process: a good one, and a bad one (pingpong's
 * database hangs and a regression burns CPU; image-proxy's Pixabay hangs). Prometheus scrapes them under the
 * labels the PodMonitor gives their pods, and a stand-in kubelet serves cAdvisor's CPU counter of each. Load
 * goes where the Canary's webhook sends it, split as Flagger's first step splits it. Every MetricTemplate's
 * query is filled in as Flagger fills it for each revision, and judged as Flagger judges it, once per
 * analysis interval: the good revisions pass every check, each bad one fails the checks it should within two
 * intervals, and the failed query names it. The CPU check's numbers are compared with the CPU each process
 * used, read from /proc by the test itself.
 *
 * The clock runs six times faster than the shipped one: an analysis interval of 1m is 10 s here, a metric's
 * interval of 1m or 2m is 10 s or 20 s, the PodMonitor's 10 s scrapes are 1.7 s and the kubelet's 30 s are 5 s.
 * Every window therefore holds as many scrapes as in the cluster, and the queries are the shipped ones.
 */
import { writeFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import { stringify } from 'yaml';
import { HOW_TO_INSTALL_PROMETHEUS, prometheusInstalled, startPrometheus } from '../../scripts/prometheus';
import { asFlaggerSends, judge, metricModel, renderQuery, type Sample, type Verdict } from '../helpers/flagger';
import { startFunction, type RunningFunction } from '../helpers/functions';
import { kubectlProblem, loadManifests, type Obj } from '../helpers/manifests';
import { fakePixabay } from '../helpers/pixabay';
import { freePort } from '../helpers/ports';
import { startTestPostgres } from '../helpers/postgres';
import { cpuSeconds, fakeKubelet, kubeletJob, podMonitorJob, podName, type RevisionPod } from '../helpers/revisions';
import { tempDir } from '../helpers/temp';
import { testUnless } from '../helpers/tools';

const SPEEDUP = 6;
/** kube-prometheus-stack scrapes the kubelet's cAdvisor at Prometheus's default interval. */
const KUBELET_SCRAPE = '30s';
/**
 * The checks each revision must fail by the second analysis: none for the good ones (which must pass every
 * check at every analysis), and at least these for the bad ones. The bad pingpong's CPU check is not among
 * them: how much CPU its spinning thread gets depends on what else this shared machine runs (a quarter of a
 * core with four threads at a load of 15 on two cores), so the test checks the number instead.
 */
const EXPECTED_FAILURES: Record<string, string[]> = {
  'pingpong-00001': [],
  'pingpong-00002': ['error-ratio', 'latency-p99'],
  'image-proxy-00001': [],
  'image-proxy-00002': ['error-ratio', 'latency-p99'],
};
/**
 * A regression that burns CPU, loaded into the bad pingpong with NODE_OPTIONS: a thread spinning 40 ms of
 * every 100 (for 40 s, longer than the test needs it). That sets the revision's CPU use well apart from the
 * others' while leaving this shared machine's two cores to the rest of the test.
 */
const BURNER = `const { isMainThread, Worker } = require('node:worker_threads');
const spin = 'const end = Date.now() + 40000; const beat = () => { const until = Date.now() + 40; while (Date.now() < until); if (Date.now() < end) setTimeout(beat, 60); }; beat();';
if (isMainThread) new Worker(spin, { eval: true }).unref();
`;

const canaryTest = testUnless(kubectlProblem() ?? (prometheusInstalled() ? undefined : `prometheus not found: ${HOW_TO_INSTALL_PROMETHEUS}`), 'kubectl, prometheus');

canaryTest('on a real Prometheus, Flagger\'s checks pass a good revision and fail a bad one within two intervals, naming it', async (t) => {
  // 45 to 70 s on a busy machine: the functions and Prometheus starting, two analysis intervals of 10 s, the checks.
  t.timeout(180_000);
  const objects = loadManifests().map((m) => m.doc);
  const canaries = new Map(objects.filter((d) => d.kind === 'Canary').map((d) => [String(d.spec.targetRef.name), d]));
  const templates = new Map(objects.filter((d) => d.kind === 'MetricTemplate').map((d) => [String(d.metadata.name), d]));
  const services = new Map(objects.filter((d) => d.kind === 'Service' && d.apiVersion === 'serving.knative.dev/v1').map((d) => [String(d.metadata.name), d]));
  const podMonitor = objects.find((d) => d.kind === 'PodMonitor')!;
  t.deepEqual([...canaries.keys()].sort(), ['image-proxy', 'pingpong']);
  for (const canary of canaries.values()) {
    t.deepEqual(analysisMetrics(canary).map((m) => m.name), ['error-ratio', 'latency-p99', 'cpu-usage'], `${canary.metadata.name}: the checks this test knows`);
  }

  // The revisions: each function's good one, and its bad one.
  const [db, goodPixabay, badPixabay, hangingDatabase] = await Promise.all([startTestPostgres(t), fakePixabay(t), fakePixabay(t), hangingServer(t)]);
  badPixabay.setBehaviour('slow');
  const burner = path.join(tempDir(t, 'canary-'), 'burn-cpu.cjs');
  writeFileSync(burner, BURNER);
  const started = await Promise.all([
    startFunction(t, 'pingpong', { DATABASE_URL: db.url }),
    // Alive (it answers /livez), so it would pass a liveness probe; every request needing the database waits for it in vain.
    startFunction(t, 'pingpong', { DATABASE_URL: `postgres://pingpong@${hangingDatabase}/exercises`, NODE_OPTIONS: `--require ${burner}` }, { waitPath: '/livez' }),
    startFunction(t, 'image-proxy', goodPixabay.env),
    startFunction(t, 'image-proxy', badPixabay.env),
  ]);
  const revisions = ['pingpong-00001', 'pingpong-00002', 'image-proxy-00001', 'image-proxy-00002'];
  const pods: RevisionPod[] = revisions.map((revision, i) => ({
    service: services.get(serviceOf(revision))!,
    revision,
    pod: podName(revision),
    address: `127.0.0.1:${started[i]!.port}`,
    pid: () => started[i]!.pid(),
  }));

  // Prometheus, scraping them as the PodMonitor and kube-prometheus-stack's kubelet job do.
  const kubelet = await fakeKubelet(t, () => pods);
  const dir = tempDir(t, 'canary-prometheus-');
  const config = {
    global: { scrape_interval: scaled('10s'), evaluation_interval: scaled('10s') },
    scrape_configs: [podMonitorJob(podMonitor, pods, scaled(podMonitor.spec.podMetricsEndpoints[0].interval)), kubeletJob(kubelet.address, scaled(KUBELET_SCRAPE))],
  };
  writeFileSync(path.join(dir, 'prometheus.yml'), stringify(config));
  const prometheus = await startPrometheus(path.join(dir, 'prometheus.yml'), path.join(dir, 'data'), await freePort());
  t.teardown(() => prometheus.stop());
  const promql = (query: string) => instantQuery(prometheus.url, query);
  await waitFor(t, async () => (await promql('count(up == 1)')).result[0]?.value[1] === String(pods.length + 1), 30_000, 'every revision and the kubelet scraped');

  // Each revision's targets carry the labels the queries select by, made by the PodMonitor's relabelings.
  const targets = (await promql('up{job="exercises/functions"}')).result.map((s) => s.metric);
  for (const pod of pods) {
    t.like(targets.find((labels) => labels.revision === pod.revision), { namespace: 'exercises', service: serviceOf(pod.revision), pod: pod.pod, instance: pod.pod }, `${pod.revision}'s target labels`);
  }

  // The good revisions stand for the primaries, which have served before a canary arrives: their first
  // requests, which pay one-off costs (pingpong's schema check, image-proxy's first search, code not yet
  // compiled) that on this busy machine alone can take longer than a check allows, are behind them. The
  // canaries start cold, as in the cluster.
  for (let i = 0; i < 20; i++) {
    await Promise.all(
      [...canaries.values()].map((canary) => fetch(`${started[revisions.indexOf(`${canary.spec.targetRef.name}-00001`)]!.url}${loadPath(canary)}`).then((r) => r.arrayBuffer())),
    );
  }
  await sleep(durationMs(scaled(podMonitor.spec.podMetricsEndpoints[0].interval)));
  const cpu = sampleCpu(t, pods);

  // Load as the Canary's webhook makes it (`hey -q <per client> -c <clients>` to its URL's path), the bad
  // revision taking the share Flagger's first step gives the canary.
  const loads = [...canaries.values()].map((canary) => {
    const target = String(canary.spec.targetRef.name);
    const byRevision = (suffix: string) => started[revisions.indexOf(`${target}-${suffix}`)]!;
    return startLoad(canary, byRevision('00001'), byRevision('00002'));
  });
  t.teardown(() => loads.forEach((stop) => stop()));
  const loadStartedAt = Date.now();

  // One analysis per interval, every check of every revision as if it were the canary.
  const intervalMs = durationMs(canaries.get('pingpong')!.spec.analysis.interval) / SPEEDUP;
  const analyses: Map<string, Verdict>[] = [];
  const analysedAt: number[] = [];
  for (let k = 1; k <= 2; k++) {
    await sleep(loadStartedAt + k * intervalMs - Date.now());
    analysedAt.push(Date.now());
    cpu.read();
    const verdicts = new Map<string, Verdict>();
    await Promise.all(
      revisions.flatMap((revision) => {
        const canary = canaries.get(serviceOf(revision))!;
        return analysisMetrics(canary).map(async (metric) => {
          const query = flaggerQuery(templates.get(metric.templateRef.name)!, canary, metric, revision);
          const { resultType, result } = await promql(query);
          verdicts.set(`${revision} ${metric.name}`, judge(resultType, result, metric));
        });
      }),
    );
    analyses.push(verdicts);
    t.log(`analysis ${k}, ${seconds(Date.now() - loadStartedAt)} after the load began:\n${[...verdicts].sort().map(([check, v]) => `  ${check}: ${describe(v)}`).join('\n')}`);
  }

  for (const revision of revisions) {
    const canary = canaries.get(serviceOf(revision))!;
    const expected = EXPECTED_FAILURES[revision]!;
    const last = analyses.at(-1)!;
    const failed = analysisMetrics(canary).filter((m) => !last.get(`${revision} ${m.name}`)!.passed).map((m) => m.name);
    t.deepEqual(failed.filter((name) => expected.includes(name)), expected, `${revision}: the checks failed at the second analysis`);
    for (const name of expected) {
      const verdict = last.get(`${revision} ${name}`)!;
      // A number outside the range, from the series of this revision: not "no values found", not another revision's.
      t.true(verdict.value !== undefined && verdict.labels?.revision === revision, `${revision} ${name}: ${describe(verdict)}`);
    }
    if (expected.length === 0) {
      for (const [k, analysis] of analyses.entries()) {
        for (const metric of analysisMetrics(canary)) {
          const verdict = analysis.get(`${revision} ${metric.name}`)!;
          t.true(verdict.passed, `${revision} ${metric.name} at analysis ${k + 1}: ${describe(verdict)}`);
        }
      }
    }
  }

  // The CPU check measures each revision's own function container: its number is the CPU that revision's
  // process used over the window (not the other revision's, not queue-proxy's), within what Prometheus's
  // extrapolation from a few scrapes and the moving load leave (a third, or 0.03 of a core when it is tiny).
  const last = analyses.at(-1)!;
  const tolerance = (cores: number) => cores / 3 + 0.03;
  const measured = new Map<string, number>();
  for (const pod of pods) {
    const metric = analysisMetrics(canaries.get(serviceOf(pod.revision))!).find((m) => m.name === 'cpu-usage')!;
    const reported = last.get(`${pod.revision} cpu-usage`)!.value!;
    measured.set(pod.revision, cpu.rate(pod.revision, durationMs(scaled(metric.interval)), analysedAt.at(-1)!));
    t.log(`${pod.revision}: the CPU check says ${reported.toFixed(3)} cores, /proc says ${measured.get(pod.revision)!.toFixed(3)}`);
    t.true(Math.abs(reported - measured.get(pod.revision)!) <= tolerance(measured.get(pod.revision)!), `${pod.revision}: the CPU check says ${reported} cores, /proc says ${measured.get(pod.revision)}`);
  }
  // The spinning thread sets the bad pingpong apart by more than that margin, so a query that mixed the two
  // revisions' pods would have failed the comparison above.
  t.true(measured.get('pingpong-00002')! - measured.get('pingpong-00001')! > tolerance(measured.get('pingpong-00001')!), 'the spinning thread sets the bad pingpong apart');

  // What keeps a check from failing a good revision for want of a number: with no 5xx ever, the error count
  // is no series at all, so without the `or` the error ratio would be no value and halt the analysis.
  const errorRatio = templates.get('revision-error-ratio')!;
  const pingpong = canaries.get('pingpong')!;
  const errorMetric = analysisMetrics(pingpong).find((m) => m.templateRef.name === 'revision-error-ratio')!;
  const [errorsAlone] = String(errorRatio.spec.query).split(/\n\s*or\n/);
  t.truthy(errorsAlone && errorsAlone !== errorRatio.spec.query, 'the error ratio\'s query has an `or` to split at');
  const withoutOr = { ...errorRatio, spec: { ...errorRatio.spec, query: errorsAlone!.replace(/^\s*\(/, '') } };
  t.deepEqual((await promql(flaggerQuery(withoutOr, pingpong, errorMetric, 'pingpong-00001'))).result, [], 'a good revision has no 5xx series');

  // A query whose selector matches nothing halts the analysis rather than passing: a misspelt label, or a
  // `route` that is not a revision.
  for (const metric of analysisMetrics(pingpong)) {
    const template = templates.get(metric.templateRef.name)!;
    const misspelt = { ...template, spec: { ...template.spec, query: String(template.spec.query).replaceAll('revision="', 'revison="') } };
    const { resultType, result } = await promql(flaggerQuery(misspelt, pingpong, metric, 'pingpong-00001'));
    t.like(judge(resultType, result, metric), { passed: false, reason: 'no values found' }, `${metric.name} with a misspelt label`);
    const { resultType: type, result: nothing } = await promql(flaggerQuery(template, pingpong, metric, 'pingpong'));
    t.like(judge(type, nothing, metric), { passed: false, reason: 'no values found' }, `${metric.name} with the Service's name for a revision`);
  }
});

/** The Canary's metrics, each with a templateRef (the test knows no other kind). */
function analysisMetrics(canary: Obj): Obj[] {
  return canary.spec.analysis.metrics as Obj[];
}

/** The template's query, filled in as Flagger fills it for `revision` as the canary, on the test's clock, and sent as Flagger sends it. */
function flaggerQuery(template: Obj, canary: Obj, metric: Obj, revision: string): string {
  return asFlaggerSends(renderQuery(String(template.spec.query), metricModel(canary, { ...metric, interval: scaled(metric.interval) }, revision)));
}

/**
 * Requests as the Canary's load webhook sends them: `hey -q <rate per client> -c <clients> <url>`, to the
 * URL's path; every (100 / stepWeight)-th to the canary revision, the rest to the primary. Returns a stop function.
 */
function startLoad(canary: Obj, primary: RunningFunction, canaryRevision: RunningFunction): () => void {
  const cmd = loadCommand(canary);
  const perClient = Number(/-q (\d+)/.exec(cmd)![1]);
  const clients = Number(/-c (\d+)/.exec(cmd)![1]);
  const pathname = loadPath(canary);
  const every = 100 / Number(canary.spec.analysis.stepWeight);
  let sent = 0;
  const timer = setInterval(() => {
    const to = sent++ % every === 0 ? canaryRevision : primary;
    fetch(`${to.url}${pathname}`, { signal: AbortSignal.timeout(20_000) }).then((r) => r.arrayBuffer(), () => undefined);
  }, 1000 / (perClient * clients));
  return () => clearInterval(timer);
}

function loadCommand(canary: Obj): string {
  return String((canary.spec.analysis.webhooks as Obj[]).find((w) => w.type === 'rollout')!.metadata.cmd);
}

/** The path the load webhook's command asks for. */
function loadPath(canary: Obj): string {
  return new URL(/https?:\/\/\S+/.exec(loadCommand(canary))![0]).pathname;
}

/**
 * Every revision's process CPU seconds, read from /proc every 250 ms until the test ends, and whenever
 * `read` is called; `rate` is the CPU it used per second over the `windowMs` before `at`, interpolated
 * between readings.
 */
function sampleCpu(t: ExecutionContext, pods: RevisionPod[]): { read(): void; rate(revision: string, windowMs: number, at: number): number } {
  const readings = new Map(pods.map((pod) => [pod.revision, [] as { at: number; seconds: number }[]]));
  const read = () => pods.forEach((pod) => readings.get(pod.revision)!.push({ at: Date.now(), seconds: cpuSeconds(pod.pid()) }));
  read();
  const timer = setInterval(read, 250);
  t.teardown(() => clearInterval(timer));
  const secondsAt = (series: { at: number; seconds: number }[], at: number) => {
    const after = series.findIndex((r) => r.at >= at);
    if (after === -1) return series.at(-1)!.seconds;
    if (after === 0) return series[0]!.seconds;
    const [a, b] = [series[after - 1]!, series[after]!];
    return a.seconds + ((b.seconds - a.seconds) * (at - a.at)) / (b.at - a.at);
  };
  return {
    read,
    rate(revision, windowMs, at) {
      const series = readings.get(revision)!;
      return (secondsAt(series, at) - secondsAt(series, at - windowMs)) / (windowMs / 1000);
    },
  };
}

/** A TCP server that takes every connection and never says a word: a Postgres that hangs. */
async function hangingServer(t: ExecutionContext): Promise<string> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined).on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const socket of sockets) socket.destroy();
    server.close();
  });
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** An instant query as Flagger's Prometheus provider sends it (GET /api/v1/query); a query Prometheus refuses throws with its reason. */
async function instantQuery(prometheus: string, query: string): Promise<{ resultType: string; result: Sample[] }> {
  const response = await fetch(`${prometheus}/api/v1/query?${new URLSearchParams({ query })}`);
  const body = (await response.json()) as { status: string; error?: string; data: { resultType: string; result: Sample[] } };
  if (body.status !== 'success') throw new Error(`Prometheus refused ${query}: ${body.error}`);
  return body.data;
}

async function waitFor(t: ExecutionContext, done: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  for (const giveUpAt = Date.now() + ms; !(await done()); await sleep(250)) {
    if (Date.now() > giveUpAt) return void t.fail(`not ${what} after ${seconds(ms)}`);
  }
}

/** `pingpong` for `pingpong-00002`. */
function serviceOf(revision: string): string {
  return revision.replace(/-\d{5}$/, '');
}

/** A Prometheus or Go duration such as 1m, 2m, 10s, 1m30s, in milliseconds. */
function durationMs(duration: string): number {
  const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  const parts = [...duration.matchAll(/(\d+)(ms|s|m|h)/g)];
  if (parts.map((p) => p[0]).join('') !== duration) throw new Error(`not a duration: ${duration}`);
  return parts.reduce((sum, [, n, unit]) => sum + Number(n) * units[unit!]!, 0);
}

/** A shipped duration on the test's clock, as Prometheus writes durations. */
function scaled(duration: string): string {
  return `${Math.round(durationMs(duration) / SPEEDUP)}ms`;
}

function describe(verdict: Verdict): string {
  const value = verdict.value === undefined ? '' : `${Number(verdict.value.toPrecision(3))} (revision ${verdict.labels?.revision})`;
  return verdict.passed ? `passed, ${value}` : `FAILED, ${verdict.reason}${value ? `: ${value}` : ''}`;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
