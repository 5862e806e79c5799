/**
 * The way from a commit to the cluster, checked offline: the environments (images by digest, each in its
 * own namespace), the GitHub Actions workflows (actionlint, pinned actions, steps that run what exists)
 * and the Argo CD objects that deploy the environments. Every check returns problems, one line each, as in
 * ./manifests.ts.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { projectRoot } from '../../functions/shared/config';
import { IMAGE_PLACEHOLDER, readEnvironment } from '../../scripts/environments';
import { containers, isKnativeService, label, podTemplates, type Manifest, type Obj } from './manifests';

// ---------------------------------------------------------------------------------------------------
// Environments

/** `Kind/name /json/pointer` of each container of `manifests`, with the image it runs. */
export function images(manifests: Manifest[]): { where: string; image: string }[] {
  return manifests.flatMap((m) => podTemplates(m.doc).flatMap((pod) => containers(pod).map(({ at, container }) => ({ where: `${m.doc.kind}/${m.doc.metadata?.name} ${at}`, image: String(container.image) }))));
}

/** What the functions' image must reach in every environment: each Knative Service, and the pre-pull DaemonSet's init container. */
export function functionsImagePlaces(manifests: Manifest[]): string[] {
  return manifests.flatMap(({ doc }) => {
    if (isKnativeService(doc)) return [`Service/${doc.metadata.name} /spec/template/spec/containers/0`];
    if (doc.kind === 'DaemonSet' && doc.metadata?.name === 'image-prepull') return [`DaemonSet/${doc.metadata.name} /spec/template/spec/initContainers/0`];
    return [];
  });
}

const DIGEST = /@sha256:[0-9a-f]{64}$/;

/**
 * A deployed environment's images: the functions' image is `expected` (the overlay's name@digest) wherever
 * the functions run and nowhere does the bases' placeholder remain; every image is pinned by digest or, for
 * images we do not build, at least by a version tag.
 */
export function imageProblems(manifests: Manifest[], expected: string): string[] {
  const problems: string[] = [];
  if (!DIGEST.test(expected)) problems.push(`the functions' image ${expected} is not set by digest`);
  const places = new Set(functionsImagePlaces(manifests));
  for (const { where, image } of images(manifests)) {
    if (image.split(/[:@]/)[0] === IMAGE_PLACEHOLDER) problems.push(`${where}: ${image}: the bases' placeholder, which no registry holds`);
    else if (places.has(where) && image !== expected) problems.push(`${where}: runs ${image}, not the environment's ${expected}`);
    else if (!places.has(where) && !DIGEST.test(image) && !/:[\w][\w.-]*$/.test(image.replace(/^[^/]*\//, ''))) problems.push(`${where}: ${image} is pinned neither by digest nor by version`);
    places.delete(where);
  }
  for (const where of places) problems.push(`${where}: has no image`);
  return problems;
}

/** The functions' image an environment's overlay sets: its `images:` entry for the placeholder, as name@digest. */
export function overlayImage(environment: string, root = projectRoot): string {
  const entry = ((readEnvironment(environment, root).kustomization.toJS().images ?? []) as Obj[]).find((i) => i.name === IMAGE_PLACEHOLDER);
  return `${entry?.newName ?? IMAGE_PLACEHOLDER}@${entry?.digest ?? '(none)'}`;
}

/** Every string in an object, with its JSON pointer: names, values, annotations, scripts, queries. */
function strings(node: unknown, at = ''): { at: string; text: string }[] {
  if (typeof node === 'string') return [{ at: at || '/', text: node }];
  if (node === null || typeof node !== 'object') return [];
  return Object.entries(node).flatMap(([key, child]) => [
    ...(typeof key === 'string' && !Array.isArray(node) ? [{ at: `${at}/${key}`, text: key }] : []),
    ...strings(child, `${at}/${key}`),
  ]);
}

/**
 * Nothing in an environment may point at another's namespace: no string (a URL, a host, a label value, a
 * query, a description) holds another environment's namespace as a whole name. `others` are their names.
 */
export function crossNamespaceProblems(manifests: Manifest[], others: string[]): string[] {
  return manifests.flatMap((manifest) =>
    strings(manifest.doc).flatMap(({ at, text }) =>
      // A namespace is a DNS label: a whole name is one not continued by another letter, digit or '-'.
      others.filter((namespace) => new RegExp(`(?<![-a-z0-9])${namespace}(?![-a-z0-9])`).test(text)).map((namespace) => `${label(manifest)}: ${at}: names the namespace ${namespace} of another environment: "${text.length > 80 ? `${text.slice(0, 80)}...` : text}"`),
    ),
  );
}

// ---------------------------------------------------------------------------------------------------
// GitHub Actions workflows

export const WORKFLOWS_DIR = path.join(projectRoot, '.github', 'workflows');

export interface Workflow {
  file: string;
  text: string;
  doc: Obj;
}

export function loadWorkflows(root = projectRoot): Workflow[] {
  const dir = path.join(root, '.github', 'workflows');
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((name) => /\.ya?ml$/.test(name))
    .sort()
    .map((name) => {
      const file = path.posix.join('.github', 'workflows', name);
      const text = readFileSync(path.join(root, file), 'utf8');
      return { file, text, doc: parse(text) as Obj };
    });
}

/** Every step of every job, with where it is. */
export function steps(workflow: Workflow): { where: string; job: string; step: Obj }[] {
  return Object.entries((workflow.doc.jobs ?? {}) as Record<string, Obj>).flatMap(([job, spec]) =>
    ((spec.steps ?? []) as Obj[]).map((step, i) => ({ where: `${workflow.file} jobs.${job}.steps[${i}]`, job, step })),
  );
}

/**
 * Third-party actions pinned to a full commit, the version in a comment on the same line (`uses: a/b@<40 hex> # v1.2.3`),
 * and the least permissions: none at the top, and each job saying what it needs.
 */
export function pinningProblems(workflow: Workflow): string[] {
  const problems: string[] = [];
  for (const [n, line] of workflow.text.split('\n').entries()) {
    const uses = /^\s*(?:-\s+)?uses:\s*(\S+)(.*)$/.exec(line);
    if (!uses || uses[1]!.startsWith('./')) continue;
    const [action, ref] = uses[1]!.split('@');
    if (!ref || !/^[0-9a-f]{40}$/.test(ref)) problems.push(`${workflow.file}:${n + 1}: ${uses[1]} is not pinned to a full commit SHA`);
    else if (!/^\s+#\s*v\d+(\.\d+){0,2}\s*$/.test(uses[2] ?? '')) problems.push(`${workflow.file}:${n + 1}: ${action}@${ref.slice(0, 7)}... has no "# vX.Y.Z" comment saying which version the commit is`);
  }
  if (JSON.stringify(workflow.doc.permissions) !== '{}') problems.push(`${workflow.file}: permissions: must be {} at the top, each job asking for its own`);
  for (const [job, spec] of Object.entries((workflow.doc.jobs ?? {}) as Record<string, Obj>)) {
    if (spec.permissions === undefined) problems.push(`${workflow.file} jobs.${job}: no permissions: of its own`);
  }
  return problems;
}

/**
 * What each `run:` step calls must exist here: `.ci/run` and other paths it names (`scripts/...`), and
 * each `npm run <script>` a script of package.json. Tools of the runner itself (git, docker, curl, jq,
 * sha256sum) are the runner's, not checked.
 */
export function runProblems(workflow: Workflow, root = projectRoot): string[] {
  const scripts = Object.keys((JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as Obj).scripts ?? {});
  const problems: string[] = [];
  for (const { where, step } of steps(workflow)) {
    if (typeof step.run !== 'string') continue;
    for (const [, script] of step.run.matchAll(/\bnpm run(?: -s| --silent)? ([\w:-]+)/g)) {
      if (!scripts.includes(script!)) problems.push(`${where}: npm run ${script}: no such script in package.json`);
    }
    for (const [, file] of step.run.matchAll(/(?:^|[\s;&|(])((?:\.ci|scripts|db|bench)\/[\w./-]+)/gm)) {
      const full = path.join(root, file!);
      if (!existsSync(full) || !statSync(full).isFile()) problems.push(`${where}: ${file} does not exist`);
      else if (/^\s*\.?\/?\.ci\//.test(file!) && !(statSync(full).mode & 0o111)) problems.push(`${where}: ${file} is not executable`);
    }
  }
  return problems;
}

/** The step that builds and pushes the image (docker/build-push-action), with where it is. */
export function buildSteps(workflows: Workflow[]): { where: string; step: Obj }[] {
  return workflows.flatMap((workflow) => steps(workflow).filter(({ step }) => String(step.uses ?? '').startsWith('docker/build-push-action@')));
}

/** The build as the tests rehearse the Dockerfile (test/chaos/image-rehearsal.test.ts): the checkout as context, the Dockerfile, its last stage, no arguments, amd64. */
export function buildProblems(where: string, step: Obj, root = projectRoot): string[] {
  const problems: string[] = [];
  const inputs: Obj = step.with ?? {};
  if (inputs.context !== '.') problems.push(`${where}: with.context: must be ".", the checkout the rehearsal builds from, got ${inputs.context}`);
  if (inputs.file !== 'Dockerfile' || !existsSync(path.join(root, 'Dockerfile'))) problems.push(`${where}: with.file: must be the Dockerfile the rehearsal reads, got ${inputs.file}`);
  for (const input of ['target', 'build-args', 'build-contexts']) {
    if (inputs[input] !== undefined) problems.push(`${where}: with.${input}: the rehearsal builds the last stage without arguments or other contexts`);
  }
  if (inputs.platforms !== 'linux/amd64') problems.push(`${where}: with.platforms: must be linux/amd64, the platform of the Node the rehearsal runs, got ${inputs.platforms}`);
  if (String(inputs.push) !== 'true') problems.push(`${where}: with.push: must push`);
  if (!String(inputs.tags ?? '').includes('${{ github.sha }}')) problems.push(`${where}: with.tags: must tag the image with the commit, which is how a tag finds what main built`);
  if (inputs.sbom !== true && inputs.sbom !== 'true') problems.push(`${where}: with.sbom: must attach an SBOM`);
  if (!/^(mode=max|true)$/.test(String(inputs.provenance))) problems.push(`${where}: with.provenance: must attach provenance`);
  if (!String(inputs['cache-from'] ?? '').length || !String(inputs['cache-to'] ?? '').length) problems.push(`${where}: with.cache-from/cache-to: must keep a layer cache`);
  return problems;
}

// ---------------------------------------------------------------------------------------------------
// Argo CD

/** The fields another controller writes at run time in a Knative Service, which Argo CD must leave alone. */
export const KNATIVE_SERVICE_FIELDS_OWNED_ELSEWHERE = [
  // Knative's default traffic split, a rollback's pin (kn service update --traffic), Flagger's steps.
  '/spec/traffic',
  // Flagger's mark of the primary revision (pkg/router/knative.go).
  '/metadata/annotations/flagger.app~1primary-revision',
];

/** Argo CD's sync option annotation on the objects that hold data: never pruned, never deleted with the Application. */
export const KEEPS_DATA = ['Prune=false', 'Delete=false'];
// A CloudNativePG Cluster owns its instances' volumes: deleting it deletes them (db/cloudnativepg/).
const HOLDS_DATA = ['Namespace', 'StatefulSet', 'PersistentVolumeClaim', 'Cluster'];

/**
 * The Argo CD objects against the tree and each other: each Application deploys an environment folder that
 * exists from the branch the pipeline commits to, into that environment's namespace, within its project;
 * it leaves the fields other controllers own alone; and when it prunes, what holds data opts out.
 */
export function argoProblems(argo: Manifest[], environments: Record<string, Manifest[]>, branch: string, root = projectRoot): string[] {
  const problems: string[] = [];
  const projects = new Map(argo.filter((m) => m.doc.kind === 'AppProject').map((m) => [m.doc.metadata.name, m.doc]));
  const applications = argo.filter((m) => m.doc.kind === 'Application');
  const deployed = new Set<string>();
  for (const app of applications) {
    const { spec } = app.doc;
    const report = (at: string, message: string) => problems.push(`${label(app)}: ${at}: ${message}`);
    const source: Obj = spec.source ?? {};
    const environment = /^environments\/([-a-z0-9]+)$/.exec(String(source.path))?.[1];
    if (!environment || !existsSync(path.join(root, String(source.path), 'kustomization.yaml'))) {
      report('/spec/source/path', `${source.path} is no environment folder with a kustomization.yaml`);
      continue;
    }
    deployed.add(environment);
    if (source.targetRevision !== branch) report('/spec/source/targetRevision', `must be ${branch}, the branch the pipeline commits each promotion to, got ${source.targetRevision}`);
    const namespace = readEnvironment(environment, root).namespace;
    if (spec.destination?.namespace !== namespace) report('/spec/destination/namespace', `must be ${namespace}, the namespace of environments/${environment}, got ${spec.destination?.namespace}`);
    const project = projects.get(spec.project);
    if (!project) report('/spec/project', `no AppProject named ${spec.project}`);
    else {
      if (!((project.spec.sourceRepos ?? []) as string[]).includes(source.repoURL)) report('/spec/source/repoURL', `${source.repoURL} is not among project ${spec.project}'s sourceRepos`);
      const allowed = ((project.spec.destinations ?? []) as Obj[]).some((d) => d.namespace === spec.destination?.namespace && d.server === spec.destination?.server);
      if (!allowed) report('/spec/destination', `project ${spec.project} does not allow ${spec.destination?.server} ${spec.destination?.namespace}`);
    }
    const ignored = ((spec.ignoreDifferences ?? []) as Obj[])
      .filter((d) => d.group === 'serving.knative.dev' && d.kind === 'Service' && !d.name)
      .flatMap((d) => (d.jsonPointers ?? []) as string[]);
    for (const field of KNATIVE_SERVICE_FIELDS_OWNED_ELSEWHERE) {
      if (!ignored.includes(field)) report('/spec/ignoreDifferences', `must ignore ${field} of every Knative Service: another controller writes it`);
    }
    if (!((spec.syncPolicy?.syncOptions ?? []) as string[]).includes('RespectIgnoreDifferences=true')) {
      report('/spec/syncPolicy/syncOptions', 'must hold RespectIgnoreDifferences=true, or a sync writes the ignored fields back');
    }
    for (const manifest of environments[environment] ?? []) {
      if (!HOLDS_DATA.includes(manifest.doc.kind)) continue;
      const options = String(manifest.doc.metadata?.annotations?.['argocd.argoproj.io/sync-options'] ?? '').split(',').map((o) => o.trim());
      const missing = KEEPS_DATA.filter((option) => !options.includes(option));
      if (missing.length) report('/spec/syncPolicy', `${environment}'s ${label(manifest)} holds data but lacks argocd.argoproj.io/sync-options ${missing.join(',')}`);
    }
  }
  const repos = new Set(applications.map((m) => m.doc.spec.source?.repoURL));
  if (repos.size > 1) problems.push(`argocd/: the Applications name different repositories: ${[...repos].join(', ')}`);
  for (const environment of Object.keys(environments)) {
    if (environment !== 'dev' && !deployed.has(environment)) problems.push(`argocd/: no Application deploys environments/${environment}`);
  }
  return problems;
}
