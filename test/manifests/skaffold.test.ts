/**
 * skaffold.yaml against skaffold's v4beta14 schema and against the manifests, each profile applied;
 * and the dev profile's hook, run against a stand-in kubectl (no cluster here).
 */
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import test from 'ava';
import { projectRoot } from '../../functions/shared/config';
import { assertCaught, loadManifests, type Obj } from '../helpers/manifests';
import { applyPatches, loadSkaffold, rawYamlFiles, skaffoldProblems, variants } from '../helpers/skaffold';

const manifests = loadManifests();
const config = loadSkaffold();
const problemsAfter = (change: (config: Obj) => void) => {
  const copy = structuredClone(config);
  change(copy);
  return skaffoldProblems(copy, manifests);
};
const profile = (copy: Obj, name: string) => (copy.profiles as Obj[]).find((p) => p.name === name)!;

test('skaffold.yaml validates against skaffold\'s schema and agrees with the manifests, with each profile applied', (t) => {
  t.deepEqual(skaffoldProblems(config, manifests), []);
  t.deepEqual(variants(config).map((v) => v.name), ['default', 'dev', 'registry', 'monitoring']);
});

test('monitoring/ is deployed by the monitoring profile only, which no command turns on: the rest needs no prometheus-operator CRDs', (t) => {
  for (const { name, config: variant } of variants(config)) {
    const kustomizations = variant.manifests?.kustomize?.paths ?? [];
    t.deepEqual(kustomizations, name === 'monitoring' ? ['monitoring'] : [], `${name} deploys ${kustomizations.join(', ') || 'no kustomization'}`);
    const kinds = manifests.filter((m) => rawYamlFiles(variant).files.includes(m.file)).map((m) => String(m.doc.apiVersion));
    t.false(kinds.some((apiVersion) => apiVersion.startsWith('monitoring.coreos.com/')), `${name} deploys a prometheus-operator kind by rawYaml`);
  }
  t.is(profile(config, 'monitoring').activation, undefined);
  assertCaught(t, problemsAfter((c) => (profile(c, 'monitoring').patches[0].value.paths = ['monitor'])), /\(monitoring\): \/manifests\/kustomize\/paths\/0: no monitor\/kustomization\.yaml/);
});

test('the default deploys the namespace first, then every manifest; dev leaves the namespace and Secrets to its hook', (t) => {
  const [base, dev] = variants(config);
  const files = rawYamlFiles(base!.config).files;
  t.is(files[0], 'knative/namespace.yaml');
  t.true(files.includes('knative/postgres-credentials.sealedsecret.yaml'));
  const devFiles = rawYamlFiles(dev!.config).files;
  t.false(devFiles.some((file) => file.endsWith('.sealedsecret.yaml') || file === 'knative/namespace.yaml'));
  t.deepEqual(dev!.config.deploy.kubectl.hooks.before[0].host.command, ['sh', 'scripts/dev-secrets.sh']);
});

test('unknown fields and wrong types in skaffold.yaml are caught, in the base and in a profile\'s result', (t) => {
  assertCaught(t, problemsAfter((c) => (c.build.artifacts[0].dockerfile = 'Dockerfile')), /skaffold\.yaml \(default\): .*dockerfile/);
  assertCaught(t, problemsAfter((c) => (c.deploy.kubectl.flag = {})), /\/deploy\/kubectl\/flag: unknown field/);
  assertCaught(t, problemsAfter((c) => (c.portForward[0].port = [80])), /\/portForward\/0\/port/);
  assertCaught(t, problemsAfter((c) => (profile(c, 'dev').patches[1].value.before[0].host.cmd = ['true'])), /skaffold\.yaml \(dev\): \/deploy\/kubectl\/hooks\/before\/0\/host\/cmd: unknown field/);
  assertCaught(t, problemsAfter((c) => (c.apiVersion = 'skaffold/v4beta13')), /\/apiVersion: must be skaffold\/v4beta14/);
});

test('what rawYaml deploys: a manifest left out, a pattern matching nothing, the namespace not first', (t) => {
  assertCaught(t, problemsAfter((c) => (c.manifests.rawYaml = ['knative/namespace.yaml', 'knative/*.yaml'])), /\(default\): \/manifests\/rawYaml: db\/postgres-statefulset\.yaml is never deployed/);
  assertCaught(t, problemsAfter((c) => c.manifests.rawYaml.push('k8s/*.yaml')), /k8s\/\*\.yaml matches no file/);
  assertCaught(t, problemsAfter((c) => (c.manifests.rawYaml = ['db/*.yaml', 'knative/*.yaml'])), /the Namespace manifest must come first \(or be applied by a before-deploy hook\), got db\/[\w-]+\.yaml/);
  // The dev profile leaves the namespace to its hook (so Ctrl-C keeps it); a hook that does not apply it is caught.
  assertCaught(t, problemsAfter((c) => (profile(c, 'dev').patches[1].value.before[0].host.command = ['sh', 'scripts/start.ts'])), /\(dev\): \/manifests\/rawYaml: the Namespace manifest must come first/);
  assertCaught(t, problemsAfter((c) => profile(c, 'dev').patches[0].value.pop()), /\(dev\): \/manifests\/rawYaml: knative\/pingpong\.yaml is never deployed/);
  assertCaught(t, problemsAfter((c) => profile(c, 'dev').patches[0].value.push('knative/*.sealedsecret.yaml')), /\(dev\): \/manifests\/rawYaml: knative\/pixabay-apikey\.sealedsecret\.yaml must not be deployed/);
});

test('images: built ones appear in the manifests under a registry Knative does not resolve; the others are pinned', (t) => {
  assertCaught(t, problemsAfter((c) => (c.build.artifacts[0].image = 'dev.local/function')), /\/build\/artifacts\/0\/image: dev\.local\/function appears in no manifest/);
  assertCaught(t, problemsAfter((c) => (c.build.artifacts[0].image = 'docker.io/me/functions')), /use dev\.local or kind\.local\/\.\.\., which Knative does not try to resolve/);
  assertCaught(t, problemsAfter((c) => (c.build.artifacts[0].docker.dockerfile = 'Containerfile')), /\/build\/artifacts\/0: no Containerfile/);
  const untagged = manifests.map((m) => (m.file === 'db/postgres-statefulset.yaml' ? { ...m, doc: structuredClone(m.doc) } : m));
  untagged.find((m) => m.file === 'db/postgres-statefulset.yaml')!.doc.spec.template.spec.containers[0].image = 'postgres';
  assertCaught(t, skaffoldProblems(config, untagged), /postgres is neither built by skaffold nor pinned to a version/);
});

test('port-forwarding goes to the ingress, never to a Knative Service\'s own Service', (t) => {
  assertCaught(t, problemsAfter((c) => (c.portForward[0] = { resourceType: 'service', resourceName: 'pingpong', namespace: 'exercises', port: 80 })), /\/portForward\/0: forward Knative's ingress, not pingpong in exercises/);
});

test('profiles: patches only, a dev profile that `skaffold dev` activates, hooks that exist', (t) => {
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

function standInKubectl(): { bin: string; log: string } {
  const dir = mkdtempSync(path.join(tmpdir(), 'kubectl-'));
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

async function devSecrets(envText: string | undefined) {
  const kubectl = standInKubectl();
  const envFile = path.join(mkdtempSync(path.join(tmpdir(), 'dotenv-')), '.env');
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
  const { code, calls, stderr } = await devSecrets(
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
  const missing = await devSecrets(undefined);
  t.is(missing.code, 1);
  t.regex(missing.stderr, /\.env not found: copy \.env\.example to \.env and fill in API_KEY, PGUSER, PGPASSWORD and PGDATABASE/);
  t.deepEqual(missing.calls, []);

  const partial = await devSecrets('API_KEY=test-key-123\nPGUSER=pingpong\nPGPASSWORD=\nPGDATABASE=pingpong\n');
  t.is(partial.code, 1);
  t.regex(partial.stderr, /has no value for PGPASSWORD/);
  t.false(partial.calls.some((line) => line.includes('postgres-credentials')));
});
