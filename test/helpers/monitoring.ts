/**
 * monitoring/ read for the tests: the alert rules, the dashboard's queries, and what the PodMonitor would
 * scrape among the pods Knative makes for our Services.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { projectRoot } from '../../functions/shared/config';
import { ALERT_RULES } from '../../scripts/prometheus';
import { isKnativeService, podTemplates, type Manifest, type Obj } from './manifests';

export const MONITORING_DIR = path.join(projectRoot, 'monitoring');
export const DASHBOARD_FILE = path.join(MONITORING_DIR, 'functions-dashboard.json');
export const RULE_TESTS_FILE = path.join(MONITORING_DIR, 'alert-rules.test.yaml');
/** The merge patch that turns Knative's metrics on, and the ConfigMap of Knative's release it patches. */
export const OBSERVABILITY_PATCH = path.join(MONITORING_DIR, 'knative', 'config-observability-patch.yaml');
export const KNATIVE_OBSERVABILITY = path.join(projectRoot, 'test', 'schemas', 'knative-config-observability.yaml');

export interface AlertRule {
  alert: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

/** Every alerting rule of the PrometheusRule, in order. */
export function alertRules(): AlertRule[] {
  const rule = parse(readFileSync(ALERT_RULES, 'utf8')) as Obj;
  return (rule.spec.groups as Obj[]).flatMap((group) => (group.rules as Obj[]).filter((r) => r.alert)) as AlertRule[];
}

/** The promtool test file, parsed. */
export function ruleTests(): Obj {
  return parse(readFileSync(RULE_TESTS_FILE, 'utf8')) as Obj;
}

export function dashboard(): Obj {
  return JSON.parse(readFileSync(DASHBOARD_FILE, 'utf8')) as Obj;
}

export interface DashboardQuery {
  panel: string;
  expr: string;
}

/** Every query of every panel, rows included. */
export function dashboardQueries(board = dashboard()): DashboardQuery[] {
  const panels = (board.panels as Obj[]).flatMap((panel) => [panel, ...((panel.panels ?? []) as Obj[])]);
  return panels.flatMap((panel) => ((panel.targets ?? []) as Obj[]).map((target) => ({ panel: String(panel.title), expr: String(target.expr) })));
}

/**
 * A query as Grafana sends it: `$service` with All selected becomes the alternation of `services`, and
 * `$__rate_interval` the window given (Grafana's is four scrape intervals or more).
 */
export function asGrafanaSends(expr: string, services: string[], rateInterval: string): string {
  return expr.replaceAll('$__rate_interval', rateInterval).replaceAll('$service', services.join('|'));
}

/**
 * Labels Knative puts on the pods of a Knative Service's revision number `generation`, the first unless said
 * (knative.dev/serving, pkg/reconciler/revision/resources/meta.go).
 */
export function knativePodLabels(service: Obj, generation = 1): Record<string, string> {
  const name = String(service.metadata?.name);
  const revision = `${name}-${String(generation).padStart(5, '0')}`;
  return {
    ...(service.spec?.template?.metadata?.labels ?? {}),
    'serving.knative.dev/service': name,
    'serving.knative.dev/configuration': name,
    'serving.knative.dev/configurationGeneration': String(generation),
    'serving.knative.dev/revision': revision,
    'serving.knative.dev/revisionUID': '00000000-0000-0000-0000-000000000001',
    app: revision,
  };
}

/** Whether a Kubernetes label selector (matchLabels and matchExpressions) selects `labels`. */
export function selectorMatches(selector: Obj | undefined, labels: Record<string, string>): boolean {
  if (!selector) return false;
  const byLabel = Object.entries((selector.matchLabels ?? {}) as Record<string, string>).every(([key, value]) => labels[key] === value);
  const byExpression = ((selector.matchExpressions ?? []) as Obj[]).every(({ key, operator, values = [] }) => {
    const present = Object.hasOwn(labels, key);
    if (operator === 'Exists') return present;
    if (operator === 'DoesNotExist') return !present;
    if (operator === 'In') return present && values.includes(labels[key]);
    if (operator === 'NotIn') return !present || !values.includes(labels[key]);
    throw new Error(`unknown selector operator ${operator}`);
  });
  return byLabel && byExpression;
}

/**
 * What is wrong with a PodMonitor for our functions: it must scrape the pods Knative makes for every
 * Knative Service in `manifests` and no other pod, in their namespace, on the port Knative names
 * `user-port`, at /metrics, and label each target `service` with the Knative Service's name.
 */
export function podMonitorProblems(podMonitor: Manifest, manifests: Manifest[]): string[] {
  const { doc } = podMonitor;
  const problems: string[] = [];
  const report = (at: string, message: string) => problems.push(`${podMonitor.file} PodMonitor/${doc.metadata?.name}: ${at}: ${message}`);
  const selector = doc.spec?.selector;
  for (const service of manifests.filter((m) => isKnativeService(m.doc))) {
    const name = service.doc.metadata?.name;
    if (!selectorMatches(selector, knativePodLabels(service.doc))) report('/spec/selector', `does not select the pods Knative makes for ${name}`);
    const namespaces = doc.spec?.namespaceSelector;
    const watched = namespaces?.any === true || (namespaces?.matchNames ?? [doc.metadata?.namespace]).includes(service.doc.metadata?.namespace);
    if (!watched) report('/spec/namespaceSelector', `does not look in ${service.doc.metadata?.namespace}, where ${name} runs`);
  }
  for (const other of manifests.filter((m) => !isKnativeService(m.doc))) {
    for (const pod of podTemplates(other.doc)) {
      if (selectorMatches(selector, pod.labels)) report('/spec/selector', `also selects the pods of ${other.doc.kind}/${other.doc.metadata?.name}, which serve no /metrics`);
    }
  }
  const endpoints = (doc.spec?.podMetricsEndpoints ?? []) as Obj[];
  if (endpoints.length !== 1) report('/spec/podMetricsEndpoints', `one endpoint, the function's port; found ${endpoints.length}`);
  endpoints.forEach((endpoint, i) => {
    const at = `/spec/podMetricsEndpoints/${i}`;
    if (endpoint.port !== 'user-port') report(`${at}/port`, `must be user-port, the name Knative gives the function's port in its pods; got ${endpoint.port}`);
    if ((endpoint.path ?? '/metrics') !== '/metrics') report(`${at}/path`, `the functions serve /metrics, not ${endpoint.path}`);
    const labelsService = ((endpoint.relabelings ?? []) as Obj[]).some(
      (r) => r.targetLabel === 'service' && (r.action ?? 'replace') === 'replace' && (r.sourceLabels ?? []).join() === '__meta_kubernetes_pod_label_serving_knative_dev_service',
    );
    if (!labelsService) report(`${at}/relabelings`, 'must copy the pod label serving.knative.dev/service to the target label service');
  });
  return problems;
}

/** The names of `names` that an endpoint's metricRelabelings let through, as Prometheus applies `keep` and `drop` to `__name__`. */
export function keptNames(endpoint: Obj, names: readonly string[]): string[] {
  const rules = ((endpoint.metricRelabelings ?? []) as Obj[]).filter((r) => (r.sourceLabels ?? []).join() === '__name__');
  return names.filter((name) =>
    rules.every((rule) => {
      // Prometheus anchors relabelling regexes at both ends; its default regex is (.*).
      const matches = new RegExp(`^(?:${rule.regex ?? '(.*)'})$`).test(name);
      return rule.action === 'keep' ? matches : rule.action === 'drop' ? !matches : true;
    }),
  );
}

export interface KnativeMonitorExpectation {
  /** The pods it must scrape, by their labels, and the pods (by name) it must leave alone. */
  pods: Record<string, string>[];
  otherPods: { name: string; labels: Record<string, string> }[];
  /** The namespace those pods live in. */
  namespace: string;
  port: string;
  /** Sample names it must keep, and those it must drop. */
  keeps: readonly string[];
  drops: readonly string[];
  /** Whether it must label each target service and revision from the pod's Knative labels, as the functions' PodMonitor does. */
  labelsRevision: boolean;
}

/** What is wrong with a PodMonitor of Knative's metrics (queue-proxy's, the activator's, the autoscaler's) against what it must do. */
export function knativeMonitorProblems(podMonitor: Manifest, expected: KnativeMonitorExpectation): string[] {
  const { doc } = podMonitor;
  const problems: string[] = [];
  const report = (at: string, message: string) => problems.push(`${podMonitor.file} PodMonitor/${doc.metadata?.name}: ${at}: ${message}`);
  const selector = doc.spec?.selector;
  if (!expected.pods.every((labels) => selectorMatches(selector, labels))) report('/spec/selector', `does not select the pods ${JSON.stringify(expected.pods[0])}`);
  for (const other of expected.otherPods) if (selectorMatches(selector, other.labels)) report('/spec/selector', `also selects the pods of ${other.name}`);
  const namespaces = doc.spec?.namespaceSelector;
  const watched = namespaces?.any === true || (namespaces?.matchNames ?? [doc.metadata?.namespace]).includes(expected.namespace);
  if (!watched) report('/spec/namespaceSelector', `does not look in ${expected.namespace}, where those pods run`);
  const endpoints = (doc.spec?.podMetricsEndpoints ?? []) as Obj[];
  if (endpoints.length !== 1) report('/spec/podMetricsEndpoints', `one endpoint; found ${endpoints.length}`);
  endpoints.forEach((endpoint, i) => {
    const at = `/spec/podMetricsEndpoints/${i}`;
    if (endpoint.port !== expected.port) report(`${at}/port`, `must be ${expected.port}; got ${endpoint.port}`);
    if ((endpoint.path ?? '/metrics') !== '/metrics') report(`${at}/path`, `Knative serves /metrics, not ${endpoint.path}`);
    const kept = keptNames(endpoint, [...expected.keeps, ...expected.drops]);
    const lost = expected.keeps.filter((name) => !kept.includes(name));
    const leaked = expected.drops.filter((name) => kept.includes(name));
    if (lost.length) report(`${at}/metricRelabelings`, `drops ${lost.join(', ')}`);
    if (leaked.length) report(`${at}/metricRelabelings`, `keeps ${leaked.join(', ')}`);
    const copies = (label: string, target: string) =>
      ((endpoint.relabelings ?? []) as Obj[]).some((r) => r.targetLabel === target && (r.action ?? 'replace') === 'replace' && (r.sourceLabels ?? []).join() === `__meta_kubernetes_pod_label_${label}`);
    if (expected.labelsRevision && !(copies('serving_knative_dev_service', 'service') && copies('serving_knative_dev_revision', 'revision'))) {
      report(`${at}/relabelings`, 'must copy the pod labels serving.knative.dev/service and /revision to service and revision');
    }
  });
  return problems;
}
