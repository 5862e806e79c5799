/**
 * The namespace's ResourceQuota and LimitRange against the system's worst moment, computed from the
 * rendered manifests: every function at max-scale during a rollout (two revisions) with Knative's
 * queue-proxy, Postgres, a backup Job, the DaemonSet's pod on each node, and a restore pod.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { projectRoot } from '../../functions/shared/config';
import { assertCaught, isKnativeService, loadManifests, manifestTest as test, withChange, type Obj } from '../helpers/manifests';
import { admittedResources, ASSUMED_NODES, containerLimits, parseQuantity, QUEUE_PROXY, quotaProblems, worstMoment, worstMomentTable } from '../helpers/resources';

const manifests = loadManifests();
const after = (file: string, change: (doc: Obj) => void) => quotaProblems(withChange(manifests, file, change));
const maxScale = (n: number) => (doc: Obj) => (doc.spec.template.metadata.annotations['autoscaling.knative.dev/max-scale'] = String(n));

test('the quota holds the worst moment, with room for a restore pod, and the LimitRange admits every container', (t) => {
  t.deepEqual(quotaProblems(manifests), []);
  const { rows, total } = worstMoment(manifests);
  t.deepEqual(rows.map((row) => row.what).sort(), [
    'CronJob/postgres-backup', 'DaemonSet/image-prepull', 'Service/image-proxy', 'Service/log-output', 'Service/pingpong', 'StatefulSet/postgres', 'restore pod (kubectl run)',
  ]);
  t.is(total.pods, 2 * 5 + 2 * 3 + 2 * 1 + 1 + 1 + ASSUMED_NODES + 1);
});

test('raising a Service\'s max-scale past what the quota holds is caught', (t) => {
  // One more pingpong pod per revision: two more pods of 125m (pingpong 100m + queue-proxy 25m).
  assertCaught(t, after('knative/pingpong.yaml', maxScale(6)), /ResourceQuota\/exercises-quota: \/spec\/hard\/requests\.cpu: the worst moment needs 2605m, the quota allows 2500m/);
  assertCaught(t, after('knative/image-proxy.yaml', maxScale(4)), /requests\.cpu: the worst moment needs 2605m/);
  t.deepEqual(after('knative/pingpong.yaml', maxScale(4)), [], 'lowering it is fine');
});

test('a quota that leaves no room for the restore pod is caught', (t) => {
  const { total } = worstMoment(manifests);
  // Exactly the worst moment without the restore pod (25m: the LimitRange's default request).
  const tight = `${total['requests.cpu'] - 25}m`;
  assertCaught(t, after('knative/resource-quota.yaml', (doc) => (doc.spec.hard['requests.cpu'] = tight)), new RegExp(`requests\\.cpu: the worst moment needs ${total['requests.cpu']}m, the quota allows ${tight}`));
  assertCaught(t, after('knative/resource-quota.yaml', (doc) => (doc.spec.hard.pods = String(total.pods - 1))), /\/spec\/hard\/pods: the worst moment needs 24, the quota allows 23/);
});

test('queue-proxy gets its CPU request from Knative and the rest from the LimitRange; without a default the quota would refuse it', (t) => {
  const limits = containerLimits(manifests);
  t.deepEqual(admittedResources(QUEUE_PROXY, limits), { requests: { cpu: '25m', memory: '32Mi' }, limits: { cpu: '500m', memory: '128Mi' } });
  const noDefaults = after('knative/limit-range.yaml', (doc) => delete doc.spec.limits[0].default);
  assertCaught(t, noDefaults, /Service\/pingpong: .*container queue-proxy: no limits\.memory and no LimitRange default: the quota would refuse the pod/);
  assertCaught(t, noDefaults, /restore pod \(kubectl run\).*container postgres-restore: no limits\.cpu and no LimitRange default/);
});

test('the LimitRange\'s bounds: a container below min (a unit typo) or above max is caught', (t) => {
  const container = (doc: Obj) => doc.spec.template.spec.containers[0];
  assertCaught(t, after('knative/pingpong.yaml', (doc) => (container(doc).resources.requests.memory = '128')), /Service\/pingpong: .*container pingpong: requests\.memory 128 is below the LimitRange's min 8Mi/);
  assertCaught(t, after('db/postgres-statefulset.yaml', (doc) => (container(doc).resources.limits.memory = '1Gi')), /StatefulSet\/postgres: .*container postgres: limits\.memory 1Gi is above the LimitRange's max 512Mi/);
});

test('a pod counts the larger of its biggest init container and its containers\' sum, as the quota does', (t) => {
  const prepull = worstMoment(manifests).rows.find((row) => row.what === 'DaemonSet/image-prepull')!;
  // The init container (node -e 0: 10m, 48Mi) outweighs the pause container (5m, 8Mi).
  t.like(prepull.each, { 'requests.cpu': 10, 'requests.memory': 48 * 2 ** 20, 'limits.cpu': 100, 'limits.memory': 64 * 2 ** 20 });
});

test('quantities are read as Kubernetes writes them', (t) => {
  t.is(parseQuantity('250m'), 0.25);
  t.is(parseQuantity('1'), 1);
  t.is(parseQuantity('128Mi'), 128 * 2 ** 20);
  t.is(parseQuantity('1G'), 1e9);
  t.is(parseQuantity('1e3'), 1000);
  t.throws(() => parseQuantity('1 Gi'), { message: /not a Kubernetes quantity/ });
});

test('docs/resources.md shows the arithmetic these manifests make, and every function is in it', (t) => {
  const docs = readFileSync(path.join(projectRoot, 'docs', 'resources.md'), 'utf8');
  t.true(docs.includes(worstMomentTable(manifests)), `docs/resources.md should hold this table:\n${worstMomentTable(manifests)}`);
  for (const service of manifests.filter((m) => isKnativeService(m.doc))) t.true(docs.includes(`Service/${service.doc.metadata.name}`));
});
