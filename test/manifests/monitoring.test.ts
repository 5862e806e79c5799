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
import { assertCaught, isKnativeService, loadManifests, manifestTest, schemaProblems, type Obj } from '../helpers/manifests';
import { alertRules, dashboard, dashboardQueries, DASHBOARD_FILE, podMonitorProblems, RULE_TESTS_FILE, ruleTests } from '../helpers/monitoring';
import { tempDir } from '../helpers/temp';
import { testNeeding } from '../helpers/tools';

const manifests = loadManifests();
const knativeServices = manifests.filter((m) => isKnativeService(m.doc)).map((m) => String(m.doc.metadata.name));
/** What `kubectl apply -k monitoring/` makes (one of the DEPLOY_DIRS, so every manifest test sees it too). */
const monitoring = () => manifests.filter((m) => m.file.startsWith('monitoring/'));
const withPromtool = testNeeding(['promtool'], 'apt-get install prometheus (it brings promtool)');

const object = (kind: string, objects = monitoring()) => objects.find((m) => m.doc.kind === kind)!;
/** The rendered objects with `change` made to the one of this kind. */
const after = (kind: string, change: (doc: Obj) => void) => {
  const copy = structuredClone(monitoring());
  change(object(kind, copy).doc);
  return copy;
};

manifestTest('kubectl apply -k monitoring/ makes the PodMonitor, the PrometheusRule and the dashboard, each valid against its schema', (t) => {
  t.deepEqual(monitoring().map(({ doc }) => `${doc.kind}/${doc.metadata.name}`).sort(), ['ConfigMap/functions-dashboard', 'PodMonitor/functions', 'PrometheusRule/functions']);
  t.deepEqual(monitoring().flatMap(schemaProblems), []);
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
