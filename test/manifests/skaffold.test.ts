/**
 * skaffold.yaml against skaffold's v4beta14 schema and against the dev environment it deploys
 * (environments/dev and what its hook applies), each profile applied, with skaffold's image rewriting
 * modelled; and the hook, run against a stand-in kubectl (no cluster here).
 */
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import test, { type ExecutionContext } from 'ava';
import { projectRoot } from '../../functions/shared/config';
import { SECRET_KEYS } from '../../scripts/sealed-secret';
import { assertCaught, loadEnvironment, manifestTest, renderKustomization, type Manifest, type Obj } from '../helpers/manifests';
import { applyPatches, DEV_ENVIRONMENT, imageFields, kustomizePaths, loadSkaffold, rewriteImages, skaffoldProblems, variants } from '../helpers/skaffold';
import { tempDir } from '../helpers/temp';

const dev = loadEnvironment('dev');
const config = loadSkaffold();
const problemsAfter = (change: (config: Obj) => void, render?: (dir: string) => Manifest[]) => {
  const copy = structuredClone(config);
  change(copy);
  return skaffoldProblems(copy, dev, projectRoot, render);
};
const profile = (copy: Obj, name: string) => (copy.profiles as Obj[]).find((p) => p.name === name)!;
const hook = (copy: Obj) => copy.deploy.kubectl.hooks.before[0].host;
/** The real renderer, with `change` applied to what one kustomization renders. */
const renderChanged = (dir: string, change: (rendered: Manifest[]) => void) => (d: string) => {
  const rendered = renderKustomization(d);
  if (d === dir) change(rendered);
  return rendered;
};

manifestTest('skaffold.yaml validates against skaffold\'s schema and deploys the dev environment, with each profile applied', (t) => {
  t.deepEqual(skaffoldProblems(config, dev), []);
  t.deepEqual(variants(config).map((v) => v.name), ['default', 'registry', 'monitoring']);
});

manifestTest('monitoring/ is deployed by the monitoring profile only, which no command turns on: the rest needs no prometheus-operator CRDs', (t) => {
  const operatorKinds = (paths: string[]) => paths.flatMap((dir) => renderKustomization(dir)).filter((m) => String(m.doc.apiVersion).startsWith('monitoring.coreos.com/'));
  for (const { name, config: variant } of variants(config)) {
    const paths = kustomizePaths(variant);
    t.is(paths.includes('monitoring'), name === 'monitoring', `${name} renders ${paths.join(', ')}`);
    t.is(operatorKinds(paths).length > 0, name === 'monitoring', `${name}: prometheus-operator's kinds`);
  }
  t.is(profile(config, 'monitoring').activation, undefined);
});

test('skaffold renders environments/dev, after a hook that applies what Ctrl-C must leave', (t) => {
  const [base] = variants(config);
  t.deepEqual(kustomizePaths(base!.config), [DEV_ENVIRONMENT]);
  t.deepEqual(hook(base!.config).command, ['sh', 'scripts/dev-setup.sh']);
  t.deepEqual(kustomizePaths({ manifests: { kustomize: {} } }), ['.'], 'skaffold\'s default path');
});

manifestTest('nothing that holds data is among what skaffold deploys, so Ctrl-C deletes none: the namespace and the backups\' volume come from the hook', (t) => {
  const deployed = variants(config).flatMap(({ config: variant }) => kustomizePaths(variant).flatMap((dir) => renderKustomization(dir)));
  t.deepEqual(deployed.filter((m) => ['Namespace', 'PersistentVolumeClaim'].includes(m.doc.kind)).map((m) => m.doc.kind), []);
  const postgres = deployed.find((m) => m.doc.kind === 'StatefulSet')!;
  t.not(postgres.doc.spec.persistentVolumeClaimRetentionPolicy?.whenDeleted, 'Delete', 'the data volume stays when the StatefulSet goes');
  const fromHook = dev.filter((m) => !deployed.some((d) => d.doc.kind === m.doc.kind && d.doc.metadata.name === m.doc.metadata.name));
  // The hook makes the same Secrets, with the same keys, that staging and production seal.
  const hookSecrets = Object.fromEntries(fromHook.filter((m) => m.doc.kind === 'Secret').map((m) => [m.doc.metadata.name, Object.keys(m.doc.data)]));
  t.deepEqual(hookSecrets, SECRET_KEYS);
  t.deepEqual(fromHook.map((m) => `${m.doc.kind}/${m.doc.metadata.name}`), ['Namespace/exercises', 'PersistentVolumeClaim/postgres-backups', 'Secret/pixabay-apikey', 'Secret/postgres-credentials']);
  // Each way of putting data back among what skaffold deletes is caught.
  const claim = { file: 'db/backups/backup-pvc.yaml', doc: { apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: 'postgres-backups', namespace: 'exercises' }, spec: {} } };
  assertCaught(t, problemsAfter(() => undefined, renderChanged(DEV_ENVIRONMENT, (r) => r.push(claim))), /\(default\): .*PersistentVolumeClaim\/postgres-backups holds data, which Ctrl-C would delete: let the hook apply it/);
  const retention = renderChanged(DEV_ENVIRONMENT, (r) => (r.find((m) => m.doc.kind === 'StatefulSet')!.doc.spec.persistentVolumeClaimRetentionPolicy = { whenDeleted: 'Delete' }));
  assertCaught(t, problemsAfter(() => undefined, retention), /StatefulSet\/postgres: \/spec\/persistentVolumeClaimRetentionPolicy\/whenDeleted: Delete would take its volumes/);
  assertCaught(t, problemsAfter((c) => (hook(c).command = ['sh', 'scripts/lint-migrations.sh'])), /\(default\): \/deploy\/kubectl\/hooks\/before: must apply the namespace/);
  assertCaught(t, problemsAfter((c) => (hook(c).command = ['sh', 'scripts/lint-migrations.sh'])), /\(default\): .*PersistentVolumeClaim\/postgres-backups is never deployed/);
});

manifestTest('skaffold rewrites the built image wherever it appears: the Services and the DaemonSet\'s init container', (t) => {
  // The functions' base, DaemonSet included (dev leaves it out: skaffold loads the image into every node itself).
  const rewritten = rewriteImages(renderKustomization('knative'), { 'dev.local/functions': 'dev.local/functions:abc123' });
  const places = rewritten.flatMap((m) => imageFields(m.doc).filter((f) => f.image === 'dev.local/functions:abc123').map((f) => `${m.doc.kind}/${m.doc.metadata.name} ${f.at}`));
  t.deepEqual(places.sort(), [
    'DaemonSet/image-prepull /spec/template/spec/initContainers/0/image',
    'Service/image-proxy /spec/template/spec/containers/0/image',
    'Service/log-output /spec/template/spec/containers/0/image',
    'Service/pingpong /spec/template/spec/containers/0/image',
  ]);
  t.false(rewritten.some((m) => imageFields(m.doc).some((f) => f.image === 'dev.local/functions')), 'no bare name is left');
  // Images pinned by digest and kinds outside skaffold's list are left alone.
  const foreign = { file: 'x.yaml', doc: { apiVersion: 'example.com/v1', kind: 'Thing', metadata: { name: 'x' }, spec: { image: 'dev.local/functions' } } };
  const pinned = { file: 'y.yaml', doc: { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'y' }, spec: { containers: [{ image: 'dev.local/functions@sha256:abc' }] } } };
  t.deepEqual(rewriteImages([foreign, pinned], { 'dev.local/functions': 'dev.local/functions:abc123' }).map((m) => imageFields(m.doc)[0]!.image), ['dev.local/functions', 'dev.local/functions@sha256:abc']);
});

test('unknown fields and wrong types in skaffold.yaml are caught, in the base and in a profile\'s result', (t) => {
  assertCaught(t, problemsAfter((c) => (c.build.artifacts[0].dockerfile = 'Dockerfile')), /skaffold\.yaml \(default\): .*dockerfile/);
  assertCaught(t, problemsAfter((c) => (c.deploy.kubectl.flag = {})), /\/deploy\/kubectl\/flag: unknown field/);
  assertCaught(t, problemsAfter((c) => (c.portForward[0].port = [80])), /\/portForward\/0\/port/);
  assertCaught(t, problemsAfter((c) => (hook(c).cmd = ['true'])), /skaffold\.yaml \(default\): \/deploy\/kubectl\/hooks\/before\/0\/host\/cmd: unknown field/);
  assertCaught(t, problemsAfter((c) => (profile(c, 'registry').patches[0].value.pus = true)), /skaffold\.yaml \(registry\): \/build\/local\/pus: unknown field/);
  assertCaught(t, problemsAfter((c) => (c.manifests.kustomize.path = ['.'])), /\/manifests\/kustomize\/path: unknown field/);
  assertCaught(t, problemsAfter((c) => (c.apiVersion = 'skaffold/v4beta13')), /\/apiVersion: must be skaffold\/v4beta14/);
});

manifestTest('what the kustomizations deploy: an object left out, a path that does not render, raw YAML beside them, a SealedSecret', (t) => {
  assertCaught(t, problemsAfter((c) => (c.manifests.kustomize.paths = ['knative'])), /\(default\): \/manifests\/kustomize\/paths: db\/postgres-statefulset\.yaml StatefulSet\/postgres is never deployed/);
  assertCaught(t, problemsAfter((c) => c.manifests.kustomize.paths.push('k8s')), /\(default\): \/manifests\/kustomize\/paths: kubectl kustomize k8s failed: .*k8s.*no such file or directory/);
  assertCaught(t, problemsAfter((c) => (c.manifests.rawYaml = ['knative/*.yaml'])), /\(default\): \/manifests\/rawYaml: deploy what `kubectl apply -k` deploys: manifests\.kustomize only/);
  const sealed = { file: 'environments/production/pixabay-apikey.sealedsecret.yaml', doc: { apiVersion: 'bitnami.com/v1alpha1', kind: 'SealedSecret', metadata: { name: 'pixabay-apikey', namespace: 'exercises' }, spec: {} } };
  assertCaught(t, problemsAfter(() => undefined, renderChanged(DEV_ENVIRONMENT, (r) => r.push(sealed))), /\(default\): .*SealedSecret\/pixabay-apikey must not be deployed: the hook makes the Secrets/);
  const extra = { file: 'knative/extra.yaml', doc: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'extra', namespace: 'exercises' } } };
  assertCaught(t, problemsAfter((c) => c.manifests.kustomize.paths.push('extra'), (d) => (d === 'extra' ? [extra] : renderKustomization(d))), /\(default\): .*ConfigMap\/extra is in none of environments\/dev, monitoring/);
});

manifestTest('images: built ones reach every manifest under a registry Knative does not resolve; the others are pinned', (t) => {
  assertCaught(t, problemsAfter((c) => (c.build.artifacts[0].image = 'dev.local/function')), /\/build\/artifacts\/0\/image: dev\.local\/function appears in no manifest skaffold rewrites/);
  assertCaught(t, problemsAfter((c) => (c.build.artifacts[0].image = 'docker.io/me/functions')), /use dev\.local or kind\.local\/\.\.\., which Knative does not try to resolve/);
  assertCaught(t, problemsAfter((c) => (c.build.artifacts[0].docker.dockerfile = 'Containerfile')), /\/build\/artifacts\/0: no Containerfile/);
  const postgres = (change: (doc: Obj) => void) => renderChanged(DEV_ENVIRONMENT, (r) => change(r.find((m) => m.doc.kind === 'StatefulSet')!.doc));
  assertCaught(t, problemsAfter(() => undefined, postgres((doc) => (doc.spec.template.spec.containers[0].image = 'postgres'))), /StatefulSet\/postgres: \/spec\/template\/spec\/containers\/0\/image: postgres is neither built by skaffold nor pinned to a version/);
  // Where skaffold would not put the image it built.
  const thing = { file: 'knative/thing.yaml', doc: { apiVersion: 'example.com/v1', kind: 'Thing', metadata: { name: 'thing', namespace: 'exercises' }, spec: { image: 'dev.local/functions' } } };
  assertCaught(t, problemsAfter(() => undefined, renderChanged(DEV_ENVIRONMENT, (r) => r.push(thing))), /Thing\/thing: \/spec\/image: dev\.local\/functions would not become the image skaffold built \(skaffold rewrites images only in/);
  // The pre-pull DaemonSet, as the base has it, put into dev.
  const daemonSet = (change: (doc: Obj) => void) =>
    renderChanged(DEV_ENVIRONMENT, (r) => {
      const prepull = renderKustomization('knative').find((m) => m.doc.kind === 'DaemonSet')!;
      change(prepull.doc);
      r.push(prepull);
    });
  assertCaught(t, problemsAfter(() => undefined, daemonSet((doc) => (doc.spec.template.spec.initContainers[0].image = 'dev.local/functions@sha256:0123'))), /initContainers\/0\/image: dev\.local\/functions@sha256:0123 would not become the image skaffold built \(skaffold leaves images pinned by digest alone\)/);
  // The pre-pull must run something the image has: its CMD's program.
  assertCaught(t, problemsAfter(() => undefined, daemonSet((doc) => (doc.spec.template.spec.initContainers[0].command = ['true']))), /DaemonSet\/image-prepull: .*initContainers\/0\/command: runs true, but the image built from the Dockerfile is known to have only node/);
});

manifestTest('port-forwarding goes to the ingress, never to a Knative Service\'s own Service', (t) => {
  assertCaught(t, problemsAfter((c) => (c.portForward[0] = { resourceType: 'service', resourceName: 'pingpong', namespace: 'exercises', port: 80 })), /\/portForward\/0: forward Knative's ingress, not pingpong in exercises/);
});

manifestTest('profiles: patches only, hooks that exist', (t) => {
  assertCaught(t, problemsAfter((c) => (profile(c, 'registry').build = { local: { push: true } })), /\/profiles\/0: change the configuration with patches only, not build/);
  assertCaught(t, problemsAfter((c) => (hook(c).command = ['sh', 'scripts/dev-setp.sh'])), /scripts\/dev-setp\.sh does not exist/);
  assertCaught(t, problemsAfter((c) => (profile(c, 'registry').patches[0].path = '/biuld/local')), /\/profiles: patch add \/biuld\/local: no such parent/);
});

test('profile patches apply as skaffold applies them', (t) => {
  const base = { a: { b: [1, 2] }, c: 1 };
  t.deepEqual(applyPatches(base, [{ op: 'add', path: '/a/b/-', value: 3 }, { op: 'replace', path: '/c', value: 2 }, { op: 'remove', path: '/a/b/0' }]), { a: { b: [2, 3] }, c: 2 });
  t.deepEqual(base, { a: { b: [1, 2] }, c: 1 }, 'the base is left alone');
  t.throws(() => applyPatches(base, [{ op: 'move', from: '/c', path: '/d' }]), { message: /only add, replace and remove/ });
});

// ---------------------------------------------------------------------------------------------------
// The hook, against a stand-in kubectl that records what it is asked to do.

const run = promisify(execFile);

function standInKubectl(t: ExecutionContext): { bin: string; log: string } {
  const dir = tempDir(t, 'kubectl-');
  const log = path.join(dir, 'calls.log');
  writeFileSync(log, '');
  writeFileSync(
    path.join(dir, 'kubectl'),
    `#!/bin/sh
printf 'ARGS %s\\n' "$*" >> "${log}"
for arg in "$@"; do
  case "$arg" in
    --from-env-file=*) printf 'FILE %s\\n' "$(tr '\\n' ' ' < "\${arg#--from-env-file=}")" >> "${log}" ;;
    --filename=-) printf 'STDIN %s\\n' "$(cat)" >> "${log}" ;;
  esac
done
[ "$1" = create ] && printf 'made-from %s\\n' "$4"
exit 0
`,
  );
  chmodSync(path.join(dir, 'kubectl'), 0o755);
  return { bin: dir, log };
}

async function devSecrets(t: ExecutionContext, envText: string | undefined) {
  const kubectl = standInKubectl(t);
  const envFile = path.join(tempDir(t, 'dotenv-'), '.env');
  if (envText !== undefined) writeFileSync(envFile, envText);
  const result = await run('sh', [path.join(projectRoot, 'scripts', 'dev-setup.sh'), envFile], {
    env: { ...process.env, PATH: `${kubectl.bin}:${process.env.PATH}` },
  }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (error: { code: number; stdout: string; stderr: string }) => ({ code: error.code, stdout: error.stdout, stderr: error.stderr }),
  );
  return { ...result, calls: readFileSync(kubectl.log, 'utf8').trim().split('\n').filter(Boolean) };
}

test('the dev hook applies the namespace and the backups\' volume, then makes both Secrets from .env, keeping values off command lines', async (t) => {
  const { code, calls, stderr } = await devSecrets(t, 
    'API_KEY=test-key-123\nPGUSER=pingpong\nPGPASSWORD=test-first\nPGPASSWORD=test-s3cret=with=equals\nPGDATABASE=pingpong\nOTHER=not-a-secret\n',
  );
  t.is(code, 0, stderr);
  t.is(calls[0], `ARGS apply --filename=${path.join(projectRoot, 'environments', 'dev', 'namespace.yaml')}`);
  t.is(calls[1], `ARGS apply --filename=${path.join(projectRoot, 'db', 'backups', 'backup-pvc.yaml')}`);
  const creates = calls.filter((line) => line.startsWith('ARGS create'));
  t.deepEqual(creates.map((line) => line.split(' ').slice(1, 6).join(' ')), [
    'create secret generic pixabay-apikey --namespace=exercises',
    'create secret generic postgres-credentials --namespace=exercises',
  ]);
  t.deepEqual(calls.filter((line) => line.startsWith('FILE')), [
    'FILE API_KEY=test-key-123 ',
    'FILE PGUSER=pingpong PGPASSWORD=test-s3cret=with=equals PGDATABASE=pingpong ',
  ]);
  t.deepEqual(calls.filter((line) => line.startsWith('STDIN')), ['STDIN made-from pixabay-apikey', 'STDIN made-from postgres-credentials']);
  t.false(calls.filter((line) => line.startsWith('ARGS')).some((line) => /key-123|s3cret/.test(line)), 'no value on a command line');
  const files = creates.map((line) => /--from-env-file=(\S+)/.exec(line)![1]!);
  t.false(files.some((file) => existsSync(file)), 'the temporary files are gone');
});

test('the dev hook stops with a clear message when .env is missing or lacks a key', async (t) => {
  const missing = await devSecrets(t, undefined);
  t.is(missing.code, 1);
  t.regex(missing.stderr, /\.env not found: copy \.env\.example to \.env and fill in API_KEY, PGUSER, PGPASSWORD and PGDATABASE/);
  t.deepEqual(missing.calls, []);

  const partial = await devSecrets(t, 'API_KEY=test-key-123\nPGUSER=pingpong\nPGPASSWORD=\nPGDATABASE=pingpong\n');
  t.is(partial.code, 1);
  t.regex(partial.stderr, /has no value for PGPASSWORD/);
  t.false(partial.calls.some((line) => line.includes('postgres-credentials')));
});
