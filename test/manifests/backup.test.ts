/** The backup CronJob, its PVC and scripts ConfigMap, and docs/backups.md's restore one-liner agree with each other and with db/. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { projectRoot } from '../../functions/shared/config';
import { loadManifests, manifestTest as test } from '../helpers/manifests';
import { restoreOneLiner } from '../helpers/resources';

// Manifests are loose JSON to the test: a wrong path shows as a failed assertion, not a type error.
const manifests = loadManifests();
const find = (kind: string, name: string): any => manifests.find((m) => m.doc.kind === kind && m.doc.metadata.name === name)?.doc;
const cronJob = find('CronJob', 'postgres-backup');
const pvc = find('PersistentVolumeClaim', 'postgres-backups');
const configMap = find('ConfigMap', 'postgres-backup-scripts');
const pod = cronJob?.spec.jobTemplate.spec.template.spec;
const container = pod?.containers[0];
const volume = (spec: any, name: string) => spec.volumes.find((v: any) => v.name === name);
const mountOf = (c: any, name: string) => c.volumeMounts.find((m: any) => m.name === name)?.mountPath;

test('the scripts ConfigMap is made from db/backups/backup.sh and db/backups/restore.sh, under a name without a hash (the one-liner names it)', (t) => {
  t.deepEqual(Object.keys(configMap.data).sort(), ['backup.sh', 'restore.sh']);
  for (const name of ['backup.sh', 'restore.sh']) t.is(configMap.data[name], readFileSync(path.join(projectRoot, 'db', 'backups', name), 'utf8'));
});

test('the CronJob runs backup.sh from that ConfigMap onto that PVC, with the shared Secret and the StatefulSet image', (t) => {
  for (const manifest of [cronJob, pvc, configMap]) t.is(manifest.metadata.namespace, 'exercises');
  t.is(container.image, 'postgres:18.1');
  t.deepEqual(container.envFrom, [{ secretRef: { name: 'postgres-credentials' } }]);
  t.is(volume(pod, 'scripts').configMap.name, configMap.metadata.name);
  t.deepEqual(container.command, ['bash', `${mountOf(container, 'scripts')}/backup.sh`]);
  t.is(volume(pod, 'backups').persistentVolumeClaim.claimName, pvc.metadata.name);
  const env = Object.fromEntries(container.env.map((e: any) => [e.name, e.value]));
  t.is(env.BACKUP_DIR, mountOf(container, 'backups'));
  t.is(env.PGHOST, 'postgres.exercises.svc.cluster.local');
  t.is(cronJob.spec.concurrencyPolicy, 'Forbid');
  t.true(pod.securityContext.runAsNonRoot && pod.securityContext.runAsUser !== 0);
});

test("docs/backups.md's restore one-liner mounts the same backups, scripts, Secret and image as the CronJob", (t) => {
  const oneLiner = restoreOneLiner();
  if (!oneLiner) return t.fail('no restore one-liner in docs/backups.md');
  const { spec } = oneLiner;
  const [restorer] = spec.containers;
  t.is(oneLiner.image, container.image);
  t.is(restorer.image, container.image);
  t.deepEqual(restorer.envFrom, container.envFrom);
  t.deepEqual(restorer.env, container.env.filter((e: any) => e.name === 'PGHOST'));
  t.deepEqual(volume(spec, 'backups'), volume(pod, 'backups'));
  t.deepEqual(volume(spec, 'scripts'), volume(pod, 'scripts'));
  t.is(mountOf(restorer, 'backups'), mountOf(container, 'backups'));
  t.deepEqual(restorer.command, ['bash', `${mountOf(container, 'scripts')}/restore.sh`, mountOf(container, 'backups')]);
  t.deepEqual(spec.securityContext, pod.securityContext);
  t.deepEqual(restorer.securityContext, container.securityContext);
});
