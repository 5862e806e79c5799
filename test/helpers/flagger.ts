/**
 * Flagger v1.44.0, as far as the tests need it, read from its source (github.com/fluxcd/flagger at v1.44.0):
 * what it writes into the Knative Services it drives, how it fills a MetricTemplate's query, and how it
 * judges the number Prometheus answers; and the rules our Canaries and MetricTemplates follow.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { projectRoot } from '../../functions/shared/config';
import { isKnativeService, label, ROLLOUT_DURATION, scaleBounds, type Manifest, type Obj } from './manifests';
import { parseQuantity } from './resources';

/**
 * The fields of a Knative Service that Flagger writes while a Canary drives it, in the shape of Argo CD's
 * `ignoreDifferences`: `.spec.traffic` (the primary revision against `latestRevision`, pkg/router/knative.go
 * SetRoutes and pkg/canary/knative_controller.go Initialize) and the annotation naming the primary revision
 * (the same files, and Promote). A GitOps tool that syncs the Service must leave exactly these alone, or it
 * undoes every step. The annotation's `/` is `~1` in a JSON pointer.
 */
export const FLAGGER_WRITES = [
  { group: 'serving.knative.dev', kind: 'Service', jsonPointers: ['/spec/traffic', '/metadata/annotations/flagger.app~1primary-revision'] },
] as const;

/** Where the canary Component lives: production includes it (environments/production/kustomization.yaml). */
export const CANARY_COMPONENT = 'environments/production/canary';

/**
 * What Flagger would refuse, or do other than we mean, in the Canaries and MetricTemplates beyond their
 * CRDs: Flagger's own rules for a Knative target, references, every template metric's interval, thresholds
 * that follow from the manifests, load that never counts, and no second controller of the traffic.
 */
export function canaryProblems(manifests: Manifest[]): string[] {
  const problems: string[] = [];
  const report = (manifest: Manifest, at: string, message: string) => problems.push(`${label(manifest)}: ${at}: ${message}`);
  const kind = (k: string) => manifests.filter((m) => m.doc.apiVersion === 'flagger.app/v1beta1' && m.doc.kind === k);
  const templates = kind('MetricTemplate');
  const services = manifests.filter((m) => isKnativeService(m.doc));

  for (const canary of kind('Canary')) {
    const { spec, metadata } = canary.doc;
    const namespace = metadata.namespace;
    // pkg/controller/controller.go, verifyKnativeCanary.
    if (spec.provider !== 'knative') report(canary, '/spec/provider', 'must be knative: Flagger drives a Knative Service\'s traffic only with its Knative provider');
    if (spec.targetRef?.apiVersion !== 'serving.knative.dev/v1' || spec.targetRef?.kind !== 'Service') report(canary, '/spec/targetRef', 'the knative provider needs a serving.knative.dev/v1 Service');
    if (spec.autoscalerRef) report(canary, '/spec/autoscalerRef', 'not allowed with the knative provider: Knative scales the revisions');
    const target = String(spec.targetRef?.name);
    const service = services.find((s) => s.doc.metadata.name === target && s.doc.metadata.namespace === namespace);
    if (!service) report(canary, '/spec/targetRef/name', `no Knative Service ${target} in ${namespace}`);
    if (service?.doc.metadata.annotations?.[ROLLOUT_DURATION] !== undefined) {
      report(service, `/metadata/annotations/${ROLLOUT_DURATION}`, `Canary/${metadata.name} moves this Service's traffic; Knative's own gradual rollout would move it too (${CANARY_COMPONENT}/kustomization.yaml says why it goes)`);
    }
    const container: Obj = service?.doc.spec.template.spec.containers[0] ?? {};

    const metrics = (spec.analysis?.metrics ?? []) as Obj[];
    metrics.forEach((metric, i) => {
      const at = `/spec/analysis/metrics/${i}`;
      if (!metric.templateRef) return report(canary, at, 'use a MetricTemplate: Flagger\'s built-in Knative metrics read Envoy\'s series, which nothing here scrapes');
      const template = templates.find((m) => m.doc.metadata.name === metric.templateRef.name && m.doc.metadata.namespace === (metric.templateRef.namespace ?? namespace));
      if (!template) return report(canary, `${at}/templateRef`, `no MetricTemplate ${metric.templateRef.name} in ${metric.templateRef.namespace ?? namespace}`);
      // runMetricChecks passes a template metric's interval as written: unlike the built-in metrics, no default of 1m.
      if (!metric.interval) report(canary, `${at}/interval`, 'must be set: Flagger v1.44.0 fills {{ interval }} with it as written, and an empty one breaks the query');
      if (metric.thresholdRange?.min === undefined && metric.thresholdRange?.max === undefined) report(canary, `${at}/thresholdRange`, 'no bound: every value would pass');
      try {
        renderQuery(String(template.doc.spec.query), metricModel(canary.doc, metric, `${target}-00001`));
      } catch (error) {
        report(canary, `${at}/templateRef`, `${metric.templateRef.name} does not render: ${(error as Error).message}`);
      }
      const query = String(template.doc.spec.query);
      if (/container="\{\{ target \}\}"/.test(query) && container.name !== target) {
        report(canary, `${at}/templateRef`, `${metric.templateRef.name} selects container="${target}", but ${target}'s container is named ${container.name}`);
      }
      if (/container_cpu_usage_seconds_total/.test(query) && service) {
        // What the quota holds for one revision: max-scale pods x the container's CPU request (docs/resources.md).
        const held = Math.round(scaleBounds(service.doc).max * parseQuantity(container.resources?.requests?.cpu ?? 0) * 1000) / 1000;
        if (metric.thresholdRange?.max !== held) report(canary, `${at}/thresholdRange/max`, `must be ${held}: max-scale ${scaleBounds(service.doc).max} x ${container.resources?.requests?.cpu} requested, what the quota holds for one revision; got ${metric.thresholdRange?.max}`);
      }
    });

    const webhooks = (spec.analysis?.webhooks ?? []) as Obj[];
    for (const type of ['pre-rollout', 'rollout']) {
      if (!webhooks.some((w) => w.type === type && w.metadata?.type === 'cmd')) report(canary, '/spec/analysis/webhooks', `no ${type} load: the canary would be judged on whatever traffic happens to come`);
    }
    if (!webhooks.some((w) => w.type === 'rollback' && w.url === `${LOAD_TESTER}rollback/check`)) {
      report(canary, '/spec/analysis/webhooks', `no rollback webhook at ${LOAD_TESTER}rollback/check: nobody could abort a release by hand`);
    }
    webhooks.forEach((webhook, i) => {
      if (webhook.metadata?.type !== 'cmd') return;
      const at = `/spec/analysis/webhooks/${i}`;
      if (webhook.url !== LOAD_TESTER) report(canary, `${at}/url`, `must be the load tester, ${LOAD_TESTER}`);
      const url = /https?:\/\/\S+/.exec(String(webhook.metadata?.cmd ?? ''))?.[0];
      if (!url) return report(canary, `${at}/metadata/cmd`, 'names no URL to load');
      const { host, pathname } = new URL(url);
      if (host !== `${target}.${namespace}.svc.cluster.local`) report(canary, `${at}/metadata/cmd`, `loads ${host}, not ${target}.${namespace}.svc.cluster.local, whose traffic Flagger splits`);
      if (COUNTING_PATHS.includes(pathname)) report(canary, `${at}/metadata/cmd`, `${pathname} counts a ping: the count is the exercise's data; load a path that only reads`);
    });
  }

  for (const template of templates) {
    const query = String(template.doc.spec.query);
    // `route` is the canary's revision for a Knative target: without it, a query judges every revision together.
    if (!query.includes('revision="{{ route }}"')) report(template, '/spec/query', 'must select revision="{{ route }}": the canary\'s revision, not the whole Service');
    if (!query.includes('{{ interval }}')) report(template, '/spec/query', 'must look back {{ interval }}, the metric\'s own');
  }
  return problems;
}

/** Flagger's load tester, installed in flagger-system as docs/updating.md says (outside our namespace's quota). */
export const LOAD_TESTER = 'http://flagger-loadtester.flagger-system/';

/** Requests that change the count (docs/functions.md): no load may send them. */
const COUNTING_PATHS = ['/pingpong'];

/** Whether environments/production/kustomization.yaml lists the canary Component. */
export function productionIncludesCanaries(root = projectRoot): boolean {
  const file = path.join(root, path.dirname(CANARY_COMPONENT), 'kustomization.yaml');
  if (!existsSync(file)) return false;
  const components = ((parse(readFileSync(file, 'utf8')) as Obj).components ?? []) as string[];
  return components.some((c) => path.posix.normalize(c) === 'canary');
}

// ---------------------------------------------------------------------------------------------------
// Queries, as Flagger fills them in

/** Flagger's MetricTemplateModel (pkg/apis/flagger/v1beta1/metric.go): what a query template may name. */
export interface MetricModel {
  name: string;
  namespace: string;
  target: string;
  service: string;
  ingress: string;
  route: string;
  interval: string;
  variables: Record<string, string>;
}

/**
 * The model Flagger renders a Canary's metric with (pkg/controller/scheduler_metrics.go, toMetricModel and
 * runMetricChecks). For a Knative target `route` becomes the Service's status.latestCreatedRevisionName,
 * the canary's revision, given here as `latestCreatedRevision`. A template metric's interval is used as
 * written, with no default: empty stays empty.
 */
export function metricModel(canary: Obj, metric: Obj, latestCreatedRevision: string): MetricModel {
  const target = String(canary.spec.targetRef.name);
  const knative = canary.spec.provider === 'knative';
  return {
    name: String(canary.metadata.name),
    namespace: String(canary.metadata.namespace),
    target,
    service: canary.spec.service?.name || target,
    ingress: canary.spec.ingressRef?.name ?? target,
    route: knative ? latestCreatedRevision : (canary.spec.routeRef?.name ?? target),
    interval: metric.interval ?? '',
    variables: metric.templateVariables ?? {},
  };
}

const MODEL_FUNCTIONS = ['name', 'namespace', 'target', 'service', 'ingress', 'route', 'interval'] as const;

/**
 * A query template filled in as Flagger's RenderQuery does (pkg/metrics/observers/render.go): Go's
 * text/template with the model's fields as functions, `variables.<key>` from the metric's
 * templateVariables, and `missingkey=error`. Only those actions: anything else (Go's trim markers, pipes,
 * conditions) throws, so nothing is ever filled in differently from Flagger without a word.
 */
export function renderQuery(template: string, model: MetricModel): string {
  return template.replace(/\{\{(.*?)\}\}/gs, (_whole, inner: string) => {
    const action = inner.trim();
    const variable = /^variables\.(\w+)$/.exec(action);
    if (variable) {
      if (!Object.hasOwn(model.variables, variable[1]!)) throw new Error(`template: map has no entry for key "${variable[1]}"`);
      return model.variables[variable[1]!]!;
    }
    if ((MODEL_FUNCTIONS as readonly string[]).includes(action)) return model[action as (typeof MODEL_FUNCTIONS)[number]];
    if (/^\w+$/.test(action)) throw new Error(`template: function "${action}" not defined`);
    throw new Error(`template action {{${inner}}} is not one Flagger's queries here use: extend renderQuery first`);
  });
}

// ---------------------------------------------------------------------------------------------------
// Judging, as Flagger judges

/** One series of an instant query's answer, as Prometheus's HTTP API gives it. */
export interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

export type Verdict =
  /** Within the metric's thresholdRange (or under its threshold). */
  | { passed: true; value: number; labels: Record<string, string> }
  /** Outside it, or no number at all: Flagger counts a failed check either way. */
  | { passed: false; value?: number; labels?: Record<string, string>; reason: string };

/**
 * A metric check on Prometheus's answer, as Flagger v1.44.0 makes it: PrometheusProvider.RunQuery
 * (pkg/metrics/providers/prometheus.go) keeps the value of the last series, and a query with no series or
 * a NaN is "no values found"; runMetricChecks then compares it with thresholdRange's min and max, or, without
 * a range, fails a value above `threshold`. A failed check keeps the series' labels, which name the revision.
 */
export function judge(resultType: string, result: Sample[], metric: Obj): Verdict {
  if (resultType !== 'vector') return { passed: false, reason: `Prometheus answered a ${resultType}, which Flagger cannot read` };
  const last = result.at(-1);
  const value = last === undefined ? NaN : goParseFloat(last.value[1]);
  if (Number.isNaN(value)) return { passed: false, reason: 'no values found' };
  const labels = last!.metric;
  const range = metric.thresholdRange as { min?: number; max?: number } | undefined;
  if (range) {
    if (range.min !== undefined && value < range.min) return { passed: false, value, labels, reason: `${metric.name} ${value} < ${range.min}` };
    if (range.max !== undefined && value > range.max) return { passed: false, value, labels, reason: `${metric.name} ${value} > ${range.max}` };
  } else if (value > Number(metric.threshold ?? 0)) {
    return { passed: false, value, labels, reason: `${metric.name} ${value} > ${metric.threshold ?? 0}` };
  }
  return { passed: true, value, labels };
}

/** Go's strconv.ParseFloat for what Prometheus writes: numbers, NaN, +Inf and -Inf. */
function goParseFloat(text: string): number {
  if (/^[+]?inf(inity)?$/i.test(text)) return Infinity;
  if (/^-inf(inity)?$/i.test(text)) return -Infinity;
  return Number(text);
}

/** The query text Flagger sends: every run of whitespace made one space (PrometheusProvider.trimQuery). */
export function asFlaggerSends(query: string): string {
  return query.replace(/\s+/g, ' ');
}
