/**
 * The manifests against what runs in them: the functions' code (variable names, probe paths), the
 * local runner's dotenv file, Postgres's connection limit and image, and the rules for containers.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import ava from 'ava';
import { projectRoot } from '../../functions/shared/config';
import {
  CLUSTER_ENV, clusterEnvProblems, DEMO_ONLY_ENV, containerPolicyProblems, envVarsRead, fileProblems, functionProblems, functionTarget, imageRepository, imageTag, postgresProblems,
  probeProblems, PROBES,
} from '../helpers/cluster-agreement';
import { assertCaught, isKnativeService, label, loadManifests, manifestTest as test, withChange, type Obj } from '../helpers/manifests';

const manifests = loadManifests();
const container = (doc: Obj) => doc.spec.template.spec.containers[0];
const env = (doc: Obj, name: string) => container(doc).env.find((v: Obj) => v.name === name);
const after = (file: string, change: (doc: Obj) => void) => withChange(manifests, file, change);

for (const manifest of manifests.filter((m) => isKnativeService(m.doc))) {
  const target = functionTarget(manifest.doc) ?? '(unset)';
  const present = existsSync(path.join(projectRoot, 'functions', target));
  // A function another issue is still writing: skipped here, loudly; in CI a manifest without its function fails.
  const title = `${label(manifest)} agrees with functions/${target}`;
  if (!present && process.env.CI !== 'true') {
    ava.skip(`${title} (skipped: functions/${target} is not in this tree yet)`, () => undefined);
  } else {
    test(title, (t) => {
      t.deepEqual(functionProblems(manifest, manifests), []);
    });
  }
}

test('the variables a function reads are found in its code and in what it imports', (t) => {
  // FUNCTION_TARGET and K_REVISION from functions/shared/log.ts: every log line names its function and revision.
  const read = (target: string) => [...envVarsRead(path.join(projectRoot, 'functions', target, 'index.ts'))].filter((name) => name !== 'FUNCTION_TARGET' && name !== 'K_REVISION').sort();
  for (const target of ['log-output', 'pingpong', 'image-proxy']) {
    t.true(['FUNCTION_TARGET', 'K_REVISION'].every((name) => envVarsRead(path.join(projectRoot, 'functions', target, 'index.ts')).has(name)), target);
  }
  t.deepEqual(read('log-output'), ['ENV_FILE', 'MESSAGE', 'PINGPONG_TIMEOUT_MS', 'PINGPONG_URL']);
  // DB_POOL_SIZE and DATABASE_URL from functions/shared/db.ts; the libpq variables because it uses postgres.js.
  t.deepEqual(read('pingpong'), ['DATABASE_URL', 'DB_POOL_SIZE', 'PGDATABASE', 'PGHOST', 'PGPASSWORD', 'PGPORT', 'PGUSER']);
  t.deepEqual(read('image-proxy'), ['API_KEY', 'DEMO_IMAGES', 'PIXABAY_API_URL', 'PIXABAY_IMAGE_HOSTS']);
});

test('the cluster never sets the demo switch, by env or through envFrom', (t) => {
  // The switch the check looks for is the one image-proxy reads (and test/integration/start.test.ts sees npm run demo set).
  t.deepEqual(DEMO_ONLY_ENV, ['DEMO_IMAGES']);
  t.true(envVarsRead(path.join(projectRoot, 'functions', 'image-proxy', 'index.ts')).has('DEMO_IMAGES'));

  const problems = (changed: ReturnType<typeof after>) => changed.flatMap((m) => functionProblems(m, changed));
  t.deepEqual(problems(manifests), []);
  const setByEnv = after('knative/image-proxy.yaml', (doc) => container(doc).env.push({ name: 'DEMO_IMAGES', value: 'true' }));
  assertCaught(t, problems(setByEnv), /image-proxy: .*env\/1: DEMO_IMAGES is for npm run demo on one machine, never for the cluster/);
  const setBySecret = after('environments/production/pixabay-apikey.sealedsecret.yaml', (doc) => (doc.spec.encryptedData.DEMO_IMAGES = 'AgA='));
  assertCaught(t, problems(setBySecret), /image-proxy: .*envFrom\/0: DEMO_IMAGES is for npm run demo on one machine/);
});

test('a variable the function does not read, a function that does not exist and a probe path it does not serve are caught', (t) => {
  const problems = (file: string, change: (doc: Obj) => void) => {
    const changed = after(file, change);
    return changed.flatMap((m) => functionProblems(m, changed));
  };
  assertCaught(t, problems('knative/log-output.yaml', (doc) => (env(doc, 'PINGPONG_URL').name = 'PINGPONG_ULR')), /log-output: .*env\/1: PINGPONG_ULR is read by nothing functions\/log-output loads/);
  assertCaught(t, problems('knative/pingpong.yaml', (doc) => (env(doc, 'DB_POOL_SIZE').name = 'DB_POOL')), /DB_POOL is read by nothing functions\/pingpong loads/);
  assertCaught(t, problems('knative/pingpong.yaml', (doc) => (env(doc, 'FUNCTION_TARGET').value = 'ping-pong')), /FUNCTION_TARGET ping-pong: there is no functions\/ping-pong\/index\.ts/);
  assertCaught(t, problems('knative/pingpong.yaml', (doc) => container(doc).env.splice(0, 1)), /FUNCTION_TARGET is not set/);
  assertCaught(t, problems('knative/pingpong.yaml', (doc) => (container(doc).readinessProbe.httpGet.path = '/health')), /readinessProbe\/httpGet\/path: functions\/pingpong serves no \/health/);
  assertCaught(t, problems('knative/pingpong.yaml', (doc) => (container(doc).readinessProbe.httpGet.port = 8081)), /httpGet\/port: must be left out/);
});

test('each function gets what it needs in the cluster: the names fixed across the project', (t) => {
  t.deepEqual(clusterEnvProblems(manifests), []);
  t.deepEqual(Object.keys(CLUSTER_ENV).sort(), manifests.filter((m) => isKnativeService(m.doc)).map((m) => functionTarget(m.doc)).sort());
  assertCaught(t, clusterEnvProblems(after('environments/production/pixabay-apikey.sealedsecret.yaml', (doc) => (doc.spec.encryptedData = { APIKEY: 'AgA=' }))), /image-proxy: .*API_KEY is not set, by env or by envFrom/);
  assertCaught(t, clusterEnvProblems(after('knative/pingpong.yaml', (doc) => container(doc).env.splice(1, 1))), /pingpong: .*PGHOST is not set/);
  assertCaught(t, clusterEnvProblems(after('knative/log-output.yaml', (doc) => container(doc).env.splice(2, 1))), /log-output: .*ENV_FILE is not set/);
});

test('Postgres: the committed StatefulSet, pool sizes and backup jobs agree', (t) => {
  t.deepEqual(postgresProblems(manifests), []);
});

test('Postgres: an unpinned image and a data volume where this version does not keep its data are caught', (t) => {
  const problems = (change: (doc: Obj) => void) => postgresProblems(after('db/postgres-statefulset.yaml', change));
  assertCaught(t, problems((doc) => (container(doc).image = 'postgres:latest')), /pin a version tag, got postgres:latest/);
  assertCaught(t, problems((doc) => (container(doc).image = 'postgres')), /pin a version tag, got postgres$/);
  assertCaught(t, problems((doc) => (container(doc).volumeMounts[0].mountPath = '/var/lib/postgresql/data')), /postgres:18\.1 keeps its data under \/var\/lib\/postgresql: mount a volumeClaimTemplate there \(found \/var\/lib\/postgresql\/data\)/);
  // Before 18 the data lived one level down.
  assertCaught(t, problems((doc) => (container(doc).image = 'postgres:17.6')), /postgres:17\.6 keeps its data under \/var\/lib\/postgresql\/data/);
  assertCaught(t, problems((doc) => (container(doc).readinessProbe = { tcpSocket: { port: 5432 } })), /readinessProbe: must run pg_isready/);
});

test('Postgres: pingpong cannot exhaust max_connections, even with two revisions during a rollout', (t) => {
  assertCaught(t, postgresProblems(after('db/postgres-statefulset.yaml', (doc) => delete container(doc).args)), /set max_connections explicitly/);
  assertCaught(t, postgresProblems(after('knative/pingpong.yaml', (doc) => (env(doc, 'DB_POOL_SIZE').value = '10'))), /2 x max-scale 5 x DB_POOL_SIZE 10 \+ 10 spare exceeds max_connections 100/);
  // An unset pool size counts as its default, 10.
  assertCaught(t, postgresProblems(after('knative/pingpong.yaml', (doc) => container(doc).env.splice(2, 1))), /DB_POOL_SIZE 10/);
  assertCaught(t, postgresProblems(after('knative/pingpong.yaml', (doc) => delete doc.spec.template.metadata.annotations['autoscaling.knative.dev/max-scale'])), /pingpong: .*a Postgres client needs a max-scale/);
});

test('Postgres: a backup CronJob in db/ must run exactly the StatefulSet\'s image', (t) => {
  const cronJob = (image: string) => ({
    file: 'db/backups/backup-cronjob.yaml',
    doc: {
      apiVersion: 'batch/v1', kind: 'CronJob', metadata: { name: 'backup', namespace: 'exercises' },
      spec: { schedule: '0 3 * * *', jobTemplate: { spec: { template: { spec: { restartPolicy: 'Never', containers: [{ name: 'backup', image }] } } } } },
    },
  });
  t.deepEqual(postgresProblems([...manifests, cronJob('postgres:18.1')]), []);
  assertCaught(t, postgresProblems([...manifests, cronJob('postgres:17')]), /CronJob\/backup: \/spec\/jobTemplate\/spec\/template\/spec\/containers\/0\/image: must be the Postgres StatefulSet's image postgres:18\.1, got postgres:17/);
});

test('image names are taken apart as a registry would', (t) => {
  t.is(imageRepository('postgres:18.1'), 'postgres');
  t.is(imageRepository('docker.io/library/postgres:18.1@sha256:abc'), 'postgres');
  t.is(imageRepository('localhost:5000/postgres'), 'localhost:5000/postgres');
  t.is(imageTag('localhost:5000/postgres'), undefined);
  t.is(imageTag('postgres:18.1@sha256:abc'), '18.1');
});

test('files: ENV_FILE points at a key of the ConfigMap mounted above it', (t) => {
  t.deepEqual(fileProblems(manifests), []);
  assertCaught(t, fileProblems(after('knative/log-output.yaml', (doc) => (env(doc, 'ENV_FILE').value = '/etc/log-output/.env'))), /ENV_FILE=\/etc\/log-output\/\.env: log-output-config-\w+ has no key for \.env/);
  assertCaught(t, fileProblems(after('knative/log-output.yaml', (doc) => (env(doc, 'ENV_FILE').value = '/app/log-output.env'))), /ENV_FILE=\/app\/log-output\.env: no ConfigMap or Secret is mounted above it/);
  // Any variable naming a file inside a mounted ConfigMap must name one of its keys; other paths are not ours to judge.
  assertCaught(t, fileProblems(after('knative/log-output.yaml', (doc) => container(doc).env.push({ name: 'EXTRA', value: '/etc/log-output/extra.env' }))), /EXTRA=\/etc\/log-output\/extra\.env: log-output-config-\w+ has no key for extra\.env/);
  t.deepEqual(fileProblems(after('knative/log-output.yaml', (doc) => container(doc).env.push({ name: 'DUMP_FILE', value: '/backups/latest.dump' }))), []);
});

test('probes: liveness on the path that asks nothing else, readiness and the start-up gate on theirs, waiting longer than the function does', (t) => {
  t.deepEqual(probeProblems(manifests), []);
  t.deepEqual(Object.keys(PROBES).sort(), Object.keys(CLUSTER_ENV).sort());
  const problems = (file: string, change: (doc: Obj) => void) => probeProblems(after(file, change));
  assertCaught(t, problems('knative/pingpong.yaml', (doc) => (container(doc).livenessProbe.httpGet.path = '/healthz')), /pingpong: .*livenessProbe\/httpGet\/path: must be \/livez, got \/healthz/);
  assertCaught(t, problems('knative/log-output.yaml', (doc) => delete container(doc).livenessProbe), /log-output: .*livenessProbe\/httpGet\/path: must be \/livez, got no httpGet probe/);
  assertCaught(t, problems('knative/log-output.yaml', (doc) => (container(doc).readinessProbe.httpGet.path = '/livez')), /readinessProbe\/httpGet\/path: must be \/healthz/);
  assertCaught(t, problems('knative/log-output.yaml', (doc) => (env(doc, 'PINGPONG_TIMEOUT_MS').value = '15000')), /startupProbe\/timeoutSeconds: 11 s is not longer than PINGPONG_TIMEOUT_MS \(15000 ms\)/);
  assertCaught(t, problems('knative/log-output.yaml', (doc) => delete container(doc).readinessProbe.timeoutSeconds), /readinessProbe\/timeoutSeconds: 1 s is not longer than PINGPONG_TIMEOUT_MS \(10000 ms\)/);
  assertCaught(t, problems('knative/pingpong.yaml', (doc) => (container(doc).startupProbe = { httpGet: { path: '/healthz' } })), /pingpong: .*startupProbe: PROBES gives pingpong none/);
});

test('containers: requests and a memory limit, never root, a read-only root filesystem, no privilege escalation, no literal secrets, and the full hardening for functions', (t) => {
  t.deepEqual(containerPolicyProblems(manifests), []);
  const problems = (file: string, change: (doc: Obj) => void) => containerPolicyProblems(after(file, change));
  assertCaught(t, problems('knative/pingpong.yaml', (doc) => delete container(doc).resources.limits), /resources\/limits\/cpu: missing/);
  assertCaught(t, problems('db/postgres-statefulset.yaml', (doc) => delete container(doc).resources.limits), /StatefulSet\/postgres: .*resources\/limits\/memory: missing/);
  assertCaught(t, problems('db/postgres-statefulset.yaml', (doc) => delete container(doc).resources.requests.cpu), /resources\/requests\/cpu: missing/);
  t.deepEqual(problems('db/postgres-statefulset.yaml', (doc) => delete container(doc).resources.limits.cpu), [], 'no CPU limit needed outside Knative');
  assertCaught(t, problems('knative/pingpong.yaml', (doc) => (container(doc).securityContext.runAsNonRoot = false)), /securityContext\/runAsNonRoot: must be true/);
  assertCaught(t, problems('knative/pingpong.yaml', (doc) => delete container(doc).securityContext.allowPrivilegeEscalation), /allowPrivilegeEscalation: must be false/);
  assertCaught(t, problems('knative/pingpong.yaml', (doc) => (container(doc).securityContext.readOnlyRootFilesystem = false)), /readOnlyRootFilesystem: must be true/);
  assertCaught(t, problems('db/postgres-statefulset.yaml', (doc) => delete container(doc).securityContext.readOnlyRootFilesystem), /StatefulSet\/postgres: .*readOnlyRootFilesystem: must be true/);
  assertCaught(t, problems('db/backups/backup-cronjob.yaml', (doc) => (doc.spec.jobTemplate.spec.template.spec.containers[0].securityContext.readOnlyRootFilesystem = false)), /CronJob\/postgres-backup: .*readOnlyRootFilesystem: must be true/);
  assertCaught(t, problems('knative/pingpong.yaml', (doc) => (container(doc).securityContext.capabilities.drop = ['NET_RAW'])), /capabilities\/drop: must drop ALL/);
  assertCaught(t, problems('knative/pingpong.yaml', (doc) => delete container(doc).securityContext.seccompProfile), /seccompProfile: must be RuntimeDefault/);
  assertCaught(t, problems('db/postgres-statefulset.yaml', (doc) => delete doc.spec.template.spec.securityContext.runAsNonRoot), /StatefulSet\/postgres: .*runAsNonRoot: must be true/);
  assertCaught(t, problems('db/postgres-statefulset.yaml', (doc) => (env(doc, 'POSTGRES_PASSWORD').value = 'test-literal')), /POSTGRES_PASSWORD must come from a Secret, not a literal value/);
});
