/**
 * Every metric name a query we ship uses (the dashboard, the alerts, Flagger's templates where there are
 * some, the docs' examples) is one that something exports: our functions, read from their real /metrics
 * after traffic, or Knative and the cluster's other exporters, from the one list of their current names
 * (test/helpers/cluster-metrics.ts). A name from before Knative 1.19, such as revision_app_request_count,
 * would draw a blank panel or an alert that never fires; here it fails.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { parse } from 'yaml';
import { projectRoot } from '../../functions/shared/config';
import { ALERT_RULES } from '../../scripts/prometheus';
import { clusterMetricNames } from '../helpers/cluster-metrics';
import { startFunction } from '../helpers/functions';
import { parseSamples, scrape } from '../helpers/metrics';
import { dashboard } from '../helpers/monitoring';
import { fakePixabay } from '../helpers/pixabay';
import { sharedTestPostgres } from '../helpers/postgres';
import { dashboardQueriesOf, markdownQueries, shippedQueries, unknownMetricNames, yamlQueries } from '../helpers/promql';

const postgres = sharedTestPostgres();
test.after.always(postgres.stop);

/** Old names, as Knative up to 1.18 (OpenCensus) exported them; gone since. */
const OPENCENSUS_NAMES = ['revision_app_request_count', 'revision_request_latencies_bucket', 'activator_request_count', 'autoscaler_desired_pods'];

/** Every sample name the three functions expose once they have served and been scraped (histograms' parts included). */
async function functionsMetricNames(t: ExecutionContext): Promise<Set<string>> {
  const db = await postgres.database(t);
  const pixabay = await fakePixabay(t);
  const pingpong = await startFunction(t, 'pingpong', { DATABASE_URL: db.url });
  const functions = [
    { fn: pingpong, paths: ['/pingpong', '/pongs'] },
    { fn: await startFunction(t, 'log-output', { PINGPONG_URL: pingpong.url, ENV_FILE: path.join(projectRoot, 'knative', 'log-output.env') }), paths: ['/'] },
    { fn: await startFunction(t, 'image-proxy', pixabay.env), paths: ['/api/images?q=sky'] },
  ];
  const names = new Set<string>();
  for (const { fn, paths } of functions) {
    for (const route of paths) await fetch(`${fn.url}${route}`).then((r) => r.arrayBuffer());
    await scrape(fn.url); // the process metrics start at the first scrape
    const text = await scrape(fn.url);
    for (const sample of parseSamples(text)) names.add(sample.name);
  }
  return names;
}

test("every metric a dashboard, alert or documented query uses is exported by our functions or is one of Knative's (or the cluster's) current names", async (t) => {
  const ours = await functionsMetricNames(t);
  const known = new Set([...ours, ...clusterMetricNames()]);
  const queries = shippedQueries();
  t.log(`${queries.length} queries in ${new Set(queries.map((q) => q.where.split(' ')[0])).size} files; ${ours.size} names from our /metrics, ${clusterMetricNames().size} from the list`);
  t.true(queries.length >= 30, 'the dashboard, the alerts and the docs hold at least 30 queries');
  t.deepEqual(unknownMetricNames(queries, known), []);

  // The same check, on the dashboard and the alerts with an OpenCensus-era name planted in each.
  const board = dashboard();
  board.panels.push({ type: 'timeseries', id: 999, title: 'Requests (Knative 1.18)', targets: [{ refId: 'A', expr: 'sum by (revision_name) (rate(revision_app_request_count{namespace_name="exercises"}[$__rate_interval]))' }] });
  t.deepEqual(unknownMetricNames(dashboardQueriesOf(board, 'functions-dashboard.json'), known), ['functions-dashboard.json panel "Requests (Knative 1.18)" A: revision_app_request_count']);
  const rules = parse(readFileSync(ALERT_RULES, 'utf8'));
  rules.spec.groups[0].rules[0].expr = 'histogram_quantile(0.99, sum by (le) (rate(revision_request_latencies_bucket[5m]))) > 1000';
  t.deepEqual(unknownMetricNames(yamlQueries(rules, 'alert-rules.yaml'), known), ['alert-rules.yaml PrometheusRule/functions PingpongDatabaseUnavailable: revision_request_latencies_bucket']);
  const docs = '```promql\n# activator\nsum({__name__="activator_request_count"})\n```\n';
  t.deepEqual(unknownMetricNames(markdownQueries(docs, 'monitoring.md'), known), ['monitoring.md promql block: activator_request_count']);
  for (const name of OPENCENSUS_NAMES) t.false(known.has(name), `${name} is gone since Knative 1.19`);
});
