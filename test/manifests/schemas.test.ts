/**
 * Every manifest against the real schemas (kubernetes-models for Kubernetes kinds, the CRDs for Knative
 * and sealed-secrets), closed so that unknown fields are errors; then each kind of mistake, made on
 * purpose, is caught.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test from 'ava';
import { assertCaught, closeSchema, label, loadManifests, manifestFiles, readYamlDocuments, schemaProblems, withChange, type Manifest, type Obj } from '../helpers/manifests';

const manifests = loadManifests();
const problemsAfter = (file: string, change: (doc: Obj) => void) => withChange(manifests, file, change).flatMap(schemaProblems);
const container = (doc: Obj) => doc.spec.template.spec.containers[0];

for (const manifest of manifests) {
  test(`${label(manifest)} validates against its schema`, (t) => {
    t.deepEqual(schemaProblems(manifest), []);
  });
}

test('the cluster gets everything the system needs', (t) => {
  const kinds = manifests.map(({ doc }) => `${doc.kind}/${doc.metadata.name}`).sort();
  for (const expected of [
    'Namespace/exercises', 'Service/pingpong', 'Service/log-output', 'Service/image-proxy', 'ConfigMap/log-output-config',
    'StatefulSet/postgres', 'Service/postgres', 'SealedSecret/pixabay-apikey', 'SealedSecret/postgres-credentials',
  ]) {
    t.true(kinds.includes(expected), `${expected} is missing from ${kinds.join(', ')}`);
  }
});

test('every YAML file under knative/ and db/, at any depth, is a manifest', (t) => {
  const root = mkdtempSync(path.join(tmpdir(), 'manifests-'));
  mkdirSync(path.join(root, 'db', 'backup'), { recursive: true });
  mkdirSync(path.join(root, 'knative'));
  for (const file of ['db/backup/cronjob.yaml', 'db/pvc.yml', 'db/backup.sh', 'knative/a.yaml']) writeFileSync(path.join(root, file), 'kind: X\n');
  t.deepEqual(manifestFiles(root), ['knative/a.yaml', 'db/backup/cronjob.yaml', 'db/pvc.yml']);
});

test('manifests are read as kubectl reads them: YAML 1.1, so an unquoted yes is a boolean', (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'yaml-'));
  writeFileSync(path.join(dir, 'a.yaml'), 'value: yes\n---\n---\nvalue: "yes"\n');
  t.deepEqual(readYamlDocuments(path.join(dir, 'a.yaml')), [{ value: true }, { value: 'yes' }]);
  writeFileSync(path.join(dir, 'b.yaml'), 'a: 1\na: 2\n');
  t.throws(() => readYamlDocuments(path.join(dir, 'b.yaml')), { message: /b\.yaml/ });
});

test('closing a schema makes unknown fields errors, except where Kubernetes preserves them', (t) => {
  t.like(closeSchema({ type: 'object', properties: { a: { type: 'object', properties: { b: {} } } } }), {
    additionalProperties: false,
    properties: { a: { additionalProperties: false } },
  });
  t.is((closeSchema({ properties: { a: {} }, 'x-kubernetes-preserve-unknown-fields': true }) as Obj).additionalProperties, undefined);
  t.deepEqual((closeSchema({ properties: { a: {} }, additionalProperties: { type: 'string' } }) as Obj).additionalProperties, { type: 'string' });
});

test('Kubernetes kinds: a misspelt field anywhere is caught', (t) => {
  assertCaught(t, problemsAfter('db/postgres-statefulset.yaml', (doc) => (doc.spec.replica = 1)), /StatefulSet\/postgres: \/spec\/replica: unknown field/);
  assertCaught(t, problemsAfter('db/postgres-statefulset.yaml', (doc) => (container(doc).imagePullPolicyy = 'Always')), /containers\/0\/imagePullPolicyy: unknown field/);
  assertCaught(t, problemsAfter('db/postgres-statefulset.yaml', (doc) => (doc.spec.volumeClaimTemplates[0].spec.resources.request = {})), /volumeClaimTemplates\/0\/spec\/resources\/request: unknown field/);
  assertCaught(t, problemsAfter('db/postgres-service.yaml', (doc) => (doc.metadata.label = {})), /Service\/postgres: \/metadata\/label: unknown field/);
  assertCaught(t, problemsAfter('knative/log-output-configmap.yaml', (doc) => (doc.date = doc.data)), /ConfigMap\/log-output-config: \/date: unknown field/);
});

test('Kubernetes kinds: a wrong type is caught', (t) => {
  assertCaught(t, problemsAfter('db/postgres-statefulset.yaml', (doc) => (doc.spec.replicas = 'one')), /\/spec\/replicas: must be integer/);
  // What `value: yes` would become: kubectl reads YAML 1.1.
  assertCaught(t, problemsAfter('db/postgres-statefulset.yaml', (doc) => (container(doc).env[0] = { name: 'X', value: true })), /env\/0\/value: must be string/);
  assertCaught(t, problemsAfter('db/postgres-service.yaml', (doc) => (doc.spec.ports[0].port = '5432')), /ports\/0\/port: must be integer/);
});

test('a Knative Service: unknown fields in the spec and in both metadata are caught', (t) => {
  assertCaught(t, problemsAfter('knative/pingpong.yaml', (doc) => (container(doc).imagePullPolicyy = 'Always')), /Service\/pingpong: \/spec\/template\/spec\/containers\/0\/imagePullPolicyy: unknown field/);
  assertCaught(t, problemsAfter('knative/pingpong.yaml', (doc) => (doc.spec.traffik = [])), /\/spec\/traffik: unknown field/);
  assertCaught(t, problemsAfter('knative/pingpong.yaml', (doc) => (doc.metadata.annotation = {})), /\/metadata\/annotation: unknown field/);
  assertCaught(t, problemsAfter('knative/pingpong.yaml', (doc) => (doc.spec.template.metadata.annotation = {})), /\/spec\/template\/metadata\/annotation: unknown field/);
  assertCaught(t, problemsAfter('knative/pingpong.yaml', (doc) => (doc.kind = 'Sevrice')), /no schema for serving\.knative\.dev\/v1\/Sevrice/);
  // Fields Kubernetes has but Knative's subset does not.
  assertCaught(t, problemsAfter('knative/pingpong.yaml', (doc) => (container(doc).lifecycle = { preStop: { exec: { command: ['sleep', '1'] } } })), /containers\/0\/lifecycle: unknown field/);
  assertCaught(t, problemsAfter('knative/pingpong.yaml', (doc) => (doc.spec.template.spec.restartPolicy = 'Always')), /spec\/restartPolicy: unknown field/);
});

test('a Knative Service: fields behind a feature flag that is off by default are caught; emptyDir, on by default, is not', (t) => {
  assertCaught(t, problemsAfter('knative/pingpong.yaml', (doc) => (doc.spec.template.spec.nodeSelector = { disk: 'ssd' })), /\/spec\/template\/spec\/nodeSelector: needs Knative's feature flag kubernetes\.podspec-nodeselector/);
  assertCaught(t, problemsAfter('knative/pingpong.yaml', (doc) => (container(doc).securityContext.capabilities.add = ['NET_ADMIN'])), /capabilities\/add: needs Knative's feature flag kubernetes\.containerspec-addcapabilities/);
  assertCaught(t, problemsAfter('knative/pingpong.yaml', (doc) => (doc.spec.template.spec.securityContext = { fsGroup: 1000 })), /podspec-securitycontext/);
  const withScratch = problemsAfter('knative/pingpong.yaml', (doc) => {
    doc.spec.template.spec.volumes = [{ name: 'scratch', emptyDir: {} }];
    container(doc).volumeMounts = [{ name: 'scratch', mountPath: '/scratch' }];
  });
  t.deepEqual(withScratch, []);
});

test('a SealedSecret: unknown fields in its spec and in the Secret template are caught', (t) => {
  const file = 'knative/postgres-credentials.sealedsecret.yaml';
  assertCaught(t, problemsAfter(file, (doc) => (doc.spec.encrytedData = doc.spec.encryptedData)), /SealedSecret\/postgres-credentials: .*encrytedData/);
  assertCaught(t, problemsAfter(file, (doc) => (doc.spec.template.metadata.label = {})), /\/spec\/template\/metadata\/label: unknown field/);
});

test('a kind the validator has no schema for is a problem, not a pass', (t) => {
  const ingress: Manifest = { file: 'knative/ingress.yaml', doc: { apiVersion: 'networking.k8s.io/v1', kind: 'Ingress', metadata: { name: 'x', namespace: 'exercises' } } };
  assertCaught(t, schemaProblems(ingress), /no schema for networking\.k8s\.io\/v1\/Ingress/);
  assertCaught(t, schemaProblems({ file: 'db/x.yaml', doc: { apiVersion: 'v1', kind: 'ConfigMap', metadata: {} } }), /\/metadata\/name: missing/);
});
