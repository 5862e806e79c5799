/**
 * Names one manifest gives another: Secrets and ConfigMaps with their keys, in-cluster addresses,
 * selectors, the StatefulSet's governing Service, the namespace. Each broken on purpose.
 */
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { projectRoot } from '../../functions/shared/config';
import { assertCaught, isKnativeService, loadManifests, manifestTest as test, referenceProblems, renderKustomization, withChange, type Obj } from '../helpers/manifests';
import { tempDir } from '../helpers/temp';

const manifests = loadManifests();
const problemsAfter = (file: string, change: (doc: Obj) => void) => referenceProblems(withChange(manifests, file, change));
const container = (doc: Obj) => doc.spec.template.spec.containers[0];
const env = (doc: Obj, name: string) => container(doc).env.find((v: Obj) => v.name === name);

test('the committed manifests refer only to what they contain', (t) => {
  t.deepEqual(referenceProblems(manifests), []);
});

test('a Secret name or key that no Secret or SealedSecret holds is caught', (t) => {
  assertCaught(t, problemsAfter('knative/pingpong.yaml', (doc) => (container(doc).envFrom[0].secretRef.name = 'postgres-credential')), /Service\/pingpong: .*envFrom\/0: Secret "postgres-credential" is in no manifest/);
  assertCaught(t, problemsAfter('db/postgres-statefulset.yaml', (doc) => (env(doc, 'POSTGRES_PASSWORD').valueFrom.secretKeyRef.key = 'PASSWORD')), /Secret "postgres-credentials" has no key "PASSWORD"/);
  assertCaught(t, problemsAfter('knative/image-proxy.yaml', (doc) => (container(doc).envFrom[0].secretRef.name = 'pixabay-api-key')), /Service\/image-proxy: .*Secret "pixabay-api-key" is in no manifest/);
  const withoutSealed = referenceProblems(manifests.filter((m) => m.file !== 'environments/production/postgres-credentials.sealedsecret.yaml'));
  assertCaught(t, withoutSealed, /StatefulSet\/postgres: .*Secret "postgres-credentials" is in no manifest/);
});

test('a SealedSecret counts by the name of the Secret it becomes, and a plain Secret counts too', (t) => {
  assertCaught(t, problemsAfter('environments/production/postgres-credentials.sealedsecret.yaml', (doc) => (doc.spec.template.metadata.name = 'pg')), /\/spec\/template\/metadata\/name: differs from the SealedSecret's name/);
  const plain = manifests
    .filter((m) => m.file !== 'environments/production/postgres-credentials.sealedsecret.yaml')
    .concat({ file: 'knative/postgres-credentials.yaml', doc: { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'postgres-credentials', namespace: 'exercises' }, stringData: { PGUSER: 'test-user', PGPASSWORD: 'test-password', PGDATABASE: 'test-db' } } });
  t.deepEqual(referenceProblems(plain), []);
});

test('a ConfigMap name or key that is not there is caught', (t) => {
  assertCaught(t, problemsAfter('knative/log-output.yaml', (doc) => (doc.spec.template.spec.volumes[0].configMap.name = 'log-output')), /volumes\/0: ConfigMap "log-output" is in no manifest/);
  assertCaught(t, problemsAfter('knative/log-output.yaml', (doc) => (doc.spec.template.spec.volumes[0].configMap.items = [{ key: 'env', path: 'log-output.env' }])), /ConfigMap "log-output-config-\w+" has no key "env"/);
});

test('a generated ConfigMap\'s hashed name reaches the Knative Service, which kustomize learns from knative/kustomizeconfig.yaml', (t) => {
  const logOutput = manifests.find((m) => isKnativeService(m.doc) && m.doc.metadata.name === 'log-output')!;
  const name: string = logOutput.doc.spec.template.spec.volumes[0].configMap.name;
  t.regex(name, /^log-output-config-\w+$/);
  t.true(manifests.some((m) => m.doc.kind === 'ConfigMap' && m.doc.metadata.name === name));
  // kustomize does not know the Knative Service kind: without the configuration it leaves the old name behind.
  const root = tempDir(t, 'kustomize-');
  cpSync(path.join(projectRoot, 'knative'), path.join(root, 'knative'), { recursive: true });
  const kustomization = path.join(root, 'knative', 'kustomization.yaml');
  writeFileSync(kustomization, readFileSync(kustomization, 'utf8').replace(/^configurations:\n(  .*\n)+/m, ''));
  assertCaught(t, referenceProblems(renderKustomization('knative', root)), /Service\/log-output: .*volumes\/0: ConfigMap "log-output-config" is in no manifest/);
});

test('everything lives in the exercises namespace, which a manifest creates', (t) => {
  assertCaught(t, problemsAfter('knative/pingpong.yaml', (doc) => (doc.metadata.namespace = 'default')), /Service\/pingpong: \/metadata\/namespace: must be exercises, got default/);
  assertCaught(t, problemsAfter('db/postgres-service.yaml', (doc) => delete doc.metadata.namespace), /must be exercises, got none/);
  assertCaught(t, referenceProblems(manifests.filter((m) => m.doc.kind !== 'Namespace')), /no Namespace manifest named exercises/);
});

test('an in-cluster address must name a Service of the same namespace, on a port it serves', (t) => {
  assertCaught(t, problemsAfter('knative/log-output.yaml', (doc) => (env(doc, 'PINGPONG_URL').value = 'http://ping-pong.exercises.svc.cluster.local')), /ping-pong\.exercises\.svc\.cluster\.local: no Service or Knative Service named "ping-pong"/);
  assertCaught(t, problemsAfter('knative/log-output.yaml', (doc) => (env(doc, 'PINGPONG_URL').value = 'http://pingpong.default.svc.cluster.local')), /pingpong\.default\.svc\.cluster\.local is in namespace default, not exercises/);
  // A Knative Service answers on port 80, whatever its container listens on.
  assertCaught(t, problemsAfter('knative/log-output.yaml', (doc) => (env(doc, 'PINGPONG_URL').value = 'http://pingpong.exercises.svc.cluster.local:8080')), /"pingpong" serves 80, not 8080/);
  assertCaught(t, problemsAfter('knative/pingpong.yaml', (doc) => (env(doc, 'PGHOST').value = 'postgre.exercises.svc.cluster.local')), /no Service or Knative Service named "postgre"/);
  assertCaught(t, problemsAfter('knative/pingpong.yaml', (doc) => container(doc).env.push({ name: 'PGPORT', value: '5433' })), /"postgres" serves 5432, not 5433/);
  assertCaught(t, problemsAfter('knative/kustomization.yaml', (doc) => (doc.data['log-output.env'] += 'URL=http://nothing.exercises.svc/\n')), /ConfigMap\/log-output-config-\w+: \/data\/log-output\.env: .*no Service or Knative Service named "nothing"/);
});

test('selectors: the StatefulSet selects its pods and is governed by a headless Service that selects them too', (t) => {
  assertCaught(t, problemsAfter('db/postgres-statefulset.yaml', (doc) => (doc.spec.selector.matchLabels = { app: 'postgres' })), /StatefulSet\/postgres: \/spec\/selector: does not match the pod template's labels/);
  assertCaught(t, problemsAfter('db/postgres-statefulset.yaml', (doc) => (doc.spec.serviceName = 'postgresql')), /\/spec\/serviceName: no Service named "postgresql"/);
  assertCaught(t, problemsAfter('db/postgres-service.yaml', (doc) => delete doc.spec.clusterIP), /Service "postgres" must be headless/);
  assertCaught(t, problemsAfter('db/postgres-service.yaml', (doc) => (doc.spec.selector = { app: 'postgres' })), /Service\/postgres: \/spec\/selector: selects no pod template/);
  assertCaught(t, problemsAfter('db/postgres-service.yaml', (doc) => (doc.spec.ports[0].port = 5433)), /Service\/postgres: \/spec\/ports\/0: no selected container listens on 5433/);
});

test('a volume claim must name a PersistentVolumeClaim in the manifests', (t) => {
  const claim = { file: 'db/backups-pvc.yaml', doc: { apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: 'backups', namespace: 'exercises' }, spec: {} } };
  const job = (claimName: string) => ({
    file: 'db/backups/backup-cronjob.yaml',
    doc: {
      apiVersion: 'batch/v1', kind: 'CronJob', metadata: { name: 'backup', namespace: 'exercises' },
      spec: { jobTemplate: { spec: { template: { spec: { containers: [{ name: 'b', image: 'postgres:18.1', volumeMounts: [{ name: 'out', mountPath: '/backups' }] }], volumes: [{ name: 'out', persistentVolumeClaim: { claimName } }] } } } } },
    },
  });
  t.deepEqual(referenceProblems([...manifests, claim, job('backups')]), []);
  assertCaught(t, referenceProblems([...manifests, claim, job('backup')]), /CronJob\/backup: \/spec\/jobTemplate\/spec\/template\/spec\/volumes\/0: PersistentVolumeClaim "backup" is in no manifest/);
});
