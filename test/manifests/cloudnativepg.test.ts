/**
 * The CloudNativePG option (db/cloudnativepg/, docs/cloudnativepg.md), offline: the system rendered with the
 * component as an overlay selects it, through the same checks as the default (schemas, references, quota,
 * connection budget), plus the rules the Cluster keeps for pingpong's promise, its PodMonitor and alert rules,
 * and the restore one-liner. Each check is shown to catch a mistake made on purpose.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { projectRoot } from '../../functions/shared/config';
import { alertRulesText } from '../../scripts/prometheus';
import { postgresProblems } from '../helpers/cluster-agreement';
import { argoProblems } from '../helpers/delivery';
import { APP_SECRET_KEYS, clusterProblems, COMPONENT_DIR, instancePodLabels, instancePodSpec, isCloudNativePgCluster } from '../helpers/cloudnativepg';
import {
  assertCaught, loadEnvironment, loadEnvironmentWith, loadManifests, manifestTest, parseYamlDocuments, podTemplates, referenceProblems, renderKustomization, schemaProblems, sealedRoot,
  type Manifest, type Obj,
} from '../helpers/manifests';
import { selectorMatches } from '../helpers/monitoring';
import { containerLimits, COUNTED, parseQuantity, podAmounts, quotaProblems, restoreOneLiners, worstMoment, worstMomentTable, type Counted } from '../helpers/resources';
import { tempDir } from '../helpers/temp';
import { testNeeding } from '../helpers/tools';

/** Production with the option selected, as docs/cloudnativepg.md says: db/cloudnativepg among its `components:`. */
const manifests = loadEnvironmentWith('production', { components: [COMPONENT_DIR] });
const find = (kind: string, name: string, from = manifests): Obj => from.find((m) => m.doc.kind === kind && m.doc.metadata?.name === name)?.doc as Obj;
/** `manifests` with `change` made to a copy of the object of that kind and name. */
const after = (kind: string, name: string, change: (doc: Obj) => void) => {
  const copy = structuredClone(manifests);
  change(find(kind, name, copy));
  return copy;
};
const cluster = () => find('Cluster', 'postgres');
const pingpongContainer = (from = manifests) => find('Service', 'pingpong', from).spec.template.spec.containers[0];
const backupContainer = (from = manifests) => find('CronJob', 'postgres-backup', from).spec.jobTemplate.spec.template.spec.containers[0];
const fromAppSecret = (key: string) => ({ valueFrom: { secretKeyRef: { name: 'postgres-app', key } } });
const withPromtool = testNeeding(['promtool'], 'apt-get install prometheus (it brings promtool)');

manifestTest('with the component the StatefulSet and its Service give way to a Cluster, and every object validates against its schema', (t) => {
  const kinds = manifests.map(({ doc }) => `${doc.kind}/${doc.metadata.name}`);
  for (const gone of ['StatefulSet/postgres', 'Service/postgres']) t.false(kinds.includes(gone), `${gone} is still rendered`);
  for (const added of ['Cluster/postgres', 'PodMonitor/postgres', 'PrometheusRule/postgres']) t.true(kinds.includes(added), `${added} is missing`);
  t.deepEqual(manifests.flatMap(schemaProblems), []);
  // Every file of the component is used: one left out of its kustomization would silently not deploy.
  const used = new Set(manifests.map((m) => m.file));
  const files = readdirSync(path.join(projectRoot, COMPONENT_DIR)).filter((name) => /\.yaml$/.test(name) && name !== 'kustomization.yaml' && !name.endsWith('.test.yaml'));
  const patches = files.filter((name) => name.endsWith('.patch.yaml'));
  t.deepEqual(files.filter((name) => !patches.includes(name) && !used.has(`${COMPONENT_DIR}/${name}`)), []);
  const kustomization = readFileSync(path.join(projectRoot, COMPONENT_DIR, 'kustomization.yaml'), 'utf8');
  for (const patch of patches) t.true(kustomization.includes(`path: ${patch}`), `${patch} is in no patch of the component`);
});

manifestTest("a misspelt or mistyped field of the Cluster is caught against CloudNativePG's CRD", (t) => {
  const problems = (change: (doc: Obj) => void) => after('Cluster', 'postgres', change).filter((m) => isCloudNativePgCluster(m.doc)).flatMap(schemaProblems);
  assertCaught(t, problems((doc) => (doc.spec.instance = 3)), /Cluster\/postgres: \/spec\/instance: unknown field/);
  assertCaught(t, problems((doc) => (doc.spec.postgresql.synchronous.method = 'all')), /\/spec\/postgresql\/synchronous\/method: must be equal to one of the allowed values/);
  assertCaught(t, problems((doc) => (doc.spec.postgresql.parameters.max_connections = 100)), /max_connections: must be string/);
  assertCaught(t, problems((doc) => (doc.spec.instances = 0)), /\/spec\/instances: must be >= 1/);
});

manifestTest("pingpong and the backup reach the primary through postgres-rw, as the user of the Secret postgres-app", (t) => {
  for (const container of [pingpongContainer(), backupContainer()]) {
    t.is(container.envFrom, undefined, `${container.name} no longer reads the sealed postgres-credentials`);
    const env = Object.fromEntries((container.env as Obj[]).map(({ name, ...rest }) => [name, rest]));
    t.deepEqual(env.PGHOST, { value: 'postgres-rw.exercises.svc.cluster.local' });
    t.deepEqual([env.PGUSER, env.PGPASSWORD, env.PGDATABASE], [fromAppSecret('username'), fromAppSecret('password'), fromAppSecret('dbname')]);
  }
  t.is(backupContainer().image, cluster().spec.imageName, 'pg_dump is the server\'s own');
});

manifestTest('references: the Services and the Secret the operator makes from the Cluster are there, and nothing else is', (t) => {
  t.deepEqual(referenceProblems(manifests), []);
  const env = (from: Manifest[], name: string) => (pingpongContainer(from).env as Obj[]).find((v) => v.name === name)!;
  const misspelt = 'user-name';
  assertCaught(t, referenceProblems(after('Service', 'pingpong', (doc) => (env([{ file: '', doc }], 'PGUSER').valueFrom.secretKeyRef.key = misspelt))), /Service\/pingpong: .*Secret "postgres-app" has no key "user-name"/);
  assertCaught(t, referenceProblems(after('Service', 'pingpong', (doc) => (env([{ file: '', doc }], 'PGHOST').value = 'postgres.exercises.svc.cluster.local'))), /no Service or Knative Service named "postgres"/);
  // A Cluster under another name makes other Services and another Secret.
  const renamed = after('Cluster', 'postgres', (doc) => (doc.metadata.name = 'db'));
  assertCaught(t, referenceProblems(renamed), /Secret "postgres-app" is in no manifest/);
  assertCaught(t, referenceProblems(renamed), /postgres-rw\.exercises\.svc\.cluster\.local:5432: no Service or Knative Service named "postgres-rw"/);
  // A Cluster that brings its own application Secret gets no postgres-app.
  assertCaught(t, referenceProblems(after('Cluster', 'postgres', (doc) => (doc.spec.bootstrap.initdb.secret = { name: 'app-user' }))), /Secret "postgres-app" is in no manifest/);
  t.true(APP_SECRET_KEYS.includes('username') && APP_SECRET_KEYS.includes('dbname'));
});

manifestTest("the connection budget holds against the Cluster's max_connections, and the backup runs its image", (t) => {
  t.deepEqual(postgresProblems(manifests), []);
  const withCluster = (change: (doc: Obj) => void) => postgresProblems(after('Cluster', 'postgres', change));
  assertCaught(t, withCluster((doc) => (doc.spec.postgresql.parameters.max_connections = '50')), /Service\/pingpong: .*2 x max-scale 5 x DB_POOL_SIZE 5 \+ 10 spare exceeds max_connections 50/);
  assertCaught(t, withCluster((doc) => delete doc.spec.postgresql.parameters.max_connections), /Cluster\/postgres: \/spec\/postgresql\/parameters: set max_connections explicitly/);
  assertCaught(t, withCluster((doc) => (doc.spec.imageName = 'ghcr.io/cloudnative-pg/postgresql:18.5-system-trixie')), /CronJob\/postgres-backup: .*image: must be the Postgres Cluster's image ghcr\.io\/cloudnative-pg\/postgresql:18\.5-system-trixie/);
  assertCaught(t, withCluster((doc) => delete doc.spec.imageName), /Cluster\/postgres: \/spec\/imageName: pin a version tag/);
  // The StatefulSet left in beside the Cluster: two servers, and the budget would be checked against one.
  const both = [...manifests, { file: 'db/postgres-statefulset.yaml', doc: { apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 'postgres' }, spec: { template: { spec: { containers: [{ name: 'postgres', image: 'postgres:18.1' }] } } } } }];
  assertCaught(t, postgresProblems(both), /expected one Postgres server .* found 1 StatefulSet\(s\) and 1 Cluster\(s\)/);
});

manifestTest('the Cluster keeps the promise: synchronous and required, a standby to spare, one node per instance, failover only to a standby holding every commit', (t) => {
  const problems = (change: (doc: Obj) => void) => after('Cluster', 'postgres', change).flatMap((m) => clusterProblems(m));
  t.deepEqual(problems(() => undefined), []);
  assertCaught(t, problems((doc) => delete doc.spec.postgresql.synchronous), /\/spec\/postgresql\/synchronous: missing/);
  assertCaught(t, problems((doc) => (doc.spec.postgresql.synchronous.dataDurability = 'preferred')), /dataDurability: must be required/);
  assertCaught(t, problems((doc) => delete doc.spec.postgresql.synchronous.failoverQuorum), /failoverQuorum: must be true/);
  assertCaught(t, problems((doc) => (doc.spec.instances = 2)), /\/spec\/instances: 2 instances with 1 synchronous standby\(s\): losing one standby would stop every commit/);
  assertCaught(t, problems((doc) => (doc.spec.postgresql.synchronous.number = 2)), /3 instances with 2 synchronous standby\(s\)/);
  assertCaught(t, problems((doc) => (doc.spec.affinity.podAntiAffinityType = 'preferred')), /\/spec\/affinity: podAntiAffinityType must be required/);
});

manifestTest('the quota holds three instances, raised from the base by exactly two instances, and docs/resources.md shows the arithmetic', (t) => {
  t.deepEqual(quotaProblems(manifests), []);
  const { rows, total } = worstMoment(manifests);
  const instancesRow = rows.find((row) => row.what === 'Cluster/postgres');
  t.like(instancesRow, { count: 3 });
  t.false(rows.some((row) => row.what === 'StatefulSet/postgres'));

  const base = loadManifests(); // production as deployed: the StatefulSet
  const hard = (from: Manifest[]) => find('ResourceQuota', 'exercises-quota', from).spec.hard as Record<Counted, string>;
  const one = podAmounts(instancePodSpec(cluster()), containerLimits(manifests));
  const units = (resource: Counted, quantity: string) => Math.round(parseQuantity(quantity) * (resource.endsWith('.cpu') ? 1000 : 1));
  for (const resource of COUNTED) {
    t.is(units(resource, hard(manifests)[resource]) - units(resource, hard(base)[resource]), 2 * one[resource]!, `${resource}: raised by two instances`);
  }
  t.is(total.pods, worstMoment(base).total.pods + 2);
  // The base quota under three instances: the component's patch is what makes room.
  const unpatched = after('ResourceQuota', 'exercises-quota', (doc) => (doc.spec.hard = hard(base)));
  assertCaught(t, quotaProblems(unpatched), /ResourceQuota\/exercises-quota: \/spec\/hard\/requests\.cpu: the worst moment needs 2555m, the quota allows 2500m/);
  const docs = readFileSync(path.join(projectRoot, 'docs', 'resources.md'), 'utf8');
  t.true(docs.includes(worstMomentTable(manifests)), `docs/resources.md should hold this table:\n${worstMomentTable(manifests)}`);
});

manifestTest('Argo CD, which prunes what leaves git, never deletes the Cluster and with it its volumes', (t) => {
  const argo = renderKustomization('argocd');
  t.deepEqual(argoProblems(argo, { staging: loadEnvironment('staging'), production: manifests }, 'main'), []);
  const unprotected = after('Cluster', 'postgres', (doc) => delete doc.metadata.annotations);
  assertCaught(t, argoProblems(argo, { staging: loadEnvironment('staging'), production: unprotected }, 'main'), /production's db\/cloudnativepg\/postgres-cluster\.yaml Cluster\/postgres holds data but lacks argocd\.argoproj\.io\/sync-options Prune=false,Delete=false/);
});

manifestTest("docs/backups.md's restore one-liner for the Cluster runs as the backup CronJob does, with the same image, Secret and volumes", (t) => {
  const cronJob = find('CronJob', 'postgres-backup');
  const pod = cronJob.spec.jobTemplate.spec.template.spec;
  const container = backupContainer();
  const oneLiner = restoreOneLiners().find((found) => found.image === container.image);
  if (!oneLiner) return t.fail(`no restore one-liner with --image=${container.image} in docs/backups.md`);
  const [restorer] = oneLiner.spec.containers;
  t.is(restorer.image, container.image);
  t.deepEqual(restorer.env, (container.env as Obj[]).filter((e) => e.name.startsWith('PG')));
  t.is(restorer.envFrom, undefined);
  const volume = (spec: Obj, name: string) => spec.volumes.find((v: Obj) => v.name === name);
  t.deepEqual(volume(oneLiner.spec, 'backups'), volume(pod, 'backups'));
  t.deepEqual(volume(oneLiner.spec, 'scripts'), volume(pod, 'scripts'));
  t.deepEqual(restorer.command, ['bash', '/scripts/restore.sh', '/backups']);
  t.deepEqual(oneLiner.spec.securityContext, pod.securityContext);
  t.deepEqual(restorer.securityContext, container.securityContext);
});

manifestTest("the PodMonitor scrapes the exporter on every instance and nothing else, and the alert rules watch this Cluster", (t) => {
  const podMonitor = find('PodMonitor', 'postgres');
  const clusterName = cluster().metadata.name;
  for (let serial = 1; serial <= cluster().spec.instances; serial++) {
    t.true(selectorMatches(podMonitor.spec.selector, instancePodLabels(cluster(), serial)), `instance ${serial} is not scraped`);
  }
  t.false(selectorMatches(podMonitor.spec.selector, { 'cnpg.io/cluster': clusterName, 'cnpg.io/jobRole': 'join' }), 'the Jobs that make instances are scraped');
  for (const other of manifests) {
    for (const pod of podTemplates(other.doc)) t.false(selectorMatches(podMonitor.spec.selector, pod.labels), `it selects ${other.doc.kind}/${other.doc.metadata.name}`);
  }
  const [endpoint] = podMonitor.spec.podMetricsEndpoints;
  const ports = (instancePodSpec(cluster()).containers as Obj[]).flatMap((c) => c.ports);
  t.deepEqual(ports.find((p: Obj) => p.name === endpoint.port), { name: 'metrics', containerPort: 9187 });
  t.is(podMonitor.metadata.namespace, cluster().metadata.namespace);
  const relabel = (endpoint.relabelings as Obj[]).find((r) => r.targetLabel === 'cnpg_cluster');
  t.deepEqual(relabel?.sourceLabels, ['__meta_kubernetes_pod_label_cnpg_io_cluster']);
  for (const rule of find('PrometheusRule', 'postgres').spec.groups.flatMap((g: Obj) => g.rules) as Obj[]) {
    const selected = [...String(rule.expr).matchAll(/\bcnpg_\w+\{([^}]*)\}/g)].map(([, labels]) => labels);
    t.true(selected.length > 0 && selected.every((labels) => labels!.includes(`cnpg_cluster="${clusterName}"`)), `${rule.alert} looks at series of other Clusters too`);
    t.truthy(rule.labels?.severity && rule.annotations?.summary && rule.annotations?.description, `${rule.alert} lacks a severity, a summary or a description`);
  }
});

manifestTest("docs/cloudnativepg.md's backup example validates against CloudNativePG's CRDs, and schedules this Cluster's backups", (t) => {
  const docs = readFileSync(path.join(projectRoot, 'docs', 'cloudnativepg.md'), 'utf8');
  const block = [...docs.matchAll(/```yaml\n([\s\S]*?)```/g)].map(([, yaml]) => yaml!).find((yaml) => yaml.includes('kind: ScheduledBackup'));
  if (!block) return t.fail('no ScheduledBackup example in docs/cloudnativepg.md');
  const [patch, scheduled] = parseYamlDocuments(block, 'docs/cloudnativepg.md') as [Obj, Obj];
  t.like(patch, { kind: 'Cluster', metadata: { name: cluster().metadata.name, namespace: cluster().metadata.namespace } });
  const patched = { file: COMPONENT_DIR, doc: { ...cluster(), spec: { ...cluster().spec, ...patch.spec } } };
  t.deepEqual(schemaProblems(patched), []);
  t.deepEqual(schemaProblems({ file: 'docs/cloudnativepg.md', doc: scheduled }), []);
  t.is(scheduled.spec.cluster.name, cluster().metadata.name);
  t.is(scheduled.metadata.namespace, cluster().metadata.namespace);
  t.is(scheduled.spec.pluginConfiguration.name, patch.spec.plugins[0].name);
  // CloudNativePG's schedules have six fields, seconds first: a CronJob's five would mean something else.
  t.is(scheduled.spec.schedule.split(' ').length, 6);
  assertCaught(t, schemaProblems({ file: 'docs/cloudnativepg.md', doc: { ...scheduled, spec: { ...scheduled.spec, method: 'plugins' } } }), /\/spec\/method: must be equal to one of the allowed values/);
});

withPromtool('the Cluster\'s alert rules pass promtool check rules and their unit tests, and a wrong expectation fails', (t) => {
  const rules = path.join(projectRoot, COMPONENT_DIR, 'postgres-alert-rules.yaml');
  const testsFile = path.join(projectRoot, COMPONENT_DIR, 'alert-rules.test.yaml');
  const dir = tempDir(t, 'cnpg-rules-');
  writeFileSync(path.join(dir, 'postgres-alert-rules.yaml'), alertRulesText(rules));
  cpSync(testsFile, path.join(dir, 'alert-rules.test.yaml'));
  const check = spawnSync('promtool', ['check', 'rules', path.join(dir, 'postgres-alert-rules.yaml')], { encoding: 'utf8' });
  t.is(check.status, 0, check.stdout + check.stderr);
  const run = spawnSync('promtool', ['test', 'rules', path.join(dir, 'alert-rules.test.yaml')], { encoding: 'utf8' });
  t.is(run.status, 0, run.stdout + run.stderr);

  const wrong = readFileSync(testsFile, 'utf8').replace('severity: critical', 'severity: warning');
  t.not(wrong, readFileSync(testsFile, 'utf8'));
  writeFileSync(path.join(dir, 'alert-rules.test.yaml'), wrong);
  const failing = spawnSync('promtool', ['test', 'rules', path.join(dir, 'alert-rules.test.yaml')], { encoding: 'utf8' });
  t.is(failing.status, 1, 'promtool passed a test that expects the wrong severity');
});

manifestTest("docs/cloudnativepg.md's switch: the patches that stop the counting take pingpong and its Canary away, before the option and with it", (t) => {
  const docs = readFileSync(path.join(projectRoot, 'docs', 'cloudnativepg.md'), 'utf8');
  const block = [...docs.matchAll(/```yaml\n([\s\S]*?)```/g)].map(([, yaml]) => yaml!).find((yaml) => yaml.includes('kind: Canary'));
  if (!block) return t.fail('no patches deleting pingpong in docs/cloudnativepg.md');
  const { patches } = parseYamlDocuments(block.replace(/^ {3}/gm, ''), 'docs/cloudnativepg.md')[0] as Obj;
  for (const component of [false, true]) {
    const rendered = loadEnvironmentWith('production', { components: component ? [COMPONENT_DIR] : [], patches });
    const left = rendered.filter(({ doc }) => doc.metadata?.name === 'pingpong' && ['Service', 'Canary'].includes(doc.kind)).map(({ doc }) => `${doc.kind}/${doc.metadata.name}`);
    t.deepEqual(left, [], component ? 'steps 4 and 5, with the option' : 'steps 2 and 3, before it');
    t.is(rendered.some(({ doc }) => isCloudNativePgCluster(doc)), component);
    // What the page says: log-output still asks pingpong, and answers 503 naming it meanwhile. Nothing else refers to it.
    t.deepEqual(referenceProblems(rendered), ['knative/log-output.yaml Service/log-output: /spec/template/spec/containers/0/env/1: pingpong.exercises.svc.cluster.local: no Service or Knative Service named "pingpong"']);
  }
});

manifestTest('the patches test what they change: a base whose variables moved stops the render instead of patching the wrong one', (t) => {
  const root = tempDir(t, 'cnpg-root-');
  cpSync(sealedRoot(), root, { recursive: true });
  const pingpong = path.join(root, 'knative', 'pingpong.yaml');
  const original = readFileSync(pingpong, 'utf8');
  const reordered = original.replace(/( *)- name: PGHOST\n\1  value: (\S+)\n( *- name: DB_POOL_SIZE\n *value: "5"\n)/, '$3$1- name: PGHOST\n$1  value: $2\n');
  t.not(reordered, original, 'PGHOST and DB_POOL_SIZE swapped places');
  writeFileSync(pingpong, reordered);
  t.throws(() => loadEnvironmentWith('production', { components: [COMPONENT_DIR], from: root }), { message: /testing value \/spec\/template\/spec\/containers\/0\/env\/1\/name failed/ });
});
