/**
 * Every object each environment renders to against the real schemas (kubernetes-models for Kubernetes
 * kinds, the CRDs for Knative, sealed-secrets and prometheus-operator), closed so that unknown fields are
 * errors; then each kind of mistake, made on purpose, is caught. Also: what is validated is exactly what
 * kubectl applies, and every YAML file under knative/, db/ and environments/ is deployed by some environment.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import test from 'ava';
import {
  assertCaught, closeSchema, devHookManifests, ENVIRONMENTS, kustomize, label, loadEnvironment, loadManifests, manifestFiles, manifestTest, parseYamlDocuments, renderKustomization,
  schemaProblems, sealedRoot, undeployedFiles, withChange, type Manifest, type Obj,
} from '../helpers/manifests';
import { tempDir } from '../helpers/temp';

const manifests = loadManifests();
const problemsAfter = (file: string, change: (doc: Obj) => void) => withChange(manifests, file, change).flatMap(schemaProblems);
const container = (doc: Obj) => doc.spec.template.spec.containers[0];

for (const environment of ENVIRONMENTS) {
  for (const manifest of loadEnvironment(environment)) {
    test(`${environment}: ${label(manifest)} validates against its schema`, (t) => {
      t.deepEqual(schemaProblems(manifest), []);
    });
  }
}

/** `Kind/name` of every object, a generated ConfigMap's hash (a digest of its content) left out. */
const names = (rendered: Manifest[]) => rendered.map(({ doc }) => `${doc.kind}/${doc.metadata.name}`.replace(/^(ConfigMap\/log-output-config)-\w+$/, '$1-<hash>')).sort();
const FUNCTIONS = ['ResourceQuota/exercises-quota', 'LimitRange/container-defaults', 'Service/pingpong', 'Service/log-output', 'Service/image-proxy', 'ConfigMap/log-output-config-<hash>'];
const PREPULL = 'DaemonSet/image-prepull';
const POSTGRES = ['StatefulSet/postgres', 'Service/postgres'];
const BACKUPS = ['CronJob/postgres-backup', 'PersistentVolumeClaim/postgres-backups', 'ConfigMap/postgres-backup-scripts'];
const MONITORING = ['PodMonitor/functions', 'PodMonitor/queue-proxy', 'PrometheusRule/functions', 'ConfigMap/functions-dashboard'];
const CANARIES = ['Canary/pingpong', 'Canary/image-proxy', 'MetricTemplate/revision-error-ratio', 'MetricTemplate/revision-latency-p99', 'MetricTemplate/revision-cpu-usage'];

manifestTest('each environment gets what it needs: production everything, staging no backups and no monitoring, dev no pre-pull and its Secrets from the hook', (t) => {
  t.deepEqual(names(loadEnvironment('production')), [
    'Namespace/exercises', ...FUNCTIONS, PREPULL, ...POSTGRES, ...BACKUPS, ...MONITORING, ...CANARIES, 'SealedSecret/pixabay-apikey', 'SealedSecret/postgres-credentials',
  ].sort());
  t.deepEqual(names(loadEnvironment('staging')), ['Namespace/exercises-staging', ...FUNCTIONS, PREPULL, ...POSTGRES, 'SealedSecret/pixabay-apikey', 'SealedSecret/postgres-credentials'].sort());
  t.deepEqual(names(loadEnvironment('dev')), ['Namespace/exercises', ...FUNCTIONS, ...POSTGRES, ...BACKUPS, 'Secret/pixabay-apikey', 'Secret/postgres-credentials'].sort());
});

manifestTest('what the tests validate is exactly what `kubectl apply -k environments/<name>` gets, each object with the file it came from', (t) => {
  for (const environment of ENVIRONMENTS) {
    const dir = `environments/${environment}`;
    const root = environment === 'dev' ? undefined : sealedRoot();
    const rendered = renderKustomization(dir, root).map((m) => m.doc);
    t.deepEqual(rendered, parseYamlDocuments(kustomize(root ? path.join(root, dir) : dir), dir), `${dir}: the origin annotations changed more than themselves`);
  }
  const files = new Map(manifests.map((m) => [`${m.doc.kind}/${m.doc.metadata.name}`, m.file]));
  t.is(files.get('Service/pingpong'), 'knative/pingpong.yaml');
  t.is(files.get('Namespace/exercises'), 'environments/production/namespace.yaml');
  t.is(files.get('SealedSecret/pixabay-apikey'), 'environments/production/pixabay-apikey.sealedsecret.yaml');
  t.is(files.get('ConfigMap/postgres-backup-scripts'), 'db/backups/kustomization.yaml', 'a generated object comes from the kustomization that made it');
  t.deepEqual(devHookManifests().map((m) => `${m.file} ${m.doc.kind}/${m.doc.metadata.name}`), [
    'environments/dev/namespace.yaml Namespace/exercises',
    'db/backups/backup-pvc.yaml PersistentVolumeClaim/postgres-backups',
    'scripts/dev-setup.sh Secret/pixabay-apikey',
    'scripts/dev-setup.sh Secret/postgres-credentials',
  ]);
});

manifestTest('every YAML file under knative/, db/ and environments/ is deployed by some environment', (t) => {
  t.deepEqual(undeployedFiles(ENVIRONMENTS.flatMap(loadEnvironment)), []);
  const root = tempDir(t, 'manifests-');
  mkdirSync(path.join(root, 'db', 'backup'), { recursive: true });
  mkdirSync(path.join(root, 'knative'));
  writeFileSync(path.join(root, 'kustomization.yaml'), 'resources: [db, knative/a.yaml]\n');
  writeFileSync(path.join(root, 'db', 'kustomization.yaml'), 'resources: [backup/cronjob.yaml]\n');
  const configMap = (name: string) => `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ${name}\n`;
  for (const [file, name] of [['db/backup/cronjob.yaml', 'a'], ['db/pvc.yml', 'b'], ['knative/a.yaml', 'c']]) writeFileSync(path.join(root, file!), configMap(name!));
  writeFileSync(path.join(root, 'db', 'backup.sh'), '#!/bin/sh\n');
  // A Component's files are deployed by the overlays that choose it, and promtool's tests are not manifests.
  mkdirSync(path.join(root, 'db', 'option'));
  writeFileSync(path.join(root, 'db', 'option', 'kustomization.yaml'), 'apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\nresources: [d.yaml]\n');
  writeFileSync(path.join(root, 'db', 'option', 'd.yaml'), configMap('d'));
  writeFileSync(path.join(root, 'db', 'rules.test.yaml'), 'tests: []\n');
  t.deepEqual(manifestFiles(root), ['knative/a.yaml', 'db/backup/cronjob.yaml', 'db/pvc.yml'], 'kustomize\'s own files, scripts, options and rule tests are not manifests');
  t.deepEqual(undeployedFiles(renderKustomization('.', root), root), ['db/pvc.yml']);
});

manifestTest('a kustomization that does not render fails with kubectl\'s reason, such as a generator reading a file outside it', (t) => {
  const root = tempDir(t, 'kustomize-');
  mkdirSync(path.join(root, 'knative'));
  writeFileSync(path.join(root, 'settings.env'), 'MESSAGE=Hello\n');
  writeFileSync(path.join(root, 'knative', 'kustomization.yaml'), 'configMapGenerator:\n  - name: settings\n    files: [../settings.env]\n');
  t.throws(() => renderKustomization('knative', root), { message: /kubectl kustomize .* failed: .*(not in or below|security)/s });
});

test('manifests are read as kubectl reads them: YAML 1.1, so an unquoted yes is a boolean', (t) => {
  t.deepEqual(parseYamlDocuments('value: yes\n---\n---\nvalue: "yes"\n', 'a.yaml'), [{ value: true }, { value: 'yes' }]);
  t.throws(() => parseYamlDocuments('a: 1\na: 2\n', 'b.yaml'), { message: /b\.yaml/ });
});

test('closing a schema makes unknown fields errors, except where Kubernetes preserves them', (t) => {
  t.like(closeSchema({ type: 'object', properties: { a: { type: 'object', properties: { b: {} } } } }), {
    additionalProperties: false,
    properties: { a: { additionalProperties: false } },
  });
  t.is((closeSchema({ properties: { a: {} }, 'x-kubernetes-preserve-unknown-fields': true }) as Obj).additionalProperties, undefined);
  t.deepEqual((closeSchema({ properties: { a: {} }, additionalProperties: { type: 'string' } }) as Obj).additionalProperties, { type: 'string' });
});

manifestTest('Kubernetes kinds: a misspelt field anywhere is caught', (t) => {
  assertCaught(t, problemsAfter('db/postgres-statefulset.yaml', (doc) => (doc.spec.replica = 1)), /StatefulSet\/postgres: \/spec\/replica: unknown field/);
  assertCaught(t, problemsAfter('db/postgres-statefulset.yaml', (doc) => (container(doc).imagePullPolicyy = 'Always')), /containers\/0\/imagePullPolicyy: unknown field/);
  assertCaught(t, problemsAfter('db/postgres-statefulset.yaml', (doc) => (doc.spec.volumeClaimTemplates[0].spec.resources.request = {})), /volumeClaimTemplates\/0\/spec\/resources\/request: unknown field/);
  assertCaught(t, problemsAfter('db/postgres-service.yaml', (doc) => (doc.metadata.label = {})), /Service\/postgres: \/metadata\/label: unknown field/);
  assertCaught(t, problemsAfter('knative/kustomization.yaml', (doc) => (doc.date = doc.data)), /ConfigMap\/log-output-config-\w+: \/date: unknown field/);
  assertCaught(t, problemsAfter('knative/image-prepull.yaml', (doc) => (doc.spec.template.spec.initContainers[0].comand = ['node'])), /DaemonSet\/image-prepull: .*initContainers\/0\/comand: unknown field/);
  assertCaught(t, problemsAfter('knative/resource-quota.yaml', (doc) => (doc.spec.hrad = doc.spec.hard)), /ResourceQuota\/exercises-quota: \/spec\/hrad: unknown field/);
});

manifestTest('Kubernetes kinds: a wrong type is caught', (t) => {
  assertCaught(t, problemsAfter('db/postgres-statefulset.yaml', (doc) => (doc.spec.replicas = 'one')), /\/spec\/replicas: must be integer/);
  // What `value: yes` would become: kubectl reads YAML 1.1.
  assertCaught(t, problemsAfter('db/postgres-statefulset.yaml', (doc) => (container(doc).env[0] = { name: 'X', value: true })), /env\/0\/value: must be string/);
  assertCaught(t, problemsAfter('db/postgres-service.yaml', (doc) => (doc.spec.ports[0].port = '5432')), /ports\/0\/port: must be integer/);
});

manifestTest('a Knative Service: unknown fields in the spec and in both metadata are caught', (t) => {
  assertCaught(t, problemsAfter('knative/pingpong.yaml', (doc) => (container(doc).imagePullPolicyy = 'Always')), /Service\/pingpong: \/spec\/template\/spec\/containers\/0\/imagePullPolicyy: unknown field/);
  assertCaught(t, problemsAfter('knative/pingpong.yaml', (doc) => (doc.spec.traffik = [])), /\/spec\/traffik: unknown field/);
  assertCaught(t, problemsAfter('knative/pingpong.yaml', (doc) => (doc.metadata.annotation = {})), /\/metadata\/annotation: unknown field/);
  assertCaught(t, problemsAfter('knative/pingpong.yaml', (doc) => (doc.spec.template.metadata.annotation = {})), /\/spec\/template\/metadata\/annotation: unknown field/);
  assertCaught(t, problemsAfter('knative/pingpong.yaml', (doc) => (doc.kind = 'Sevrice')), /no schema for serving\.knative\.dev\/v1\/Sevrice/);
  // Fields Kubernetes has but Knative's subset does not.
  assertCaught(t, problemsAfter('knative/pingpong.yaml', (doc) => (container(doc).lifecycle = { preStop: { exec: { command: ['sleep', '1'] } } })), /containers\/0\/lifecycle: unknown field/);
  assertCaught(t, problemsAfter('knative/pingpong.yaml', (doc) => (doc.spec.template.spec.restartPolicy = 'Always')), /spec\/restartPolicy: unknown field/);
});

manifestTest('a Knative Service: fields behind a feature flag that is off by default are caught; emptyDir, on by default, is not', (t) => {
  assertCaught(t, problemsAfter('knative/pingpong.yaml', (doc) => (doc.spec.template.spec.nodeSelector = { disk: 'ssd' })), /\/spec\/template\/spec\/nodeSelector: needs Knative's feature flag kubernetes\.podspec-nodeselector/);
  assertCaught(t, problemsAfter('knative/pingpong.yaml', (doc) => (container(doc).securityContext.capabilities.add = ['NET_ADMIN'])), /capabilities\/add: needs Knative's feature flag kubernetes\.containerspec-addcapabilities/);
  assertCaught(t, problemsAfter('knative/pingpong.yaml', (doc) => (doc.spec.template.spec.securityContext = { fsGroup: 1000 })), /podspec-securitycontext/);
  const withScratch = problemsAfter('knative/pingpong.yaml', (doc) => {
    doc.spec.template.spec.volumes = [{ name: 'scratch', emptyDir: {} }];
    container(doc).volumeMounts = [{ name: 'scratch', mountPath: '/scratch' }];
  });
  t.deepEqual(withScratch, []);
});

manifestTest('a SealedSecret: unknown fields in its spec and in the Secret template are caught', (t) => {
  const file = 'environments/production/postgres-credentials.sealedsecret.yaml';
  assertCaught(t, problemsAfter(file, (doc) => (doc.spec.encrytedData = doc.spec.encryptedData)), /SealedSecret\/postgres-credentials: .*encrytedData/);
  assertCaught(t, problemsAfter(file, (doc) => (doc.spec.template.metadata.label = {})), /\/spec\/template\/metadata\/label: unknown field/);
});

test('a kind the validator has no schema for is a problem, not a pass', (t) => {
  const ingress: Manifest = { file: 'knative/ingress.yaml', doc: { apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name: 'x', namespace: 'exercises' } } };
  assertCaught(t, schemaProblems(ingress), /no schema for networking\.k8s\.io\/v1\/Ingress/);
  assertCaught(t, schemaProblems({ file: 'db/x.yaml', doc: { apiVersion: 'v1', kind: 'ConfigMap', metadata: {} } }), /\/metadata\/name: missing/);
});
