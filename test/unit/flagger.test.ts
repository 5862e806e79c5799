/**
 * The tests' copy of how Flagger v1.44.0 fills in and judges a metric: its own test cases for RenderQuery
 * (pkg/metrics/observers/render_test.go), the model it builds for a Knative canary, and the reading of
 * Prometheus's answer in PrometheusProvider.RunQuery and runMetricChecks.
 */
import test from 'ava';
import { asFlaggerSends, judge, metricModel, renderQuery, type MetricModel, type Sample } from '../helpers/flagger';

const model = (fields: Partial<MetricModel>): MetricModel => ({ name: '', namespace: '', target: '', service: '', ingress: '', route: '', interval: '', variables: {}, ...fields });

test('queries are filled in as Flagger\'s own RenderQuery tests expect', (t) => {
  t.is(
    renderQuery('sum(envoy_cluster_upstream_rq{envoy_cluster_name=~"{{ namespace }}_{{ target }}"})', model({ name: 'standard', namespace: 'default', target: 'myapp', interval: '1m' })),
    'sum(envoy_cluster_upstream_rq{envoy_cluster_name=~"default_myapp"})',
  );
  const withVariables = 'delta(max by (consumer_group) (kafka_consumer_current_offset{cluster="{{ variables.cluster }}", consumer_group="{{ variables.consumer_group }}"}[{{ interval }}]))';
  t.is(
    renderQuery(withVariables, model({ name: 'kafka_consumer_offset', namespace: 'default', interval: '1m', variables: { cluster: 'dev', consumer_group: 'my_consumer' } })),
    'delta(max by (consumer_group) (kafka_consumer_current_offset{cluster="dev", consumer_group="my_consumer"}[1m]))',
  );
  t.throws(() => renderQuery(withVariables, model({ interval: '1m', variables: { invalid: 'dev', consumer_group: 'my_consumer' } })), { message: /no entry for key "cluster"/ });
});

test('a name Flagger does not define, or an action it would treat otherwise, is an error rather than a guess', (t) => {
  t.throws(() => renderQuery('up{revision="{{ revision }}"}', model({})), { message: /function "revision" not defined/ });
  t.throws(() => renderQuery('up{namespace="{{- namespace }}"}', model({ namespace: 'exercises' })), { message: /not one Flagger's queries here use/ });
});

test('for a Knative canary, route is the latest created revision; the interval is the metric\'s as written', (t) => {
  const canary = { metadata: { name: 'pingpong', namespace: 'exercises' }, spec: { provider: 'knative', targetRef: { name: 'pingpong' } } };
  t.deepEqual(metricModel(canary, { name: 'error-ratio', interval: '1m' }, 'pingpong-00007'), {
    name: 'pingpong', namespace: 'exercises', target: 'pingpong', service: 'pingpong', ingress: 'pingpong', route: 'pingpong-00007', interval: '1m', variables: {},
  });
  t.is(metricModel(canary, { name: 'error-ratio' }, 'pingpong-00007').interval, '');
  t.is(metricModel({ ...canary, spec: { ...canary.spec, provider: 'istio' } }, {}, 'pingpong-00007').route, 'pingpong');
});

const series = (value: string, revision = 'pingpong-00002'): Sample => ({ metric: { revision }, value: [1, value] });

test('Prometheus\'s answer is judged as Flagger judges it', (t) => {
  const max = { name: 'error-ratio', thresholdRange: { max: 0.05 } };
  t.like(judge('vector', [series('0.01')], max), { passed: true, value: 0.01 });
  t.like(judge('vector', [series('0.5')], max), { passed: false, value: 0.5, labels: { revision: 'pingpong-00002' }, reason: 'error-ratio 0.5 > 0.05' });
  // No series, or NaN (a quantile of nothing): "no values found", a failed check.
  t.like(judge('vector', [], max), { passed: false, reason: 'no values found' });
  t.like(judge('vector', [series('NaN')], max), { passed: false, reason: 'no values found' });
  t.like(judge('vector', [series('+Inf')], max), { passed: false, value: Infinity });
  // Several series: the last one's value counts.
  t.like(judge('vector', [series('0.9', 'a'), series('0.01', 'b')], max), { passed: true, value: 0.01, labels: { revision: 'b' } });
  t.like(judge('vector', [series('5')], { name: 'rate', thresholdRange: { min: 10 } }), { passed: false, reason: 'rate 5 < 10' });
  t.like(judge('vector', [series('5')], { name: 'old', threshold: 3 }), { passed: false, reason: 'old 5 > 3' });
  t.like(judge('matrix', [], max), { passed: false });
});

test('the query is sent with each run of whitespace made one space', (t) => {
  t.is(asFlaggerSends('sum(\n  rate(x[1m])\n)\n'), 'sum( rate(x[1m]) ) ');
});
