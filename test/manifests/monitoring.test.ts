/**
 * monitoring/, offline: what `kubectl apply -k monitoring/` makes, against prometheus-operator's CRDs and
 * Kubernetes's schemas; the PodMonitor against the pods Knative makes; the dashboard ConfigMap against its
 * JSON; the alert rules under promtool, with the unit tests beside them. (test/integration/prometheus.test.ts
 * runs every expression on a real Prometheus.)
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { parse, stringify } from 'yaml';
import { alertRulesText, RULES_FILE_NAME } from '../../scripts/prometheus';
import { KNATIVE_CONTROL_PLANE_PODS, KNATIVE_METRICS, KNATIVE_NAMESPACE, sampleNames, type KnativeComponent } from '../helpers/cluster-metrics';
import { assertCaught, isKnativeService, loadManifests, manifestTest, NAMESPACE, podTemplates, renderKustomization, schemaProblems, type Obj } from '../helpers/manifests';
import {
  alertRules, dashboard, dashboardQueries, DASHBOARD_FILE, knativeMonitorProblems, knativePodLabels, KNATIVE_OBSERVABILITY, OBSERVABILITY_PATCH, podMonitorProblems, RULE_TESTS_FILE, ruleTests,
  type KnativeMonitorExpectation,
} from '../helpers/monitoring';
import { tempDir } from '../helpers/temp';
import { testNeeding } from '../helpers/tools';

const manifests = loadManifests();
const knativeServices = manifests.filter((m) => isKnativeService(m.doc)).map((m) => String(m.doc.metadata.name));
/** What monitoring/ makes in production (which deploys it, so every manifest test sees it too). */
const monitoring = () => manifests.filter((m) => m.file.startsWith('monitoring/'));
/** What `kubectl apply -k monitoring/knative` makes, by hand once per cluster (no environment deploys it), with monitoring/'s. */
const monitors = () => [...monitoring(), ...renderKustomization('monitoring/knative')];
const withPromtool = testNeeding(['promtool'], 'apt-get install prometheus (it brings promtool)');

/** The object of this kind and name; the functions' by default (there is one PrometheusRule, one ConfigMap and one PodMonitor of theirs). */
const object = (kind: string, objects = monitors(), name = 'functions') => objects.find((m) => m.doc.kind === kind && (kind === 'ConfigMap' || m.doc.metadata.name === name))!;
/** The rendered objects with `change` made to the one of this kind and name. */
const after = (kind: string, change: (doc: Obj) => void, name = 'functions') => {
  const copy = structuredClone(monitors());
  change(object(kind, copy, name).doc);
  return copy;
};

manifestTest('kubectl apply -k monitoring/ makes the PodMonitors, the PrometheusRule and the dashboard, and monitoring/knative the control plane\'s PodMonitors, each valid against its schema', (t) => {
  const made = (dir: string) => renderKustomization(dir).map(({ doc }) => `${doc.metadata.namespace}/${doc.kind}/${doc.metadata.name}`).sort();
  t.deepEqual(made('monitoring'), ['exercises/ConfigMap/functions-dashboard', 'exercises/PodMonitor/functions', 'exercises/PodMonitor/queue-proxy', 'exercises/PrometheusRule/functions']);
  t.deepEqual(made('monitoring/knative'), ['knative-serving/PodMonitor/activator', 'knative-serving/PodMonitor/autoscaler']);
  t.deepEqual(monitoring().map(({ doc }) => `${doc.metadata.namespace}/${doc.kind}/${doc.metadata.name}`).sort(), made('monitoring'), 'production deploys monitoring/ whole');
  t.deepEqual(monitors().flatMap(schemaProblems), []);
});

manifestTest('a misspelt field or a malformed duration in the PodMonitor or the PrometheusRule is caught', (t) => {
  const problems = (kind: string, change: (doc: Obj) => void) => after(kind, change).flatMap(schemaProblems);
  assertCaught(t, problems('PodMonitor', (doc) => (doc.spec.podMetricsEndpoint = doc.spec.podMetricsEndpoints)), /PodMonitor\/functions: \/spec\/podMetricsEndpoint: unknown field/);
  assertCaught(t, problems('PodMonitor', (doc) => (doc.spec.podMetricsEndpoints[0].interval = '10 s')), /podMetricsEndpoints\/0\/interval: must match pattern/);
  assertCaught(t, problems('PodMonitor', (doc) => (doc.spec.podMetricsEndpoints[0].relabelings[0].source_labels = ['x'])), /relabelings\/0\/source_labels: unknown field/);
  assertCaught(t, problems('PrometheusRule', (doc) => (doc.spec.groups[0].rules[0].for = '1 minute')), /PrometheusRule\/functions: \/spec\/groups\/0\/rules\/0\/for: must match pattern/);
  assertCaught(t, problems('PrometheusRule', (doc) => (doc.spec.groups[0].rules[0].annotation = {})), /rules\/0\/annotation: unknown field/);
  assertCaught(t, problems('PrometheusRule', (doc) => (doc.metadata.name = 'Functions')), /\/metadata\/name: not a DNS subdomain/);
});

manifestTest('the dashboard ConfigMap holds the JSON file as it is, labelled for Grafana\'s sidecar, under a name that does not change with it', (t) => {
  const { doc } = object('ConfigMap');
  t.deepEqual(Object.keys(doc.data), ['functions-dashboard.json']);
  t.is(doc.data['functions-dashboard.json'], readFileSync(DASHBOARD_FILE, 'utf8'));
  t.deepEqual(doc.metadata.labels, { grafana_dashboard: '1' });
  t.is(doc.metadata.name, 'functions-dashboard');
});

manifestTest('the PodMonitor scrapes the pods Knative makes for every function, and no other, at user-port/metrics, labelled service', (t) => {
  const podMonitor = object('PodMonitor');
  t.deepEqual(podMonitorProblems(podMonitor, manifests), []);
  const problems = (change: (doc: Obj) => void) => podMonitorProblems(object('PodMonitor', after('PodMonitor', change)), manifests);
  // The label Knative's own Service manifests carry is not on the pods; the template's name is not either.
  assertCaught(t, problems((doc) => (doc.spec.selector = { matchLabels: { 'app.kubernetes.io/name': 'pingpong' } })), /does not select the pods Knative makes for pingpong/);
  // An empty selector selects every pod in the namespace.
  assertCaught(t, problems((doc) => (doc.spec.selector = {})), /also selects the pods of StatefulSet\/postgres/);
  assertCaught(t, problems((doc) => (doc.spec.podMetricsEndpoints[0].port = 'http')), /port: must be user-port/);
  assertCaught(t, problems((doc) => (doc.spec.podMetricsEndpoints[0].path = '/prometheus')), /path: the functions serve \/metrics/);
  assertCaught(t, problems((doc) => doc.spec.podMetricsEndpoints[0].relabelings.shift()), /relabelings: must copy the pod label serving\.knative\.dev\/service/);
  assertCaught(t, problems((doc) => (doc.spec.namespaceSelector = { matchNames: ['default'] })), /does not look in exercises/);
});

/** What each PodMonitor of Knative's metrics must do: scrape its pods on Knative's port, keep Knative's names and not our functions' histogram. */
function knativeMonitorExpectations(): Record<string, KnativeMonitorExpectation> {
  const services = manifests.filter((m) => isKnativeService(m.doc));
  const ownDrops = sampleNames({ name: 'http_server_request_duration_seconds', type: 'histogram' });
  const knativeNames = (component: KnativeComponent) => KNATIVE_METRICS.filter((m) => m.component === component && m.name.startsWith('kn_')).flatMap(sampleNames);
  const controlPlane = (name: string) => ({
    pods: [KNATIVE_CONTROL_PLANE_PODS[name]!.labels],
    otherPods: Object.entries(KNATIVE_CONTROL_PLANE_PODS).filter(([other]) => other !== name).map(([other, { labels }]) => ({ name: other, labels })),
    namespace: KNATIVE_NAMESPACE,
    port: 'metrics',
    labelsRevision: false,
  });
  return {
    'queue-proxy': {
      pods: services.map((service) => knativePodLabels(service.doc)),
      otherPods: manifests.filter((m) => !isKnativeService(m.doc)).flatMap((m) => podTemplates(m.doc).map((pod) => ({ name: `${m.doc.kind}/${m.doc.metadata.name}`, labels: pod.labels }))),
      namespace: NAMESPACE,
      port: 'http-usermetric',
      keeps: knativeNames('queue-proxy'),
      // Under the service label the relabelling adds, queue-proxy's would be counted as our functions' own requests.
      drops: ownDrops,
      labelsRevision: true,
    },
    // The activator's request histogram shares our name but not our service label; it is how long requests took through it.
    activator: { ...controlPlane('activator'), keeps: [...knativeNames('activator'), ...ownDrops], drops: ['go_memory_used_bytes', 'target_info'] },
    autoscaler: { ...controlPlane('autoscaler'), keeps: knativeNames('autoscaler'), drops: ['go_memory_used_bytes', ...ownDrops] },
  };
}

manifestTest("the PodMonitors of Knative's metrics: queue-proxy's beside every function, labelled as the functions are, and the activator's and autoscaler's in knative-serving", (t) => {
  const expectations = knativeMonitorExpectations();
  t.deepEqual(Object.keys(expectations).flatMap((name) => knativeMonitorProblems(object('PodMonitor', monitors(), name), expectations[name]!)), []);
  const problems = (name: string, change: (doc: Obj) => void) => knativeMonitorProblems(object('PodMonitor', after('PodMonitor', change, name), name), expectations[name]!);
  // 9090 beside the function is the autoscaler's feed of request counts, not Prometheus's.
  assertCaught(t, problems('queue-proxy', (doc) => (doc.spec.podMetricsEndpoints[0].port = 'http-autometric')), /port: must be http-usermetric/);
  assertCaught(t, problems('queue-proxy', (doc) => delete doc.spec.podMetricsEndpoints[0].metricRelabelings), /metricRelabelings: keeps http_server_request_duration_seconds_bucket/);
  assertCaught(t, problems('queue-proxy', (doc) => (doc.spec.podMetricsEndpoints[0].metricRelabelings[0].regex = 'kn_serving_.*_bucket')), /metricRelabelings: drops kn_serving_invocation_duration_seconds_sum/);
  assertCaught(t, problems('queue-proxy', (doc) => doc.spec.podMetricsEndpoints[0].relabelings.splice(1, 1)), /relabelings: must copy the pod labels/);
  assertCaught(t, problems('queue-proxy', (doc) => (doc.spec.selector = {})), /also selects the pods of StatefulSet\/postgres/);
  assertCaught(t, problems('activator', (doc) => (doc.spec.selector.matchLabels = { 'app.kubernetes.io/name': 'knative-serving' })), /also selects the pods of autoscaler/);
  assertCaught(t, problems('activator', (doc) => (doc.spec.podMetricsEndpoints[0].metricRelabelings[0].regex = 'kn_.*')), /drops http_server_request_duration_seconds_bucket/);
  assertCaught(t, problems('autoscaler', (doc) => (doc.spec.selector.matchLabels.app = 'autoscaler-hpa')), /does not select the pods .*"app":"autoscaler"/);
  assertCaught(t, problems('autoscaler', (doc) => (doc.spec.namespaceSelector = { matchNames: [NAMESPACE] })), /does not look in knative-serving/);
  // Applied with the functions' kustomization, it would look for Knative's pods among the functions'.
  assertCaught(t, problems('autoscaler', (doc) => (doc.metadata.namespace = NAMESPACE)), /does not look in knative-serving/);
});

manifestTest('the config-observability patch, applied as the docs say to the ConfigMap Knative installs, turns on the prometheus protocol for the control plane and queue-proxy, in keys Knative reads', (t) => {
  const patched = patchObservability(t, readFileSync(OBSERVABILITY_PATCH, 'utf8'));
  t.deepEqual(schemaProblems({ file: 'monitoring/knative/config-observability-patch.yaml', doc: patched }), []);
  const installed = parse(readFileSync(KNATIVE_OBSERVABILITY, 'utf8')) as Obj;
  const changed = Object.keys(patched.data).filter((key) => patched.data[key] !== installed.data[key]);
  t.deepEqual(changed.sort(), ['metrics-protocol', 'request-metrics-protocol']);
  t.is(patched.data['metrics-protocol'], 'prometheus');
  t.is(patched.data['request-metrics-protocol'], 'prometheus');
  t.is(patched.data._example, installed.data._example, 'Knative\'s example block is left as it is');
  t.deepEqual(observabilityProblems(patched), []);
  // A key misspelt is a key Knative never reads: nothing would turn on, and nothing would say so.
  const misspelt = patchObservability(t, 'data:\n  request-metric-protocol: prometheus\n');
  assertCaught(t, observabilityProblems(misspelt), /request-metric-protocol: not a key Knative reads/);
  assertCaught(t, observabilityProblems(patchObservability(t, 'data:\n  metrics-protocol: otlp\n')), /metrics-protocol: otlp is not one of none, prometheus, http\/protobuf, grpc/);
  assertCaught(t, observabilityProblems(patchObservability(t, 'data:\n  request-metrics-protocol: http/protobuf\n')), /request-metrics-endpoint: needed with http\/protobuf/);
});

/** `kubectl patch --local` of Knative's own config-observability with `patch`, as the docs' command applies it in the cluster. */
function patchObservability(t: ExecutionContext, patch: string): Obj {
  const file = path.join(tempDir(t, 'observability-'), 'patch.yaml');
  writeFileSync(file, patch);
  const run = spawnSync('kubectl', ['patch', '--local', '-f', KNATIVE_OBSERVABILITY, '--type', 'merge', '--patch-file', file, '-o', 'yaml'], { encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`kubectl patch --local failed: ${run.stderr}`);
  return parse(run.stdout) as Obj;
}

/**
 * What Knative would make of config-observability's metrics settings (knative.dev/pkg observability/metrics
 * config.go): the keys must be ones its example block documents, the protocols ones it knows, and OTLP needs an endpoint.
 */
function observabilityProblems(configMap: Obj): string[] {
  const known = new Set([...String(configMap.data._example).matchAll(/^ {0,4}([a-z][\w.-]*):/gm)].map((m) => m[1]!));
  const problems: string[] = [];
  for (const [key, value] of Object.entries(configMap.data as Record<string, string>)) {
    if (key !== '_example' && !known.has(key)) problems.push(`/data/${key}: not a key Knative reads`);
    if (key.endsWith('metrics-protocol')) {
      if (!['none', 'prometheus', 'http/protobuf', 'grpc'].includes(value)) problems.push(`/data/${key}: ${value} is not one of none, prometheus, http/protobuf, grpc`);
      const endpoint = key.replace('protocol', 'endpoint');
      if (['http/protobuf', 'grpc'].includes(value) && !configMap.data[endpoint]) problems.push(`/data/${endpoint}: needed with ${value}`);
      if (value === 'none' && configMap.data[endpoint]) problems.push(`/data/${endpoint}: must not be set with none`);
    }
  }
  return problems;
}

test('the alerts the issue names, each with a severity, a summary and a description, and promtool cases that see it fire and not fire', (t) => {
  const rules = alertRules();
  t.deepEqual(rules.map((r) => r.alert).sort(), ['FunctionErrorRateHigh', 'ImageProxyUpstreamFailing', 'LogOutputCannotReachPingpong', 'PingpongDatabaseUnavailable', 'PostgresBackupStale']);
  const cases = ((ruleTests().tests ?? []) as Obj[]).flatMap((group) => (group.alert_rule_test ?? []) as Obj[]);
  for (const rule of rules) {
    t.truthy(rule.labels?.severity, `${rule.alert} has no severity`);
    t.truthy(rule.annotations?.summary && rule.annotations.description, `${rule.alert} lacks a summary or a description`);
    const own = cases.filter((c) => c.alertname === rule.alert);
    t.true(own.some((c) => (c.exp_alerts ?? []).length > 0), `no case in which ${rule.alert} fires`);
    t.true(own.filter((c) => (c.exp_alerts ?? []).length === 0).length >= 2, `${rule.alert} needs cases in which it must not fire: before its for: and when all is well`);
  }
  // A function missing from the error-rate alert would never be reported.
  const errorRate = rules.find((r) => r.alert === 'FunctionErrorRateHigh')!.expr;
  for (const name of knativeServices) t.true(errorRate.includes(name), `FunctionErrorRateHigh leaves out ${name}`);
});

withPromtool('the alert rules pass promtool check rules, and their unit tests beside them pass promtool test rules', (t) => {
  const dir = rulesWithTests(t, readFileSync(RULE_TESTS_FILE, 'utf8'));
  const check = spawnSync('promtool', ['check', 'rules', path.join(dir, RULES_FILE_NAME)], { encoding: 'utf8' });
  t.is(check.status, 0, check.stdout + check.stderr);
  const run = spawnSync('promtool', ['test', 'rules', path.join(dir, 'alert-rules.test.yaml')], { encoding: 'utf8' });
  t.is(run.status, 0, run.stdout + run.stderr);
});

withPromtool('a rule test expecting what the rules do not do fails: the tests are really run', (t) => {
  const tests = ruleTests();
  const [first] = tests.tests as Obj[];
  const firing = (first!.alert_rule_test as Obj[]).find((c) => (c.exp_alerts ?? []).length > 0)!;
  firing.exp_alerts[0].exp_labels.severity = 'info';
  const dir = rulesWithTests(t, stringify({ ...tests, tests: [first] }));
  const run = spawnSync('promtool', ['test', 'rules', path.join(dir, 'alert-rules.test.yaml')], { encoding: 'utf8' });
  t.is(run.status, 1);
  t.regex(run.stdout + run.stderr, /FAILED[\s\S]*severity="critical"/);
});

test('the dashboard: its data source is a variable, as in kube-prometheus-stack\'s own, and it shows what the issue asks', (t) => {
  const board = dashboard();
  const variables = board.templating.list as Obj[];
  t.like(variables.find((v) => v.name === 'datasource'), { type: 'datasource', query: 'prometheus' });
  const panels = (board.panels as Obj[]).filter((p) => p.type !== 'row');
  for (const panel of panels) {
    t.deepEqual(panel.datasource, { type: 'prometheus', uid: '${datasource}' }, `${panel.title}'s data source`);
    for (const target of panel.targets as Obj[]) t.is(target.datasource?.uid, '${datasource}', `${panel.title}'s query ${target.refId}`);
  }
  t.is(new Set(board.panels.map((p: Obj) => p.id)).size, board.panels.length, 'panel ids are unique');
  for (const { panel, expr } of dashboardQueries(board)) {
    t.deepEqual(expr.match(/\$\w+/g)?.filter((v) => v !== '$service' && v !== '$__rate_interval') ?? [], [], `${panel}: a variable the dashboard does not define`);
  }
  const queried = dashboardQueries(board).map((q) => q.expr).join('\n');
  for (const metric of [
    'pingpong_pings_total', 'http_server_request_duration_seconds_bucket', 'http_response_status_code=~"5.."', 'pingpong_database_failures_total',
    'pingpong_statement_pings', 'image_proxy_pixabay_requests_total', 'image_proxy_cache_lookups_total', 'image_proxy_pixabay_rate_limit_remaining',
    'process_resident_memory_bytes', 'kube_cronjob_status_last_successful_time',
    // Knative's (issue 19): request time in the pod and through the activator, requests waiting there, pods desired and ready.
    'kn_serving_invocation_duration_seconds_bucket', 'http_server_request_duration_seconds_bucket{kn_service_name', 'kn_revision_request_queued',
    'kn_revision_pods_desired', 'kn_revision_pods_count', 'function_cold_start_duration_seconds',
  ]) {
    t.true(queried.includes(metric), `no panel shows ${metric}`);
  }
});

/** A temporary folder with the PrometheusRule's groups as a plain rules file, and `testsText` beside it. */
function rulesWithTests(t: ExecutionContext, testsText: string): string {
  const dir = tempDir(t, 'alert-rules-');
  writeFileSync(path.join(dir, RULES_FILE_NAME), alertRulesText());
  writeFileSync(path.join(dir, 'alert-rules.test.yaml'), testsText);
  return dir;
}
