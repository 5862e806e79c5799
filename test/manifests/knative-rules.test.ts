/**
 * The rules Knative's admission webhook enforces beyond its CRD schema, on the committed Services and
 * on copies broken on purpose.
 */
import { assertCaught, isKnativeService, knativeProblems, label, loadEnvironment, loadManifests, manifestTest as test, RESERVED_ENV_VARS, RESERVED_PORTS, ROLLOUT_DURATION, withChange, type Obj } from '../helpers/manifests';

const manifests = loadManifests();
const problemsAfter = (change: (doc: Obj) => void, file = 'knative/log-output.yaml') => withChange(manifests, file, change).flatMap(knativeProblems);
const container = (doc: Obj) => doc.spec.template.spec.containers[0];

for (const manifest of manifests.filter((m) => isKnativeService(m.doc))) {
  test(`${label(manifest)} passes Knative's admission rules`, (t) => {
    t.deepEqual(knativeProblems(manifest), []);
  });
}

test('exactly one container port: none and two are both caught', (t) => {
  assertCaught(t, problemsAfter((doc) => delete container(doc).ports), /containers\/0\/ports: exactly one container port, found 0/);
  assertCaught(t, problemsAfter((doc) => container(doc).ports.push({ containerPort: 8081 })), /containers\/0\/ports: exactly one container port, found 2/);
  assertCaught(t, problemsAfter((doc) => (container(doc).ports[0].name = 'http')), /ports\/0\/name: must be empty, "h2c" or "http1"/);
});

test('every port Knative reserves is caught', (t) => {
  for (const port of RESERVED_PORTS) {
    assertCaught(t, problemsAfter((doc) => (container(doc).ports[0].containerPort = port)), new RegExp(`containerPort: ${port} is reserved by Knative`));
  }
});

test('every environment variable Knative sets is caught', (t) => {
  for (const name of RESERVED_ENV_VARS) {
    assertCaught(t, problemsAfter((doc) => container(doc).env.push({ name, value: '1' })), new RegExp(`env/\\d+/name: ${name} is reserved`));
  }
});

test('one container, and not one named queue-proxy', (t) => {
  assertCaught(t, problemsAfter((doc) => doc.spec.template.spec.containers.push({ ...container(doc), name: 'second' })), /containers: one container per function, found 2/);
  assertCaught(t, problemsAfter((doc) => (container(doc).name = 'queue-proxy')), /"queue-proxy" is reserved/);
});

test('volumes: only the kinds Knative allows, each mounted, read-only unless emptyDir, never on a reserved path', (t) => {
  assertCaught(t, problemsAfter((doc) => doc.spec.template.spec.volumes.push({ name: 'host', hostPath: { path: '/data' } })), /volumes\/1: hostPath volumes are not allowed/);
  assertCaught(t, problemsAfter((doc) => doc.spec.template.spec.volumes.push({ name: 'spare', configMap: { name: 'log-output-config' } })), /volume "spare" is not mounted/);
  assertCaught(t, problemsAfter((doc) => (container(doc).volumeMounts[0].name = 'confg')), /volumeMounts\/0: no volume named "confg"/);
  assertCaught(t, problemsAfter((doc) => delete container(doc).volumeMounts[0].readOnly), /volumeMounts\/0\/readOnly: must be true/);
  assertCaught(t, problemsAfter((doc) => (container(doc).volumeMounts[0].mountPath = '/tmp/')), /mountPath: \/tmp is reserved/);
  const scratch = problemsAfter((doc) => {
    doc.spec.template.spec.volumes.push({ name: 'scratch', emptyDir: {} });
    container(doc).volumeMounts.push({ name: 'scratch', mountPath: '/scratch' });
  });
  t.deepEqual(scratch, [], 'a writable emptyDir is fine');
});

test('autoscaling annotations: only on the revision template, only known ones, min not above max', (t) => {
  assertCaught(t, problemsAfter((doc) => (doc.metadata.annotations = { 'autoscaling.knative.dev/min-scale': '1' })), /\/metadata\/annotations\/autoscaling\.knative\.dev\/min-scale: autoscaling annotations work only on the revision template/);
  assertCaught(t, problemsAfter((doc) => (doc.spec.template.metadata.annotations['autoscaling.knative.dev/min-scal'] = '1')), /min-scal: not an autoscaling annotation Knative knows/);
  assertCaught(t, problemsAfter((doc) => (doc.spec.template.metadata.annotations['autoscaling.knative.dev/max-scale'] = 'one')), /max-scale: must be a whole number/);
  assertCaught(t, problemsAfter((doc) => (doc.spec.template.metadata.annotations['autoscaling.knative.dev/min-scale'] = '2')), /min-scale 2 is above max-scale 1/);
});

test('the scaling the issue asks for: pingpong and image-proxy scale to zero, log-output is exactly one instance', (t) => {
  const scale = (name: string) => manifests.find((m) => isKnativeService(m.doc) && m.doc.metadata.name === name)!.doc.spec.template.metadata.annotations;
  t.is(scale('pingpong')['autoscaling.knative.dev/min-scale'], '0');
  t.is(scale('image-proxy')['autoscaling.knative.dev/min-scale'], '0');
  t.like(scale('log-output'), { 'autoscaling.knative.dev/min-scale': '1', 'autoscaling.knative.dev/max-scale': '1' });
});

test('gradual rollouts: pingpong and image-proxy shift traffic over two minutes (in production Flagger\'s canaries do instead), log-output (one pod) at once', (t) => {
  const annotations = (name: string, rendered = manifests) => rendered.find((m) => isKnativeService(m.doc) && m.doc.metadata.name === name)!.doc.metadata.annotations ?? {};
  const staging = loadEnvironment('staging');
  t.is(annotations('pingpong', staging)[ROLLOUT_DURATION], '120s');
  t.is(annotations('image-proxy', staging)[ROLLOUT_DURATION], '120s');
  t.is(annotations('pingpong')[ROLLOUT_DURATION], undefined);
  t.is(annotations('image-proxy')[ROLLOUT_DURATION], undefined);
  t.is(annotations('log-output')[ROLLOUT_DURATION], undefined);
});

test('the rollout duration: only on the Service\'s own metadata, and a duration Knative can read', (t) => {
  const pingpong = (change: (doc: Obj) => void) => problemsAfter(change, 'knative/pingpong.yaml');
  assertCaught(t, pingpong((doc) => (doc.spec.template.metadata.annotations[ROLLOUT_DURATION] = '120s')), /\/spec\/template\/metadata\/annotations\/serving\.knative\.dev\/rollout-duration: works only on the Service's own metadata/);
  assertCaught(t, pingpong((doc) => ((doc.metadata.annotations ??= {})[ROLLOUT_DURATION] = '120')), /\/metadata\/annotations\/serving\.knative\.dev\/rollout-duration: must be a duration such as "120s", got "120"/);
  t.deepEqual(pingpong((doc) => ((doc.metadata.annotations ??= {})[ROLLOUT_DURATION] = '2m30s')), []);
});
