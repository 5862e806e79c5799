/**
 * The alert rules and the dashboard on a real Prometheus (Debian's), scraping the three functions every
 * second, with the configuration `npm run monitor` writes, while they serve traffic and their dependencies
 * fail: every expression must be valid PromQL and return data, and PingpongDatabaseUnavailable's must turn
 * true within a minute of Postgres stopping and false again once it is back. kube-state-metrics and Knative
 * need a cluster, so stand-ins serve the backup CronJob's two series and Knative's metrics (queue-proxy's
 * per function, labelled as the PodMonitor labels it; the activator's and the autoscaler's per revision).
 */
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import { projectRoot } from '../../functions/shared/config';
import { functionsJob, HOW_TO_INSTALL_PROMETHEUS, startPrometheus, writePrometheusConfig } from '../../scripts/prometheus';
import { startFunction } from '../helpers/functions';
import { fakeKnative } from '../helpers/fake-knative';
import { fakeKubeStateMetrics } from '../helpers/kube-state-metrics';
import { alertRules, asGrafanaSends, dashboard, dashboardQueries } from '../helpers/monitoring';
import { fakePixabay } from '../helpers/pixabay';
import { freePort } from '../helpers/ports';
import { startTestPostgres } from '../helpers/postgres';
import { tempDir } from '../helpers/temp';
import { testNeeding } from '../helpers/tools';

const FUNCTIONS = ['image-proxy', 'log-output', 'pingpong'];
/** What `$__rate_interval` is in Grafana with the data source's default 15 s scrape interval. */
const RATE_INTERVAL = '1m';
const HOUR = 3600;
const withPrometheus = testNeeding(['prometheus'], HOW_TO_INSTALL_PROMETHEUS);

interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

withPrometheus('on a real Prometheus every alert and dashboard expression returns data, and the database alert follows Postgres', async (t) => {
  // About 45 s, most of it Prometheus's windows filling and emptying: more than the 60 s of silence ava allows by default, under load.
  t.timeout(180_000);
  const now = () => Date.now() / 1000;
  const ports = { pingpong: await freePort(), 'log-output': await freePort(), 'image-proxy': await freePort() };
  const kubeStateMetrics = await fakeKubeStateMetrics(t, { createdAt: now() - 30 * 24 * HOUR, lastSuccessAt: now() - 27 * HOUR });
  const revisions = FUNCTIONS.map((service) => ({ service, revision: `${service}-00001`, namespace: 'exercises' }));
  const [queueProxy, activator, autoscaler] = await Promise.all([fakeKnative(t, 'queue-proxy', revisions), fakeKnative(t, 'activator', revisions), fakeKnative(t, 'autoscaler', revisions)]);
  const dir = tempDir(t, 'prometheus-test-');
  const config = writePrometheusConfig(
    dir,
    [
      functionsJob(ports, '127.0.0.1'),
      { name: 'kube-state-metrics', targets: [{ address: kubeStateMetrics.address, labels: {} }] },
      // One queue-proxy per function's pod, labelled as monitoring/queue-proxy-podmonitor.yaml labels it.
      { name: 'queue-proxy', targets: revisions.map(({ service, revision }) => ({ address: queueProxy, labels: { service, revision } })) },
      { name: 'activator', targets: [{ address: activator, labels: {} }] },
      { name: 'autoscaler', targets: [{ address: autoscaler, labels: {} }] },
    ],
    '1s',
  );
  const prometheus = await startPrometheus(config, path.join(dir, 'data'), await freePort());
  t.teardown(() => prometheus.stop());
  const [db, pixabay] = await Promise.all([startTestPostgres(t), fakePixabay(t)]);
  const pingpong = await startFunction(t, 'pingpong', { DATABASE_URL: db.url }, { port: ports.pingpong });
  const [logOutput, imageProxy] = await Promise.all([
    startFunction(t, 'log-output', { PINGPONG_URL: pingpong.url, ENV_FILE: path.join(projectRoot, 'knative', 'log-output.env') }, { port: ports['log-output'] }),
    startFunction(t, 'image-proxy', pixabay.env, { port: ports['image-proxy'] }),
  ]);
  const promql = (expr: string) => query(prometheus.url, expr);

  // Traffic of every kind: pings arriving together (so statements carry several), counts, pages, a search
  // asked twice (the second from the cache), an image, a path nobody serves.
  await Promise.all(Array.from({ length: 40 }, () => fetch(`${pingpong.url}/pingpong`).then((r) => r.text())));
  for (const url of [`${pingpong.url}/pongs`, `${logOutput.url}/`, `${logOutput.url}/nowhere`, `${imageProxy.url}/api/images?q=sky`]) {
    t.not((await fetch(url)).status, 500, url);
  }
  const { images } = (await (await fetch(`${imageProxy.url}/api/images?q=sky`)).json()) as { images: { id: number }[] };
  t.is((await fetch(`${imageProxy.url}/images/${images[0]!.id}`)).status, 200);
  // From now on, ten pings, page views and (cached) searches a second, as users would keep sending.
  const steady = setInterval(() => {
    for (const url of [`${pingpong.url}/pingpong`, `${logOutput.url}/`, `${imageProxy.url}/api/images?q=sky`]) fetch(url).then((r) => r.arrayBuffer(), () => undefined);
  }, 100);
  t.teardown(() => clearInterval(steady));
  await waitFor(t, promql, 'count(up == 1)', (r) => r[0]?.value[1] === '9', 30_000, 'all nine targets scraped');
  const healthySince = Date.now();
  const rules = alertRules();

  // While all is well: Prometheus evaluates every rule without error, and every dashboard query returns data.
  const evaluated = ((await getJson(`${prometheus.url}/api/v1/rules`)).data.groups as { rules: { name: string; health: string; lastError?: string }[] }[]).flatMap((g) => g.rules);
  t.deepEqual(evaluated.map((r) => `${r.name}: ${r.health}${r.lastError ? ` (${r.lastError})` : ''}`).sort(), rules.map((r) => `${r.alert}: ok`).sort());
  await Promise.all(
    dashboardQueries().map(({ panel, expr }) => {
      const sent = asGrafanaSends(expr, FUNCTIONS, RATE_INTERVAL);
      // Where it filters by function, every function (Knative's control plane names it kn_service_name, or only
      // in its revisions' names); rates need a second scrape.
      const isOf = (f: string, { metric }: Sample) => metric.service === f || metric.kn_service_name === f || metric.kn_revision_name?.startsWith(`${f}-`);
      const everyFunction = (r: Sample[]) => !expr.includes('$service') || FUNCTIONS.every((f) => r.some((s) => isOf(f, s)));
      return waitFor(t, promql, sent, (r) => r.length > 0 && everyFunction(r), 15_000, `${panel}: data`);
    }),
  );
  const variable = (dashboard().templating.list as { name: string; definition?: string }[]).find((v) => v.name === 'service')!;
  t.is(variable.definition, 'label_values(http_server_request_duration_seconds_count, service)');
  const services = await getJson(`${prometheus.url}/api/v1/label/service/values?match[]=http_server_request_duration_seconds_count`);
  t.deepEqual(services.data, FUNCTIONS, 'the Function variable offers the three functions');

  // The backup alert follows the CronJob's state as kube-state-metrics would show it.
  const backupAlert = rules.find((r) => r.alert === 'PostgresBackupStale')!.expr;
  const monthOld = now() - 30 * 24 * HOUR;
  await waitFor(t, promql, backupAlert, (r) => r.length > 0, 15_000, 'PostgresBackupStale true 27 h after the last run');
  kubeStateMetrics.setCronJob({ createdAt: monthOld, lastSuccessAt: now() - HOUR });
  await waitFor(t, promql, backupAlert, (r) => r.length === 0, 15_000, 'PostgresBackupStale false after a run an hour ago');
  kubeStateMetrics.setCronJob({ createdAt: monthOld });
  await waitFor(t, promql, backupAlert, (r) => r.length > 0, 15_000, 'PostgresBackupStale true for a CronJob that never succeeded in 30 days');
  kubeStateMetrics.setCronJob({ createdAt: now() - HOUR });
  await waitFor(t, promql, backupAlert, (r) => r.length === 0, 15_000, 'PostgresBackupStale false for a CronJob made an hour ago');
  kubeStateMetrics.setCronJob({ createdAt: monthOld, lastSuccessAt: now() - 27 * HOUR });

  // The slowest case for the database alert: its 30 s window holds at least 15 s of answered pings when Postgres stops.
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, healthySince + 16_000 - Date.now())));

  // Everything fails at once: Pixabay answers errors to searches not asked before, and Postgres stops.
  pixabay.setBehaviour('server-error');
  let search = 0;
  const failing = setInterval(() => void fetch(`${imageProxy.url}/api/images?q=failing${search++}`).then((r) => r.arrayBuffer(), () => undefined), 200);
  t.teardown(() => clearInterval(failing));
  const databaseAlert = rules.find((r) => r.alert === 'PingpongDatabaseUnavailable')!;
  t.deepEqual(await promql(databaseAlert.expr), [], 'PingpongDatabaseUnavailable false while Postgres answers');
  const stoppedAt = Date.now();
  await db.stop();
  await waitFor(t, promql, databaseAlert.expr, (r) => r.length > 0, 60_000, 'PingpongDatabaseUnavailable true within a minute of Postgres stopping');
  t.log(`PingpongDatabaseUnavailable's expression turned true ${seconds(Date.now() - stoppedAt)} after Postgres stopped`);

  // Every alert's expression returns the alert it should.
  const expected: Record<string, Record<string, string>[]> = {
    PingpongDatabaseUnavailable: [{ service: 'pingpong' }],
    LogOutputCannotReachPingpong: [{ service: 'log-output' }],
    ImageProxyUpstreamFailing: [{ service: 'image-proxy' }],
    FunctionErrorRateHigh: FUNCTIONS.map((service) => ({ service })),
    PostgresBackupStale: [{ namespace: 'exercises', cronjob: 'postgres-backup' }],
  };
  t.deepEqual(rules.map((r) => r.alert).sort(), Object.keys(expected).sort());
  await Promise.all(
    rules.map(async (rule) => {
      const want = expected[rule.alert]!;
      const result = await waitFor(t, promql, rule.expr, (r) => r.length >= want.length, 30_000, `${rule.alert} returns data while its failure lasts`);
      t.deepEqual(result.map((s) => s.metric).sort(byJson), want.sort(byJson), rule.alert);
    }),
  );

  // Postgres comes back: the database alert's expression turns false, and pings are counted again.
  const restartedAt = Date.now();
  await db.start();
  await waitFor(t, promql, databaseAlert.expr, (r) => r.length === 0, 60_000, 'PingpongDatabaseUnavailable false once Postgres is back');
  t.log(`PingpongDatabaseUnavailable's expression turned false ${seconds(Date.now() - restartedAt)} after Postgres was back`);
  t.is((await fetch(`${pingpong.url}/pingpong`)).status, 200, 'pingpong counts again');
});

/** An instant query through Prometheus's HTTP API; a query that is not valid PromQL throws with Prometheus's reason. */
async function query(prometheus: string, expr: string): Promise<Sample[]> {
  const response = await fetch(`${prometheus}/api/v1/query`, { method: 'POST', body: new URLSearchParams({ query: expr }) });
  const body = (await response.json()) as { status: string; error?: string; data: { result: Sample[] } };
  if (body.status !== 'success') throw new Error(`Prometheus refused ${expr}: ${body.error}`);
  return body.data.result;
}

/** Polls `expr` every 250 ms until `done` says so; fails the test (naming `what`) after `ms`. */
async function waitFor(
  t: ExecutionContext,
  promql: (expr: string) => Promise<Sample[]>,
  expr: string,
  done: (result: Sample[]) => boolean,
  ms: number,
  what: string,
): Promise<Sample[]> {
  const giveUpAt = Date.now() + ms;
  for (;;) {
    const result = await promql(expr);
    if (done(result)) return result;
    if (Date.now() > giveUpAt) {
      t.fail(`not ${what} after ${seconds(ms)}; ${expr} gave ${JSON.stringify(result)}`);
      return result;
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

async function getJson(url: string): Promise<{ data: any }> {
  return (await (await fetch(url)).json()) as { data: any };
}

const byJson = (a: object, b: object) => JSON.stringify(a).localeCompare(JSON.stringify(b));
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
