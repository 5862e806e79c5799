import test from 'ava';
import { markdownQueries, metricNames, shippedQueries, unknownMetricNames, unquote, withVariablesFilled, yamlQueries } from '../helpers/promql';

test('the metric names a query selects, and nothing else that looks like a name', (t) => {
  t.deepEqual(metricNames('sum(rate(pingpong_pings_total[1m]))'), ['pingpong_pings_total']);
  t.deepEqual(
    metricNames('histogram_quantile(0.99, sum by (le, service) (rate(http_server_request_duration_seconds_bucket{service=~"a|b", le!="x"}[5m])))'),
    ['http_server_request_duration_seconds_bucket'],
    'functions, aggregations, grouping labels and matchers are not metrics',
  );
  t.deepEqual(metricNames('a / on (service) group_left (x) b offset 5m + ignoring (le) c @ 100 unless d[5m:1m] > bool 3'), ['a', 'b', 'c', 'd']);
  t.deepEqual(metricNames('time() - max(kube_cronjob_created) > 26 * 3600 or vector(0)'), ['kube_cronjob_created']);
  t.deepEqual(metricNames('label_replace(up, "service", "$1", "job", "(sum|rate|revision_app_request_count)")'), ['up'], 'strings are not names');
  t.deepEqual(metricNames('{__name__="kn_revision_pods_count", kn_service_name="x"} + {__name__=\'kn_revision_pods_desired\'}'), ['kn_revision_pods_count', 'kn_revision_pods_desired']);
  t.deepEqual(metricNames('{"kn.revision.pods.count", a="b"}'), ['kn.revision.pods.count'], "Prometheus 3's quoted names");
  t.deepEqual(metricNames('sum(x) + sum(x)'), ['x'], 'each once');
  t.deepEqual(metricNames('count(up == 1)'), ['up']);
  t.deepEqual(metricNames('1 + 2'), []);
});

test('a query that is not PromQL, or that picks names by a pattern, is refused rather than half read', (t) => {
  t.throws(() => metricNames('sum(rate(x[5m]) by (a'), { message: /not PromQL/ });
  t.throws(() => metricNames('rate(x[5m]'), { message: /not PromQL/ });
  t.throws(() => metricNames('sum(rate(x{a="b}[5m]))'), { message: /not PromQL/ });
  t.throws(() => metricNames('{__name__=~"revision_.*"}'), { message: /by a pattern/ });
  t.throws(() => metricNames('{__name__!="x", job="y"}'), { message: /by a pattern/ });
});

test('string literals as PromQL reads them', (t) => {
  t.is(unquote('"a\\"b\\n"'), 'a"b\n');
  t.is(unquote("'it\\'s'"), "it's");
  t.is(unquote('`raw\\n`'), 'raw\\n');
  t.is(unquote('"\\x41\\u00e9"'), 'Aé');
  t.is(unquote('__name__'), '__name__');
});

test("Grafana's and Flagger's variables are filled in as they would be, so that the query parses", (t) => {
  t.is(withVariablesFilled('rate(x{service=~"$service"}[$__rate_interval])'), 'rate(x{service=~"variable"}[1m])');
  t.is(withVariablesFilled('x{a="${service:regex}", b=~"($service)-[0-9]+"}[${__interval}]'), 'x{a="variable", b=~"(variable)-[0-9]+"}[1m]');
  t.is(withVariablesFilled('rate(x{namespace="{{ namespace }}", service="{{target}}"}[{{ interval }}]) > {{ variables.limit }}'), 'rate(x{namespace="variable", service="variable"}[1m]) > 1');
  t.is(withVariablesFilled('topk($count, x{a=\'$b\'})'), "topk(1, x{a='variable'})");
  t.deepEqual(metricNames(withVariablesFilled('sum(rate(x{a="$b"}[$__rate_interval])) / {{ variables.limit }}')), ['x']);
});

test('queries are found in rules, templates, canaries, promtool tests and the docs', (t) => {
  const rule = { apiVersion: 'monitoring.coreos.com/v1', kind: 'PrometheusRule', metadata: { name: 'r' }, spec: { groups: [{ rules: [{ alert: 'A', expr: 'a > 1' }, { record: 'b:rate', expr: 'rate(b[5m])' }] }] } };
  t.deepEqual(yamlQueries(rule, 'f.yaml').map((q) => q.expr), ['a > 1', 'rate(b[5m])']);
  t.deepEqual(yamlQueries({ groups: [{ rules: [{ alert: 'A', expr: 'c' }] }] }, 'rules.yaml').map((q) => q.expr), ['c']);
  const template = { apiVersion: 'flagger.app/v1beta1', kind: 'MetricTemplate', metadata: { name: 'm' }, spec: { provider: { type: 'prometheus' }, query: 'sum(d)' } };
  t.deepEqual(yamlQueries(template, 'f.yaml'), [{ where: 'f.yaml MetricTemplate/m', expr: 'sum(d)' }]);
  t.deepEqual(yamlQueries({ kind: 'Canary', metadata: { name: 'c' }, spec: { analysis: { metrics: [{ name: 'e', query: 'e' }, { name: 'request-success-rate' }] } } }, 'f.yaml').map((q) => q.expr), ['e']);
  t.deepEqual(yamlQueries({ rule_files: ['x'], tests: [{ name: 't', promql_expr_test: [{ expr: 'f' }] }] }, 'x.test.yaml').map((q) => q.expr), ['f']);
  t.deepEqual(yamlQueries({ apiVersion: 'v1', kind: 'ConfigMap', data: { expr: 'g' } }, 'f.yaml'), []);
  const doc = 'Text\n\n```promql\n# one\nsum(a)\n\n# two, on two lines\nsum(b)\n  / sum(c)\n```\n\n```sh\nsum(d)\n```\n';
  t.deepEqual(markdownQueries(doc, 'd.md').map((q) => q.expr), ['sum(a)', 'sum(b)\n  / sum(c)']);
});

test('a name nobody exports is reported where it is used; an expression that does not parse too', (t) => {
  const known = new Set(['a', 'b']);
  t.deepEqual(unknownMetricNames([{ where: 'w', expr: 'a + b' }], known), []);
  t.deepEqual(unknownMetricNames([{ where: 'panel "X" A', expr: 'sum(rate(revision_app_request_count[$__rate_interval])) + a' }], known), ['panel "X" A: revision_app_request_count']);
  t.deepEqual(unknownMetricNames([{ where: 'w', expr: 'sum(a' }], known).length, 1);
});

test('the queries we ship include every dashboard panel, every alert and the docs', (t) => {
  const wheres = shippedQueries().map((q) => q.where);
  t.true(wheres.some((w) => w.startsWith('monitoring/functions-dashboard.json panel "Cold start per revision"')));
  t.true(wheres.some((w) => w.startsWith('monitoring/functions-dashboard.json variable "service"')));
  t.true(wheres.some((w) => w.startsWith('monitoring/alert-rules.yaml PrometheusRule/functions PostgresBackupStale')));
  t.true(wheres.some((w) => w.startsWith('docs/monitoring.md promql block')));
});
