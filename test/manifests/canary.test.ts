/**
 * The canary Component (environments/production/canary/), offline: it renders where production renders, its
 * Canaries and MetricTemplates are valid against Flagger's CRDs (v1.44.0, test/schemas/flagger-crds.yaml),
 * and they follow Flagger's rules and ours (test/helpers/flagger.ts, canaryProblems); each kind of mistake,
 * made on purpose, is caught. test/integration/canary.test.ts runs the queries on a real Prometheus.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { projectRoot } from '../../functions/shared/config';
import { KNATIVE_SERVICE_FIELDS_OWNED_ELSEWHERE } from '../helpers/delivery';
import { CANARY_COMPONENT, canaryProblems, FLAGGER_WRITES, productionIncludesCanaries } from '../helpers/flagger';
import { assertCaught, knativeProblems, loadEnvironment, loadManifests, manifestTest, renderKustomization, ROLLOUT_DURATION, schemaProblems, withChange, type Manifest, type Obj } from '../helpers/manifests';

/** Production, where the Component is (with its Secrets sealed for a throw-away key, as loadManifests renders it). */
const rendered: Manifest[] = loadManifests();
const flagger = () => rendered.filter((m) => m.doc.apiVersion === 'flagger.app/v1beta1');
const file = (name: string) => `${CANARY_COMPONENT}/${name}`;
const problemsAfter = (name: string, change: (doc: Obj) => void) => canaryProblems(withChange(rendered, file(name), change));
const schemaProblemsAfter = (name: string, change: (doc: Obj) => void) => withChange(rendered, file(name), change).filter((m) => m.file === file(name)).flatMap(schemaProblems);

manifestTest('the Component makes a Canary for pingpong and image-proxy and three MetricTemplates, each valid against Flagger\'s CRDs', (t) => {
  t.deepEqual(flagger().map(({ doc }) => `${doc.kind}/${doc.metadata.name}`).sort(), [
    'Canary/image-proxy', 'Canary/pingpong', 'MetricTemplate/revision-cpu-usage', 'MetricTemplate/revision-error-ratio', 'MetricTemplate/revision-latency-p99',
  ]);
  t.deepEqual(flagger().flatMap(schemaProblems), []);
  // The Services it patches stay valid Knative Services.
  t.deepEqual(rendered.filter((m) => m.doc.kind === 'Service').flatMap((m) => [...schemaProblems(m), ...knativeProblems(m)]), []);
});

manifestTest('production includes the Component, so the canaries render in the production deploy path, and only there', (t) => {
  t.true(productionIncludesCanaries(), 'environments/production/kustomization.yaml must list components: [canary]');
  t.true(flagger().every((m) => m.file.startsWith(`${CANARY_COMPONENT}/`) && m.doc.metadata.namespace === 'exercises'));
  for (const environment of ['staging', 'dev'] as const) {
    t.deepEqual(loadEnvironment(environment).filter((m) => m.doc.apiVersion === 'flagger.app/v1beta1'), [], `${environment} has no Flagger`);
  }
});

manifestTest('a misspelt field, a provider Flagger does not know and a webhook type it does not run are caught by the CRDs', (t) => {
  assertCaught(t, schemaProblemsAfter('pingpong.yaml', (doc) => (doc.spec.analysis.metrics[0].thresholdRange = { maximum: 0.05 })), /Canary\/pingpong: .*thresholdRange\/maximum: unknown field/);
  assertCaught(t, schemaProblemsAfter('pingpong.yaml', (doc) => (doc.spec.provider = 'knatve')), /Canary\/pingpong: \/spec\/provider: must be equal to one of the allowed values/);
  assertCaught(t, schemaProblemsAfter('pingpong.yaml', (doc) => (doc.spec.analysis.webhooks[0].type = 'pre-rolout')), /webhooks\/0\/type: must be equal to one of the allowed values/);
  assertCaught(t, schemaProblemsAfter('pingpong.yaml', (doc) => (doc.spec.analysis.interval = 60)), /\/spec\/analysis\/interval: must be string/);
  assertCaught(t, schemaProblemsAfter('revision-error-ratio.yaml', (doc) => (doc.spec.provider.type = 'prom')), /MetricTemplate\/revision-error-ratio: \/spec\/provider\/type: must be equal to one of the allowed values/);
  assertCaught(t, schemaProblemsAfter('revision-error-ratio.yaml', (doc) => delete doc.spec.query), /MetricTemplate\/revision-error-ratio: \/spec: must have required property 'query'/);
});

manifestTest('the canaries follow Flagger\'s rules for a Knative target and ours', (t) => {
  t.deepEqual(canaryProblems(rendered), []);
});

manifestTest('Flagger\'s rules for a Knative target: the knative provider, a serving.knative.dev/v1 Service that exists, no autoscalerRef', (t) => {
  assertCaught(t, problemsAfter('pingpong.yaml', (doc) => (doc.spec.provider = 'kubernetes')), /Canary\/pingpong: \/spec\/provider: must be knative/);
  assertCaught(t, problemsAfter('pingpong.yaml', (doc) => (doc.spec.targetRef = { apiVersion: 'apps/v1', kind: 'Deployment', name: 'pingpong' })), /\/spec\/targetRef: the knative provider needs a serving\.knative\.dev\/v1 Service/);
  assertCaught(t, problemsAfter('pingpong.yaml', (doc) => (doc.spec.targetRef.name = 'ping-pong')), /\/spec\/targetRef\/name: no Knative Service ping-pong in exercises/);
  assertCaught(t, problemsAfter('pingpong.yaml', (doc) => (doc.spec.autoscalerRef = { apiVersion: 'autoscaling/v2', kind: 'HorizontalPodAutoscaler', name: 'pingpong' })), /autoscalerRef: not allowed/);
});

manifestTest('each metric names a MetricTemplate that renders with Flagger\'s variables, with its own interval and a bound', (t) => {
  assertCaught(t, problemsAfter('pingpong.yaml', (doc) => (doc.spec.analysis.metrics[0].templateRef.name = 'revision-errors')), /metrics\/0\/templateRef: no MetricTemplate revision-errors in exercises/);
  assertCaught(t, problemsAfter('pingpong.yaml', (doc) => delete doc.spec.analysis.metrics[1].interval), /metrics\/1\/interval: must be set: Flagger v1\.44\.0 fills \{\{ interval \}\} with it as written/);
  assertCaught(t, problemsAfter('pingpong.yaml', (doc) => delete doc.spec.analysis.metrics[0].thresholdRange), /metrics\/0\/thresholdRange: no bound/);
  assertCaught(t, problemsAfter('pingpong.yaml', (doc) => (doc.spec.analysis.metrics[0] = { name: 'request-success-rate', thresholdRange: { min: 99 }, interval: '1m' })), /metrics\/0: use a MetricTemplate/);
  const withQuery = (query: (q: string) => string) => problemsAfter('revision-latency-p99.yaml', (doc) => (doc.spec.query = query(doc.spec.query)));
  assertCaught(t, withQuery((q) => q.replace('{{ namespace }}', '{{ namespaces }}')), /revision-latency-p99 does not render: template: function "namespaces" not defined/);
  assertCaught(t, withQuery((q) => q.replace('{{ target }}', '{{ variables.service }}')), /revision-latency-p99 does not render: template: map has no entry for key "service"/);
  assertCaught(t, withQuery((q) => q.replace('revision="{{ route }}", ', '')), /MetricTemplate\/revision-latency-p99: \/spec\/query: must select revision="\{\{ route \}\}"/);
  assertCaught(t, withQuery((q) => q.replaceAll('{{ interval }}', '1m')), /must look back \{\{ interval \}\}/);
});

manifestTest('the CPU check\'s bound is what the quota holds for one revision, and its container is the function\'s', (t) => {
  const cpu = (doc: Obj) => (doc.spec.analysis.metrics as Obj[]).find((m) => m.templateRef.name === 'revision-cpu-usage')!;
  t.is(cpu(rendered.find((m) => m.file === file('pingpong.yaml'))!.doc).thresholdRange.max, 0.5, 'max-scale 5 x 100m');
  t.is(cpu(rendered.find((m) => m.file === file('image-proxy.yaml'))!.doc).thresholdRange.max, 0.3, 'max-scale 3 x 100m');
  // Raising pingpong's max-scale or its request without the bound, or the other way round, is caught.
  const scaledUp = withChange(rendered, 'knative/pingpong.yaml', (doc) => (doc.spec.template.metadata.annotations['autoscaling.knative.dev/max-scale'] = '6'));
  assertCaught(t, canaryProblems(scaledUp), /Canary\/pingpong: .*thresholdRange\/max: must be 0\.6: max-scale 6 x 100m requested/);
  assertCaught(t, problemsAfter('image-proxy.yaml', (doc) => (cpu(doc).thresholdRange.max = 1)), /Canary\/image-proxy: .*thresholdRange\/max: must be 0\.3/);
  const renamed = withChange(rendered, 'knative/pingpong.yaml', (doc) => (doc.spec.template.spec.containers[0].name = 'user-container'));
  assertCaught(t, canaryProblems(renamed), /revision-cpu-usage selects container="pingpong", but pingpong's container is named user-container/);
});

manifestTest('load during analysis goes to the canary\'s own Service before and during the steps and never counts a ping; a rollback gate lets a person abort', (t) => {
  const load = (doc: Obj) => doc.spec.analysis.webhooks as Obj[];
  for (const canary of rendered.filter((m) => m.doc.kind === 'Canary')) {
    const commands = load(canary.doc).filter((w) => w.metadata?.type === 'cmd').map((w) => String(w.metadata.cmd));
    t.is(commands.length, 2);
    t.is(new Set(commands).size, 1, `${canary.doc.metadata.name}: the load tester runs one copy of a command, so both webhooks send the same`);
  }
  const pingpongLoad = load(rendered.find((m) => m.file === file('pingpong.yaml'))!.doc)[1]!.metadata.cmd as string;
  assertCaught(t, problemsAfter('pingpong.yaml', (doc) => (load(doc)[1]!.url = 'http://flagger-loadtester.exercises/')), /webhooks\/1\/url: must be the load tester, http:\/\/flagger-loadtester\.flagger-system\//);
  assertCaught(t, problemsAfter('pingpong.yaml', (doc) => (doc.spec.analysis.webhooks = load(doc).filter((w) => w.type !== 'rollback'))), /no rollback webhook at http:\/\/flagger-loadtester\.flagger-system\/rollback\/check/);
  t.regex(pingpongLoad, /http:\/\/pingpong\.exercises\.svc\.cluster\.local\/pongs$/);
  assertCaught(t, problemsAfter('pingpong.yaml', (doc) => (load(doc)[1]!.metadata.cmd = pingpongLoad.replace('/pongs', '/pingpong'))), /webhooks\/1\/metadata\/cmd: \/pingpong counts a ping/);
  // A namespace written into a string escapes kustomize's namespace transformer.
  const toStaging = (doc: Obj) => (doc.metadata.namespace = 'exercises-staging');
  const staging = withChange(withChange(rendered, file('pingpong.yaml'), toStaging), 'knative/pingpong.yaml', toStaging);
  assertCaught(t, canaryProblems(staging), /webhooks\/0\/metadata\/cmd: loads pingpong\.exercises\.svc\.cluster\.local, not pingpong\.exercises-staging\.svc\.cluster\.local/);
  assertCaught(t, problemsAfter('pingpong.yaml', (doc) => (doc.spec.analysis.webhooks = load(doc).filter((w) => w.type !== 'pre-rollout'))), /no pre-rollout load/);
});

manifestTest('where Flagger drives a Service, Knative\'s own gradual rollout is gone; elsewhere the bases keep it', (t) => {
  for (const name of ['pingpong', 'image-proxy']) {
    const service = rendered.find((m) => m.doc.kind === 'Service' && m.doc.metadata.name === name)!;
    t.is(service.doc.metadata.annotations?.[ROLLOUT_DURATION], undefined, `${name} in production`);
    t.is(renderKustomization('knative').find((m) => m.doc.kind === 'Service' && m.doc.metadata.name === name)!.doc.metadata.annotations[ROLLOUT_DURATION], '120s', `${name} in knative/`);
  }
  const restored = withChange(rendered, 'knative/pingpong.yaml', (doc) => (doc.metadata.annotations = { [ROLLOUT_DURATION]: '120s' }));
  assertCaught(t, canaryProblems(restored), /Service\/pingpong: \/metadata\/annotations\/serving\.knative\.dev\/rollout-duration: Canary\/pingpong moves this Service's traffic/);
});

manifestTest('FLAGGER_WRITES names the fields Flagger writes in every Service a Canary drives, for the GitOps tool to ignore', (t) => {
  for (const canary of rendered.filter((m) => m.doc.kind === 'Canary')) {
    const { apiVersion, kind } = canary.doc.spec.targetRef;
    t.true(FLAGGER_WRITES.some((w) => w.group === String(apiVersion).split('/')[0] && w.kind === kind), `${canary.doc.metadata.name}'s target`);
  }
  t.deepEqual(FLAGGER_WRITES.flatMap((w) => w.jsonPointers), ['/spec/traffic', '/metadata/annotations/flagger.app~1primary-revision']);
  // The Argo CD Applications' check (test/helpers/delivery.ts) holds every one of them.
  for (const pointer of FLAGGER_WRITES.flatMap((w) => w.jsonPointers)) t.true(KNATIVE_SERVICE_FIELDS_OWNED_ELSEWHERE.includes(pointer), pointer);
  // The pointer resolves to the annotation Flagger sets (RFC 6901: ~1 is a slash).
  const service = { metadata: { annotations: { 'flagger.app/primary-revision': 'pingpong-00004' } } };
  const [, , , key] = FLAGGER_WRITES[0].jsonPointers[1].split('/');
  t.is((service.metadata.annotations as Record<string, string>)[key!.replaceAll('~1', '/').replaceAll('~0', '~')], 'pingpong-00004');
});

manifestTest('the MetricTemplates ask kube-prometheus-stack\'s Prometheus, where docs/monitoring.md installs it', (t) => {
  const monitoringDoc = readFileSync(path.join(projectRoot, 'docs', 'monitoring.md'), 'utf8');
  t.regex(monitoringDoc, /helm install kube-prometheus-stack [\s\S]*--namespace prometheus/);
  for (const template of flagger().filter((m) => m.doc.kind === 'MetricTemplate')) {
    t.is(template.doc.spec.provider.address, 'http://kube-prometheus-stack-prometheus.prometheus:9090', template.doc.metadata.name);
  }
});
