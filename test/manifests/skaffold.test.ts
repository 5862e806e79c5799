/**
 * skaffold.yaml against skaffold's v4beta14 schema and against what `kubectl apply -k` deploys, each
 * profile applied, with skaffold's image rewriting modelled; and the dev profile's hook, run against a
 * stand-in kubectl (no cluster here).
 */
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import test, { type ExecutionContext } from 'ava';
import { projectRoot } from '../../functions/shared/config';
import { assertCaught, loadManifests, manifestTest, renderKustomization, type Manifest, type Obj } from '../helpers/manifests';
import { applyPatches, imageFields, kustomizePaths, loadSkaffold, rewriteImages, skaffoldProblems, variants } from '../helpers/skaffold';
import { tempDir } from '../helpers/temp';

const manifests = loadManifests();
const config = loadSkaffold();
const problemsAfter = (change: (config: Obj) => void, render?: (dir: string) => Manifest[]) => {
  const copy = structuredClone(config);
  change(copy);
  return skaffoldProblems(copy, manifests, projectRoot, render);
};
const profile = (copy: Obj, name: string) => (copy.profiles as Obj[]).find((p) => p.name === name)!;
/** The real renderer, with `change` applied to what one kustomization renders. */
const renderChanged = (dir: string, change: (rendered: Manifest[]) => void) => (d: string) => {
  const rendered = renderKustomization(d);
  if (d === dir) change(rendered);
  return rendered;
};

manifestTest('skaffold.yaml validates against skaffold\'s schema and deploys what `kubectl apply -k .` deploys, with each profile applied', (t) => {
  t.deepEqual(skaffoldProblems(config, manifests), []);
  t.deepEqual(variants(config).map((v) => v.name), ['default', 'dev', 'registry', 'monitoring']);
});

manifestTest('monitoring/ is deployed by the monitoring profile only, which no command turns on: the rest needs no prometheus-operator CRDs', (t) => {
  const operatorKinds = (paths: string[]) => paths.flatMap((dir) => renderKustomization(dir)).filter((m) => String(m.doc.apiVersion).startsWith('monitoring.coreos.com/'));
  for (const { name, config: variant } of variants(config)) {
    const paths = kustomizePaths(variant);
    t.is(paths.includes('monitoring'), name === 'monitoring', `${name} renders ${paths.join(', ')}`);
    t.is(operatorKinds(paths).length > 0, name === 'monitoring', `${name}: prometheus-operator's kinds`);
  }
  t.is(profile(config, 'monitoring').activation, undefined);
  // `skaffold dev -p monitoring`: dev, which the command turns on, then monitoring.
  const devThenMonitoring = applyPatches(applyPatches(variants(config)[0]!.config, profile(config, 'dev').patches), profile(config, 'monitoring').patches);
  t.deepEqual(kustomizePaths(devThenMonitoring), ['knative', 'db', 'monitoring']);
});

test('the default renders the top-level kustomization; dev renders knative/ and db/, leaving the namespace and Secrets to its hook', (t) => {
  const [base, dev] = variants(config);
  t.deepEqual(kustomizePaths(base!.config), ['.']);
  t.deepEqual(kustomizePaths(dev!.config), ['knative', 'db']);
  t.deepEqual(dev!.config.deploy.kubectl.hooks.before[0].host.command, ['sh', 'scripts/dev-secrets.sh']);
  t.deepEqual(kustomizePaths({ manifests: { kustomize: {} } }), ['.'], 'skaffold\'s default path');
});

manifestTest('skaffold rewrites the built image wherever it appears: the Services and the DaemonSet\'s init container', (t) => {
  const rewritten = rewriteImages(manifests, { 'dev.local/functions': 'dev.local/functions:abc123' });
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
  assertCaught(t, problemsAfter((c) => (profile(c, 'dev').patches[1].value.before[0].host.cmd = ['true'])), /skaffold\.yaml \(dev\): \/deploy\/kubectl\/hooks\/before\/0\/host\/cmd: unknown field/);
  assertCaught(t, problemsAfter((c) => (c.manifests.kustomize.path = ['.'])), /\/manifests\/kustomize\/path: unknown field/);
  assertCaught(t, problemsAfter((c) => (c.apiVersion = 'skaffold/v4beta13')), /\/apiVersion: must be skaffold\/v4beta14/);
});

manifestTest('what the kustomizations deploy: an object left out, a path that does not render, raw YAML beside them, the namespace not first', (t) => {
  assertCaught(t, problemsAfter((c) => (profile(c, 'dev').patches[0].value = ['knative'])), /\(dev\): \/manifests\/kustomize\/paths: db\/postgres-statefulset\.yaml StatefulSet\/postgres is never deployed/);
  assertCaught(t, problemsAfter((c) => c.manifests.kustomize.paths.push('k8s')), /\(default\): \/manifests\/kustomize\/paths: kubectl kustomize k8s failed: .*k8s.*no such file or directory/);
  assertCaught(t, problemsAfter((c) => (c.manifests.rawYaml = ['knative/*.yaml'])), /\(default\): \/manifests\/rawYaml: deploy what `kubectl apply -k` deploys: manifests\.kustomize only/);
  // The dev profile leaves the namespace to its hook (so Ctrl-C keeps it); a hook that does not apply it is caught.
  assertCaught(t, problemsAfter((c) => (profile(c, 'dev').patches[1].value.before[0].host.command = ['sh', 'scripts/start.ts'])), /\(dev\): \/manifests\/kustomize\/paths: the Namespace must come first/);
  assertCaught(t, problemsAfter((c) => profile(c, 'dev').patches[0].value.push('.')), /\(dev\): \/manifests\/kustomize\/paths: knative\/pixabay-apikey\.sealedsecret\.yaml SealedSecret\/pixabay-apikey must not be deployed/);
  const extra = { file: 'knative/extra.yaml', doc: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'extra', namespace: 'exercises' } } };
  assertCaught(t, problemsAfter(() => undefined, renderChanged('knative', (r) => r.push(extra))), /\(dev\): .*ConfigMap\/extra is in no kustomization the tests check/);
  // A profile may add a kustomization of its own (monitoring/) when the tests render it too (DEPLOY_DIRS).
  const addOn = { file: 'monitoring/dashboard.yaml', doc: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'dashboard', namespace: 'exercises' } } };
  assertCaught(t, problemsAfter(() => undefined, renderChanged('monitoring', (r) => r.push(addOn))), /\(monitoring\): .*ConfigMap\/dashboard is in no kustomization the tests check \(DEPLOY_DIRS/);
});

manifestTest('images: built ones reach every manifest under a registry Knative does not resolve; the others are pinned', (t) => {
  assertCaught(t, problemsAfter((c) => (c.build.artifacts[0].image = 'dev.local/function')), /\/build\/artifacts\/0\/image: dev\.local\/function appears in no manifest skaffold rewrites/);
  assertCaught(t, problemsAfter((c) => (c.build.artifacts[0].image = 'docker.io/me/functions')), /use dev\.local or kind\.local\/\.\.\., which Knative does not try to resolve/);
  assertCaught(t, problemsAfter((c) => (c.build.artifacts[0].docker.dockerfile = 'Containerfile')), /\/build\/artifacts\/0: no Containerfile/);
  const postgres = (change: (doc: Obj) => void) => renderChanged('db', (r) => change(r.find((m) => m.doc.kind === 'StatefulSet')!.doc));
  assertCaught(t, problemsAfter(() => undefined, postgres((doc) => (doc.spec.template.spec.containers[0].image = 'postgres'))), /StatefulSet\/postgres: \/spec\/template\/spec\/containers\/0\/image: postgres is neither built by skaffold nor pinned to a version/);
  // Where skaffold would not put the image it built.
  const thing = { file: 'knative/thing.yaml', doc: { apiVersion: 'example.com/v1', kind: 'Thing', metadata: { name: 'thing', namespace: 'exercises' }, spec: { image: 'dev.local/functions' } } };
  assertCaught(t, problemsAfter(() => undefined, renderChanged('knative', (r) => r.push(thing))), /Thing\/thing: \/spec\/image: dev\.local\/functions would not become the image skaffold built \(skaffold rewrites images only in/);
  const daemonSet = (change: (doc: Obj) => void) => renderChanged('knative', (r) => change(r.find((m) => m.doc.kind === 'DaemonSet')!.doc));
  assertCaught(t, problemsAfter(() => undefined, daemonSet((doc) => (doc.spec.template.spec.initContainers[0].image = 'dev.local/functions@sha256:0123'))), /initContainers\/0\/image: dev\.local\/functions@sha256:0123 would not become the image skaffold built \(skaffold leaves images pinned by digest alone\)/);
  // The pre-pull must run something the image has: its CMD's program.
  assertCaught(t, problemsAfter(() => undefined, daemonSet((doc) => (doc.spec.template.spec.initContainers[0].command = ['true']))), /DaemonSet\/image-prepull: .*initContainers\/0\/command: runs true, but the image built from the Dockerfile is known to have only node/);
});

manifestTest('port-forwarding goes to the ingress, never to a Knative Service\'s own Service', (t) => {
  assertCaught(t, problemsAfter((c) => (c.portForward[0] = { resourceType: 'service', resourceName: 'pingpong', namespace: 'exercises', port: 80 })), /\/portForward\/0: forward Knative's ingress, not pingpong in exercises/);
});

manifestTest('profiles: patches only, a dev profile that `skaffold dev` activates, hooks that exist', (t) => {
  assertCaught(t, problemsAfter((c) => (profile(c, 'registry').build = { local: { push: true } })), /\/profiles\/1: change the configuration with patches only, not build/);
  assertCaught(t, problemsAfter((c) => delete profile(c, 'dev').activation), /\(dev\): \/activation: must activate on `skaffold dev`/);
  assertCaught(t, problemsAfter((c) => profile(c, 'dev').patches.pop()), /\(dev\): \/deploy\/kubectl\/hooks\/before: must make the Secrets/);
  assertCaught(t, problemsAfter((c) => (profile(c, 'dev').patches[1].value.before[0].host.command = ['sh', 'scripts/dev-secret.sh'])), /scripts\/dev-secret\.sh does not exist/);
  assertCaught(t, problemsAfter((c) => (profile(c, 'registry').patches[0].path = '/biuld/local')), /\/profiles: patch add \/biuld\/local: no such parent/);
});

test('profile patches apply as skaffold applies them', (t) => {
  const base = { a: { b: [1, 2] }, c: 1 };
  t.deepEqual(applyPatches(base, [{ op: 'add', path: '/a/b/-', value: 3 }, { op: 'replace', path: '/c', value: 2 }, { op: 'remove', path: '/a/b/0' }]), { a: { b: [2, 3] }, c: 2 });
  t.deepEqual(base, { a: { b: [1, 2] }, c: 1 }, 'the base is left alone');
  t.throws(() => applyPatches(base, [{ op: 'move', from: '/c', path: '/d' }]), { message: /only add, replace and remove/ });
});

// ---------------------------------------------------------------------------------------------------
// The dev profile's hook, against a stand-in kubectl that records what it is asked to do.

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
  const result = await run('sh', [path.join(projectRoot, 'scripts', 'dev-secrets.sh'), envFile], {
    env: { ...process.env, PATH: `${kubectl.bin}:${process.env.PATH}` },
  }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (error: { code: number; stdout: string; stderr: string }) => ({ code: error.code, stdout: error.stdout, stderr: error.stderr }),
  );
  return { ...result, calls: readFileSync(kubectl.log, 'utf8').trim().split('\n').filter(Boolean) };
}

test('the dev hook makes both Secrets from .env, in the namespace it applies first, keeping values off command lines', async (t) => {
  const { code, calls, stderr } = await devSecrets(t, 
    'API_KEY=test-key-123\nPGUSER=pingpong\nPGPASSWORD=test-first\nPGPASSWORD=test-s3cret=with=equals\nPGDATABASE=pingpong\nOTHER=not-a-secret\n',
  );
  t.is(code, 0, stderr);
  t.is(calls[0], `ARGS apply --filename=${path.join(projectRoot, 'knative', 'namespace.yaml')}`);
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
