/**
 * Offline checks of what we ship for the cluster. With no cluster here, each check stands in for
 * something a real one would do: the API server's schema validation (with unknown fields as errors;
 * the server would drop them without a word, which is how a typo loses a setting), Knative's admission
 * webhook, and the references between objects that otherwise fail only at run time.
 *
 * Every check returns problems, one line each (`file Kind/name: /json/pointer: what is wrong`); an
 * empty list means it passes. Tests break the manifests on purpose and expect a matching line.
 */
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import Ajv, { type ErrorObject } from 'ajv';
import { ObjectMeta } from '@kubernetes-models/apimachinery/apis/meta/v1/ObjectMeta';
import { DaemonSet, Deployment, StatefulSet } from 'kubernetes-models/apps/v1';
import { CronJob, Job } from 'kubernetes-models/batch/v1';
import { ConfigMap, LimitRange, Namespace, PersistentVolumeClaim, ResourceQuota, Secret, Service } from 'kubernetes-models/v1';
import { parse, parseAllDocuments, parseDocument } from 'yaml';
import { projectRoot } from '../../functions/shared/config';
import { readEnvironment } from '../../scripts/environments';
import { SECRET_KEYS, sealedSecretYaml } from '../../scripts/sealed-secret';
import { operatorMadeObjects } from './cloudnativepg';
import { testUnless } from './tools';

// Parsed YAML: the checks walk it freely and report what they do not find.
export type Obj = Record<string, any>;

export interface Manifest {
  /**
   * The file the object came from, relative to the project root (`knative/pingpong.yaml`); for an object a
   * kustomize generator made, the kustomization that made it (`knative/kustomization.yaml`).
   */
  file: string;
  doc: Obj;
}

/** The deploy environments, each a kustomize overlay in environments/<name> over the bases. */
export const ENVIRONMENTS = ['dev', 'staging', 'production'] as const;
export type EnvironmentName = (typeof ENVIRONMENTS)[number];
/** Folders whose YAML files must each be deployed by some environment. */
export const MANIFEST_DIRS = ['knative', 'db', 'environments'];
/** kustomize's own files, not manifests. */
const KUSTOMIZE_FILES = ['kustomization.yaml', 'kustomizeconfig.yaml'];
/** The course's namespace: production's and dev's. */
export const NAMESPACE = 'exercises';
export const SCHEMAS_DIR = path.join(projectRoot, 'test', 'schemas');
/** What skaffold runs before each deploy of the dev environment (skaffold.yaml). */
export const DEV_HOOK = 'scripts/dev-setup.sh';

// ---------------------------------------------------------------------------------------------------
// Loading: what kustomize renders, as kubectl would apply it

/** kustomize 5 came with kubectl 1.27; older ones (Debian's kubernetes-client is 1.20) lack what the kustomizations use. */
const KUSTOMIZE_MAJOR = 5;

/** Why the kustomizations cannot be rendered here, or undefined when a recent enough kubectl is on the PATH. */
export function kubectlProblem(): string | undefined {
  const run = spawnSync('kubectl', ['version', '--client', '--output=json'], { encoding: 'utf8' });
  const install = 'install kubectl 1.27 or later (Debian\'s kubernetes-client, 1.20, is too old)';
  if (run.error) return `kubectl not found: ${install}`;
  const kustomize = (() => {
    try {
      return String(JSON.parse(run.stdout).kustomizeVersion ?? '');
    } catch {
      return '';
    }
  })();
  const major = Number(/^v?(\d+)\./.exec(kustomize)?.[1]);
  if (!(major >= KUSTOMIZE_MAJOR)) return `kubectl's kustomize is ${kustomize || 'missing'}, older than ${KUSTOMIZE_MAJOR}: ${install}`;
  return undefined;
}

const kubectlMissing = kubectlProblem();

/** `test` for tests of the rendered manifests: skipped loudly without a recent kubectl, failed under CI=true. */
export const manifestTest = testUnless(kubectlMissing, 'kubectl');

/** Every object production renders to (sealed as in `loadEnvironment`): the whole system, monitoring included. */
export function loadManifests(): Manifest[] {
  return loadEnvironment('production');
}

/**
 * Every object of an environment as the cluster gets it; none without a recent kubectl. Staging and
 * production are rendered from a copy of the tree in which their SealedSecrets are sealed for a key made
 * here (the committed placeholders stop every render, on purpose); dev's objects include what its
 * skaffold hook applies (devHookManifests).
 */
export function loadEnvironment(name: EnvironmentName): Manifest[] {
  if (kubectlMissing) return [];
  if (name === 'dev') return [...renderKustomization('environments/dev'), ...devHookManifests()];
  return renderKustomization(`environments/${name}`, sealedRoot());
}

let sealed: string | undefined;
/**
 * A copy of the folders the kustomizations read, with each environment's SealedSecrets sealed for a
 * throw-away key, as `npm run seal -- --environment` seals them; made once per process, removed at exit.
 */
export function sealedRoot(): string {
  if (sealed) return sealed;
  const root = mkdtempSync(path.join(tmpdir(), 'sealed-'));
  process.on('exit', () => rmSync(root, { recursive: true, force: true }));
  for (const dir of KUSTOMIZED_DIRS) cpSync(path.join(projectRoot, dir), path.join(root, dir), { recursive: true });
  const { publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  for (const name of SEALED_ENVIRONMENTS) {
    const environment = readEnvironment(name, root);
    for (const secret of environment.sealedSecrets) {
      const data = new Map(SECRET_KEYS[secret]!.map((key) => [key, Buffer.from(`test-${key.toLowerCase()}`)]));
      const file = path.join(root, environment.dir, `${secret}.sealedsecret.yaml`);
      writeFileSync(file, sealedSecretYaml(publicKey, { name: secret, namespace: environment.namespace, scope: 'strict' }, data));
    }
  }
  return (sealed = root);
}
/**
 * An environment as loadEnvironment renders it, with `components` (folders from the tree's root, such as
 * db/cloudnativepg) added to its overlay's `components:` and `patches` to its `patches:`, in a copy of the
 * sealed tree (or of `from`, a tree like it) made for this call and removed at exit: an option as an overlay
 * that selects it deploys it.
 */
export function loadEnvironmentWith(
  name: (typeof SEALED_ENVIRONMENTS)[number],
  { components = [] as string[], patches = [] as Obj[], from = sealedRoot() } = {},
): Manifest[] {
  if (kubectlMissing) return [];
  const root = mkdtempSync(path.join(tmpdir(), 'environment-'));
  process.on('exit', () => rmSync(root, { recursive: true, force: true }));
  cpSync(from, root, { recursive: true });
  const file = path.join(root, 'environments', name, 'kustomization.yaml');
  const kustomization = parseDocument(readFileSync(file, 'utf8'));
  const own = kustomization.toJS() as Obj;
  if (components.length) kustomization.set('components', [...(own.components ?? []), ...components.map((dir) => `../../${dir}`)]);
  if (patches.length) kustomization.set('patches', [...(own.patches ?? []), ...patches]);
  writeFileSync(file, kustomization.toString());
  return renderKustomization(`environments/${name}`, root);
}

/** The environments whose Secrets are sealed; dev's come from .env. */
export const SEALED_ENVIRONMENTS = ['staging', 'production'] as const;
/** Every folder a kustomization of ours reads from. */
const KUSTOMIZED_DIRS = ['environments', 'knative', 'db', 'monitoring'];

/**
 * What scripts/dev-setup.sh applies before each deploy of the dev environment: the files it applies with
 * `kubectl apply --filename="$root/<file>"`, and for each `secret NAME KEY...` line a Secret with those keys.
 */
export function devHookManifests(root = projectRoot): Manifest[] {
  const script = readFileSync(path.join(root, DEV_HOOK), 'utf8');
  const applied = [...script.matchAll(/^kubectl apply --filename="\$root\/([^"]+)"$/gm)].flatMap(([, file]) =>
    parseYamlDocuments(readFileSync(path.join(root, file!), 'utf8'), file!).map((doc) => ({ file: file!, doc })),
  );
  const namespace = /--namespace=([-a-z0-9]+)/.exec(script)?.[1];
  const secrets = [...script.matchAll(/^secret ([-a-z0-9.]+) ([A-Z_ ]+)$/gm)].map(([, name, keys]) => ({
    file: DEV_HOOK,
    doc: { apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace }, data: Object.fromEntries(keys!.split(' ').map((key) => [key, ''])) },
  }));
  return [...applied, ...secrets];
}

/**
 * `kubectl kustomize <dir>`, each object with the file it came from. kustomize records that in an
 * annotation when asked (buildMetadata: [originAnnotations]); we ask through a wrapper kustomization in
 * a temporary folder, so the one in the tree stays as it is deployed, then drop the annotation again.
 * Throws kubectl's own reason when the kustomization does not render. The tree does not change while
 * tests run, so each folder is rendered once per process (and handed out as a fresh copy).
 */
export function renderKustomization(dir: string, root = projectRoot): Manifest[] {
  const key = `${path.resolve(root)}\0${dir}`;
  let rendered = renders.get(key);
  if (!rendered) {
    rendered = renderWithOrigins(dir, root);
    renders.set(key, rendered);
  }
  return structuredClone(rendered);
}
const renders = new Map<string, Manifest[]>();

function renderWithOrigins(dir: string, root: string): Manifest[] {
  const wrapper = mkdtempSync(path.join(tmpdir(), 'kustomize-'));
  try {
    const target = path.relative(wrapper, path.resolve(root, dir)) || '.';
    writeFileSync(path.join(wrapper, 'kustomization.yaml'), `resources:\n  - ${JSON.stringify(target)}\nbuildMetadata: [originAnnotations]\n`);
    const text = (() => {
      try {
        return kustomize(wrapper);
      } catch (error) {
        throw new Error(`kubectl kustomize ${dir} failed: ${(error as Error).message.replace(/^kubectl kustomize \S+ failed: /, '')}`);
      }
    })();
    return parseYamlDocuments(text, `kubectl kustomize ${dir}`).map((doc) => {
      const annotations: Obj = doc.metadata?.annotations ?? {};
      const origin = parse(String(annotations[ORIGIN] ?? '')) as Obj | null;
      delete annotations[ORIGIN];
      if (doc.metadata?.annotations && Object.keys(annotations).length === 0) delete doc.metadata.annotations;
      const from = origin?.path ?? origin?.configuredIn;
      const file = from ? path.relative(root, path.resolve(wrapper, from)).split(path.sep).join('/') : `${dir}/?`;
      return { file, doc };
    });
  } finally {
    rmSync(wrapper, { recursive: true, force: true });
  }
}
const ORIGIN = 'config.kubernetes.io/origin';

/** The YAML `kubectl kustomize <dir>` prints, as it prints it; throws kubectl's reason when it fails. */
export function kustomize(dir: string): string {
  const run = spawnSync('kubectl', ['kustomize', dir], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (run.error) throw run.error;
  if (run.status !== 0) {
    // kubectl wraps the reason in a log line: E1201 ... run.go:72] "command failed" err="<reason>"
    const reason = /err="((?:[^"\\]|\\.)*)"/.exec(run.stderr)?.[1]?.replace(/\\(.)/g, '$1') ?? run.stderr.trim();
    throw new Error(`kubectl kustomize ${dir} failed: ${reason}`);
  }
  return run.stdout;
}

/**
 * The YAML files under MANIFEST_DIRS, kustomize's own and promtool's tests (`*.test.yaml`) left out: each
 * should be deployed. A kustomize Component's folder is left out too: an overlay deploys it by choice
 * (its own test renders it).
 */
export function manifestFiles(root = projectRoot): string[] {
  const found: string[] = [];
  const walk = (dir: string) => {
    if (!existsSync(path.join(root, dir)) || isComponent(path.join(root, dir))) return;
    for (const name of readdirSync(path.join(root, dir)).sort()) {
      const file = path.posix.join(dir, name);
      if (statSync(path.join(root, file)).isDirectory()) walk(file);
      else if (/\.ya?ml$/.test(name) && !/\.test\.ya?ml$/.test(name) && !KUSTOMIZE_FILES.includes(name)) found.push(file);
    }
  };
  MANIFEST_DIRS.forEach(walk);
  return found;
}

function isComponent(dir: string): boolean {
  const file = path.join(dir, 'kustomization.yaml');
  return existsSync(file) && (parse(readFileSync(file, 'utf8')) as Obj | null)?.kind === 'Component';
}

/** Manifest files that no object of `manifests` came from: left out of every kustomization. */
export function undeployedFiles(manifests: Manifest[], root = projectRoot): string[] {
  const deployed = new Set(manifests.map((m) => m.file));
  return manifestFiles(root).filter((file) => !deployed.has(file));
}

/** YAML 1.1 like kubectl's parser, so `value: yes` is a boolean here too; empty documents are skipped. */
export function parseYamlDocuments(text: string, source: string): Obj[] {
  return parseAllDocuments(text, { version: '1.1' })
    .map((doc) => {
      const [error] = doc.errors;
      if (error) throw new Error(`${source}: ${error.message}`);
      return doc.toJS() as Obj | null;
    })
    .filter((doc): doc is Obj => doc !== null);
}

/** `file Kind/name`, the prefix of every problem about this manifest. */
export function label({ file, doc }: Manifest): string {
  return `${file} ${doc.kind}/${doc.metadata?.name}`;
}

export function isKnativeService(doc: Obj): boolean {
  return doc.apiVersion === 'serving.knative.dev/v1' && doc.kind === 'Service';
}

export function isSealedSecret(doc: Obj): boolean {
  return doc.apiVersion === 'bitnami.com/v1alpha1' && doc.kind === 'SealedSecret';
}

export interface PodTemplate {
  /** JSON pointer of the pod spec inside the manifest. */
  at: string;
  labels: Record<string, string>;
  spec: Obj;
}

/** The pod templates a manifest runs, wherever its kind keeps them. */
export function podTemplates(doc: Obj): PodTemplate[] {
  const template = (at: string, value: Obj | undefined): PodTemplate[] =>
    value?.spec ? [{ at: `${at}/spec`, labels: value.metadata?.labels ?? {}, spec: value.spec }] : [];
  if (isKnativeService(doc)) return template('/spec/template', doc.spec?.template);
  if (doc.apiVersion === 'apps/v1' || doc.kind === 'Job') return template('/spec/template', doc.spec?.template);
  if (doc.kind === 'CronJob') return template('/spec/jobTemplate/spec/template', doc.spec?.jobTemplate?.spec?.template);
  return [];
}

/** Init containers and containers, each with its JSON pointer. */
export function containers(pod: PodTemplate): { at: string; container: Obj }[] {
  return ['initContainers', 'containers'].flatMap((field) =>
    ((pod.spec[field] ?? []) as Obj[]).map((container, i) => ({ at: `${pod.at}/${field}/${i}`, container })),
  );
}

// ---------------------------------------------------------------------------------------------------
// Schemas

type ModelClass = new (data: Obj) => { validate(): void };

/** The Kubernetes kinds we use, with kubernetes-models' copies of the API server's schemas. */
const kubernetesModels: Record<string, ModelClass> = {
  'v1/Namespace': Namespace,
  'v1/ConfigMap': ConfigMap,
  'v1/Secret': Secret,
  'v1/Service': Service,
  'v1/PersistentVolumeClaim': PersistentVolumeClaim,
  'v1/LimitRange': LimitRange,
  'v1/ResourceQuota': ResourceQuota,
  'apps/v1/StatefulSet': StatefulSet,
  'apps/v1/DaemonSet': DaemonSet,
  'apps/v1/Deployment': Deployment,
  'batch/v1/Job': Job,
  'batch/v1/CronJob': CronJob,
};

/** Problems of one manifest against its kind's schema; a kind without a schema is a problem too. */
export function schemaProblems(manifest: Manifest): string[] {
  const { doc } = manifest;
  const kind = `${doc.apiVersion}/${doc.kind}`;
  let problems: string[];
  if (kubernetesModels[kind]) problems = modelProblems(kubernetesModels[kind], doc);
  else if (CRD_SCHEMAS.has(kind)) problems = customResourceProblems(kind, doc);
  else problems = [`/: no schema for ${kind}: add one to test/helpers/manifests.ts before using this kind`];
  if (!doc.metadata?.name) problems.push('/metadata/name: missing');
  return problems.map((problem) => `${label(manifest)}: ${problem}`);
}

/**
 * kubernetes-models validates types but lets unknown fields through, so we watch what its validator
 * reads: its generated code reads every field its schema names, and the fields it never reads are the
 * ones the schema does not know.
 */
function modelProblems(Model: ModelClass, data: Obj, at = ''): string[] {
  const model = new Model(data);
  const read = new Set<string>();
  const problems: string[] = [];
  try {
    model.validate.call(watchReads(model, at, read));
  } catch (error) {
    const errors = (error as { errors?: ErrorObject[] }).errors;
    if (!errors) throw error;
    problems.push(...errors.map((e) => `${at}${e.instancePath || '/'}: ${e.message}`));
  }
  return [...problems, ...unreadFields(model, at, read).map((field) => `${field}: unknown field`)];
}

function watchReads<T extends object>(value: T, at: string, read: Set<string>): T {
  const children = new Map<string, unknown>();
  return new Proxy(value, {
    get(target, key, receiver) {
      const child: unknown = Reflect.get(target, key, receiver);
      if (typeof key !== 'string' || !Object.hasOwn(target, key)) return child;
      const childAt = `${at}/${key}`;
      read.add(childAt);
      if (child === null || typeof child !== 'object') return child;
      if (!children.has(key)) children.set(key, watchReads(child, childAt, read));
      return children.get(key);
    },
  });
}

function unreadFields(value: unknown, at: string, read: Set<string>): string[] {
  if (value === null || typeof value !== 'object') return [];
  return Object.entries(value).flatMap(([key, child]) => {
    const childAt = `${at}/${key}`;
    return read.has(childAt) ? unreadFields(child, childAt, read) : [childAt];
  });
}

/**
 * CRD schemas leave metadata open (the API server checks it as ObjectMeta); so do we, with its schema,
 * at the top and in an object template, plus the name rules ObjectMeta's schema does not carry.
 */
function metadataProblems(doc: Obj): string[] {
  return ['/metadata', '/spec/template/metadata'].flatMap((at) => {
    const meta = at.split('/').slice(1).reduce<Obj | undefined>((node, key) => node?.[key], doc);
    if (!meta || typeof meta !== 'object') return [];
    const problems = modelProblems(ObjectMeta, meta, at);
    if (meta.name !== undefined && !DNS_SUBDOMAIN.test(meta.name)) problems.push(`${at}/name: not a DNS subdomain (lower case, digits, - and .)`);
    if (meta.namespace !== undefined && !DNS_LABEL.test(meta.namespace)) problems.push(`${at}/namespace: not a DNS label (lower case, digits and -)`);
    return problems;
  });
}
const DNS_SUBDOMAIN = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
const DNS_LABEL = /^(?=.{1,63}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export function describeAjvError(error: ErrorObject): string {
  const at = error.instancePath || '/';
  const flag = (error.parentSchema as Obj | undefined)?.['x-feature-flag'];
  if (flag) return `${at}: needs Knative's feature flag ${flag}, which is off by default`;
  if (error.keyword === 'additionalProperties') return `${at}/${error.params.additionalProperty}: unknown field`;
  return `${at}: ${error.message}`;
}

/** Knative feature flags that are on in a default install; fields behind any other flag are rejected. */
const KNATIVE_FLAGS_ON_BY_DEFAULT = new Set(['kubernetes.podspec-volumes-emptydir']);

/**
 * Unknown fields become errors: every object schema that lists its properties gets
 * `additionalProperties: false`, except where the schema says `x-kubernetes-preserve-unknown-fields`.
 * Knative marks fields behind a feature flag in their description; those become errors unless the flag
 * is on by default, as the webhook rejects them on a default install.
 */
export function closeSchema(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(closeSchema);
  if (schema === null || typeof schema !== 'object') return schema;
  const node = schema as Obj;
  const flag = typeof node.description === 'string' ? /behind a feature flag - ([\w.-]+)/.exec(node.description)?.[1] : undefined;
  if (flag && !KNATIVE_FLAGS_ON_BY_DEFAULT.has(flag)) return { not: {}, 'x-feature-flag': flag };

  const closed: Obj = { ...node };
  for (const key of ['properties', 'definitions', 'patternProperties']) {
    if (node[key]) closed[key] = Object.fromEntries(Object.entries(node[key] as Obj).map(([k, v]) => [k, closeSchema(v)]));
  }
  for (const key of ['items', 'additionalProperties', 'anyOf', 'oneOf', 'allOf', 'not']) {
    if (node[key] !== undefined) closed[key] = closeSchema(node[key]);
  }
  if (node.properties && node.additionalProperties === undefined && !node['x-kubernetes-preserve-unknown-fields']) {
    closed.additionalProperties = false;
  }
  return closed;
}

export function newAjv(): Ajv {
  // Not strict: the schemas carry editor and Kubernetes keywords (x-kubernetes-*, x-intellij-*) that
  // only matter to other tools.
  const ajv = new Ajv({ allErrors: true, strict: false, verbose: true, code: { regExp: goRegExp } });
  ajv.addFormat('int32', { type: 'number', validate: (n: number) => Number.isInteger(n) && Math.abs(n) < 2 ** 31 });
  ajv.addFormat('int64', { type: 'number', validate: (n: number) => Number.isSafeInteger(n) });
  ajv.addFormat('byte', /^[A-Za-z0-9+/]*={0,2}$/);
  ajv.addFormat('date-time', true);
  // Flagger's CRDs: a webhook's `url`, and a `format: string` that says nothing more than its type.
  ajv.addFormat('url', (value: string) => URL.canParse(value));
  ajv.addFormat('string', true);
  return ajv;
}

/**
 * CRD patterns are Go (RE2) regular expressions. prometheus-operator's start with `(?i)`, case-insensitive,
 * which JavaScript spells as a flag.
 */
function goRegExp(pattern: string, flags: string): RegExp {
  const caseInsensitive = /^\^?\(\?i\)/.test(pattern);
  return new RegExp(caseInsensitive ? pattern.replace('(?i)', '') : pattern, caseInsensitive ? `${flags}i` : flags);
}
goRegExp.code = 'new RegExp';

/**
 * A custom resource's problems against the first served version of the CRD in `file` (under test/schemas;
 * the one for `kind` where the file holds several): its openAPIV3Schema closed as in `closeSchema`, with
 * apiVersion and kind pinned, plus the metadata checks.
 */
export function crdValidator(file: string, kind?: string): (doc: Obj) => string[] {
  const crds = parseAllDocuments(readFileSync(path.join(SCHEMAS_DIR, file), 'utf8')).map((d) => d.toJS() as Obj);
  const crd = crds.find((c) => kind === undefined || c.spec?.names?.kind === kind);
  if (!crd) throw new Error(`${file} holds no CRD of kind ${kind}`);
  const version = (crd.spec.versions as Obj[]).find((v) => v.served)!;
  const schema = closeSchema(version.schema.openAPIV3Schema) as Obj;
  schema.required = [...new Set([...(schema.required ?? []), 'apiVersion', 'kind', 'metadata', 'spec'])];
  schema.properties.apiVersion = { const: `${crd.spec.group}/${version.name}` };
  schema.properties.kind = { const: crd.spec.names.kind };
  const validate = newAjv().compile(schema);
  return (doc) => [...(validate(doc) ? [] : (validate.errors ?? []).map(describeAjvError)), ...metadataProblems(doc)];
}

/** The custom resources we deploy, each with its CRD under test/schemas. */
const CRD_SCHEMAS = new Map([
  ['serving.knative.dev/v1/Service', 'knative-serving-service-crd.yaml'],
  ['bitnami.com/v1alpha1/SealedSecret', 'sealedsecret-crd.yaml'],
  ['monitoring.coreos.com/v1/PodMonitor', 'prometheus-operator-podmonitors-crd.yaml'],
  ['monitoring.coreos.com/v1/PrometheusRule', 'prometheus-operator-prometheusrules-crd.yaml'],
  ['argoproj.io/v1alpha1/Application', 'argocd-application-crd.yaml'],
  ['argoproj.io/v1alpha1/AppProject', 'argocd-appproject-crd.yaml'],
  ['flagger.app/v1beta1/Canary', 'flagger-crds.yaml'],
  ['flagger.app/v1beta1/MetricTemplate', 'flagger-crds.yaml'],
  ['postgresql.cnpg.io/v1/Cluster', 'cnpg-clusters-crd.yaml'],
  ['postgresql.cnpg.io/v1/ScheduledBackup', 'cnpg-scheduledbackups-crd.yaml'],
]);
const crdValidators = new Map<string, (doc: Obj) => string[]>();

function customResourceProblems(kind: string, doc: Obj): string[] {
  if (!crdValidators.has(kind)) crdValidators.set(kind, crdValidator(CRD_SCHEMAS.get(kind)!, kind.split('/').pop()));
  return crdValidators.get(kind)!(doc);
}

// ---------------------------------------------------------------------------------------------------
// Knative's admission rules that its CRD schema does not express

/** Set by Knative itself (knative.dev/serving, pkg/apis/serving/k8s_validation.go). */
export const RESERVED_ENV_VARS = ['PORT', 'K_SERVICE', 'K_CONFIGURATION', 'K_REVISION'];
/**
 * Queue-proxy's ports (8012 HTTP/1, 8013 HTTP/2, 8022 admin, 9090 autoscaler metrics, 9091 user metrics),
 * the profiling port 8008, which serving's webhook rejects, and 8112, queue-proxy's TLS port in newer
 * releases, which would clash as well.
 */
export const RESERVED_PORTS = [8008, 8012, 8013, 8022, 8112, 9090, 9091];
/** Paths the webhook refuses as mount paths. */
const RESERVED_MOUNT_PATHS = ['/', '/dev', '/dev/log', '/tmp', '/var', '/var/log'];
const KNATIVE_VOLUME_SOURCES = ['secret', 'configMap', 'projected', 'emptyDir'];
/** The autoscaling annotations Knative knows; any other key under the prefix is most likely a typo. */
const AUTOSCALING_ANNOTATIONS = [
  'class', 'metric', 'target', 'target-utilization-percentage', 'target-burst-capacity', 'window',
  'panic-window-percentage', 'panic-threshold-percentage', 'min-scale', 'max-scale', 'initial-scale',
  'activation-scale', 'scale-down-delay', 'metric-aggregation-algorithm',
].map((name) => `autoscaling.knative.dev/${name}`);

/** The Service annotation that shifts traffic to a new revision gradually (knative.dev/docs/serving/rolling-out-latest-revision/). */
export const ROLLOUT_DURATION = 'serving.knative.dev/rollout-duration';
/** What Go's time.ParseDuration, which Knative uses, reads. */
const GO_DURATION = /^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/;

/** What serving's admission webhook would refuse in a Knative Service, beyond its CRD schema. */
export function knativeProblems(manifest: Manifest): string[] {
  const { doc } = manifest;
  if (!isKnativeService(doc)) return [];
  const problems: string[] = [];
  const report = (at: string, message: string) => problems.push(`${label(manifest)}: ${at}: ${message}`);

  for (const [key, value] of Object.entries((doc.metadata?.annotations ?? {}) as Record<string, string>)) {
    if (key.startsWith('autoscaling.knative.dev/')) {
      report(`/metadata/annotations/${key}`, 'autoscaling annotations work only on the revision template, spec.template.metadata.annotations');
    }
    if (key === ROLLOUT_DURATION && !GO_DURATION.test(value)) report(`/metadata/annotations/${key}`, `must be a duration such as "120s", got "${value}"`);
  }
  const annotations: Record<string, string> = doc.spec?.template?.metadata?.annotations ?? {};
  // Knative reads the rollout duration from the Service (or Route), never from a revision.
  if (annotations[ROLLOUT_DURATION] !== undefined) report(`/spec/template/metadata/annotations/${ROLLOUT_DURATION}`, 'works only on the Service\'s own metadata.annotations');
  for (const [key, value] of Object.entries(annotations)) {
    if (!key.startsWith('autoscaling.knative.dev/')) continue;
    if (!AUTOSCALING_ANNOTATIONS.includes(key)) report(`/spec/template/metadata/annotations/${key}`, 'not an autoscaling annotation Knative knows');
    if (/(min|max|initial)-scale$/.test(key) && !/^\d+$/.test(value)) report(`/spec/template/metadata/annotations/${key}`, `must be a whole number, got "${value}"`);
  }
  const { min, max } = scaleBounds(doc);
  if (max > 0 && min > max) report('/spec/template/metadata/annotations', `min-scale ${min} is above max-scale ${max}`);

  for (const pod of podTemplates(doc)) {
    const list: Obj[] = pod.spec.containers ?? [];
    if (list.length !== 1) report(`${pod.at}/containers`, `one container per function, found ${list.length}`);
    const mounted = new Set<string>();
    for (const { at, container } of containers(pod)) {
      if (container.name === 'queue-proxy') report(`${at}/name`, '"queue-proxy" is reserved');
      const ports: Obj[] = container.ports ?? [];
      if (ports.length !== 1) report(`${at}/ports`, `exactly one container port, found ${ports.length}`);
      ports.forEach((port, i) => {
        if (RESERVED_PORTS.includes(port.containerPort)) report(`${at}/ports/${i}/containerPort`, `${port.containerPort} is reserved by Knative`);
        if (port.name && !['h2c', 'http1'].includes(port.name)) report(`${at}/ports/${i}/name`, 'must be empty, "h2c" or "http1"');
        if (port.protocol && port.protocol !== 'TCP') report(`${at}/ports/${i}/protocol`, 'only TCP');
      });
      ((container.env ?? []) as Obj[]).forEach((env, i) => {
        if (RESERVED_ENV_VARS.includes(env.name)) report(`${at}/env/${i}/name`, `${env.name} is reserved: Knative sets it`);
      });
      const paths = new Set<string>();
      ((container.volumeMounts ?? []) as Obj[]).forEach((mount, i) => {
        mounted.add(mount.name);
        const volume = ((pod.spec.volumes ?? []) as Obj[]).find((v) => v.name === mount.name);
        const mountPath = path.posix.normalize(String(mount.mountPath ?? '')).replace(/(.)\/$/, '$1'); // as Go's filepath.Clean
        if (!volume) report(`${at}/volumeMounts/${i}`, `no volume named "${mount.name}"`);
        if (RESERVED_MOUNT_PATHS.includes(mountPath)) report(`${at}/volumeMounts/${i}/mountPath`, `${mountPath} is reserved`);
        if (paths.has(mountPath)) report(`${at}/volumeMounts/${i}/mountPath`, `${mountPath} is mounted twice`);
        paths.add(mountPath);
        if (volume && !volume.emptyDir && mount.readOnly !== true) report(`${at}/volumeMounts/${i}/readOnly`, 'must be true for this kind of volume');
      });
    }
    ((pod.spec.volumes ?? []) as Obj[]).forEach((volume, i) => {
      const sources = Object.keys(volume).filter((key) => key !== 'name');
      const wrong = sources.filter((source) => !KNATIVE_VOLUME_SOURCES.includes(source));
      if (wrong.length) report(`${pod.at}/volumes/${i}`, `${wrong.join(', ')} volumes are not allowed; only ${KNATIVE_VOLUME_SOURCES.join(', ')}`);
      if (!mounted.has(volume.name)) report(`${pod.at}/volumes/${i}`, `volume "${volume.name}" is not mounted`);
    });
  }
  return problems;
}

/** A Knative Service's scale bounds; max 0 means unbounded. */
export function scaleBounds(doc: Obj): { min: number; max: number } {
  const annotations = doc.spec?.template?.metadata?.annotations ?? {};
  return {
    min: Number(annotations['autoscaling.knative.dev/min-scale'] ?? 0),
    max: Number(annotations['autoscaling.knative.dev/max-scale'] ?? 0),
  };
}

// ---------------------------------------------------------------------------------------------------
// References between manifests

const IN_CLUSTER_HOST = /\b([a-z0-9]([-a-z0-9]*[a-z0-9])?)\.([a-z0-9]([-a-z0-9]*[a-z0-9])?)\.svc(\.cluster\.local)?\b(:(\d+))?/g;
const CLUSTER_SCOPED_KINDS = ['Namespace'];

/**
 * Every name one manifest gives another (Secret, ConfigMap, claim, Service, namespace) must lead somewhere,
 * and the two must agree. An environment lives in one namespace: `namespace`, by default the one its own
 * Namespace manifest makes. What an operator makes from a manifest (a CloudNativePG Cluster's Services and
 * Secret) counts as there.
 */
export function referenceProblems(given: Manifest[], namespace = environmentNamespace(given)): string[] {
  const manifests = [...given, ...operatorMadeObjects(given)];
  const problems: string[] = [];
  const report = (manifest: Manifest, at: string, message: string) => problems.push(`${label(manifest)}: ${at}: ${message}`);

  const namespaces = new Set(manifests.filter((m) => m.doc.kind === 'Namespace').map((m) => m.doc.metadata?.name));
  const secrets = secretKeys(manifests);
  const configMaps = new Map(
    manifests.filter((m) => m.doc.kind === 'ConfigMap').map((m) => [m.doc.metadata?.name, new Set(Object.keys({ ...m.doc.data, ...m.doc.binaryData }))]),
  );
  const claims = new Set(manifests.filter((m) => m.doc.kind === 'PersistentVolumeClaim').map((m) => m.doc.metadata?.name));
  const services = manifests.filter((m) => m.doc.apiVersion === 'v1' && m.doc.kind === 'Service');
  const knativeServices = manifests.filter((m) => isKnativeService(m.doc));
  const workloads = manifests.filter((m) => podTemplates(m.doc).length > 0);

  for (const manifest of manifests) {
    const { doc } = manifest;
    if (!CLUSTER_SCOPED_KINDS.includes(doc.kind)) {
      const own = doc.metadata?.namespace;
      if (own !== namespace) report(manifest, '/metadata/namespace', `must be ${namespace}, got ${own ?? 'none'}`);
      else if (!namespaces.has(own)) report(manifest, '/metadata/namespace', `no Namespace manifest named ${own}`);
    }
    if (isSealedSecret(doc)) {
      const template = doc.spec?.template?.metadata ?? {};
      if ((template.name ?? doc.metadata?.name) !== doc.metadata?.name) report(manifest, '/spec/template/metadata/name', 'differs from the SealedSecret\'s name');
      if ((template.namespace ?? doc.metadata?.namespace) !== doc.metadata?.namespace) report(manifest, '/spec/template/metadata/namespace', 'differs from the SealedSecret\'s namespace');
    }
  }

  const needKey = (manifest: Manifest, at: string, store: Map<string, Set<string>>, what: string, name: string, key?: string) => {
    const keys = store.get(name);
    if (!keys) report(manifest, at, `${what} "${name}" is in no manifest`);
    else if (key !== undefined && !keys.has(key)) report(manifest, at, `${what} "${name}" has no key "${key}"`);
  };
  for (const manifest of workloads) {
    for (const pod of podTemplates(manifest.doc)) {
      for (const { at, container } of containers(pod)) {
        ((container.env ?? []) as Obj[]).forEach((env, i) => {
          const secret = env.valueFrom?.secretKeyRef;
          const configMap = env.valueFrom?.configMapKeyRef;
          if (secret) needKey(manifest, `${at}/env/${i}`, secrets, 'Secret', secret.name, secret.key);
          if (configMap) needKey(manifest, `${at}/env/${i}`, configMaps, 'ConfigMap', configMap.name, configMap.key);
        });
        ((container.envFrom ?? []) as Obj[]).forEach((source, i) => {
          if (source.secretRef) needKey(manifest, `${at}/envFrom/${i}`, secrets, 'Secret', source.secretRef.name);
          if (source.configMapRef) needKey(manifest, `${at}/envFrom/${i}`, configMaps, 'ConfigMap', source.configMapRef.name);
        });
      }
      ((pod.spec.volumes ?? []) as Obj[]).forEach((volume, i) => {
        const at = `${pod.at}/volumes/${i}`;
        const claim = volume.persistentVolumeClaim?.claimName;
        if (claim && !claims.has(claim)) report(manifest, at, `PersistentVolumeClaim "${claim}" is in no manifest`);
        const items = (volume.secret ?? volume.configMap)?.items as Obj[] | undefined;
        if (volume.secret) (items ?? [{}]).forEach((item) => needKey(manifest, at, secrets, 'Secret', volume.secret.secretName, item.key));
        if (volume.configMap) (items ?? [{}]).forEach((item) => needKey(manifest, at, configMaps, 'ConfigMap', volume.configMap.name, item.key));
      });
    }
  }

  // Services must select pods, and StatefulSets must be governed by a headless Service that selects theirs.
  for (const manifest of workloads) {
    const { doc } = manifest;
    const matchLabels: Record<string, string> | undefined = doc.spec?.selector?.matchLabels;
    const [pod] = podTemplates(doc);
    if (matchLabels && pod && !selects(matchLabels, pod.labels)) report(manifest, '/spec/selector', 'does not match the pod template\'s labels');
    if (doc.kind === 'StatefulSet') {
      const governing = services.find((s) => s.doc.metadata?.name === doc.spec?.serviceName);
      if (!governing) report(manifest, '/spec/serviceName', `no Service named "${doc.spec?.serviceName}"`);
      else if (governing.doc.spec?.clusterIP !== 'None') report(manifest, '/spec/serviceName', `Service "${doc.spec.serviceName}" must be headless (clusterIP: None)`);
      else if (pod && !selects(governing.doc.spec?.selector ?? {}, pod.labels)) report(manifest, '/spec/serviceName', `Service "${doc.spec.serviceName}" does not select this StatefulSet's pods`);
    }
  }
  for (const service of services) {
    const selector: Record<string, string> | undefined = service.doc.spec?.selector;
    if (!selector) continue;
    const pods = workloads.flatMap((w) => podTemplates(w.doc)).filter((pod) => selects(selector, pod.labels));
    if (pods.length === 0) report(service, '/spec/selector', 'selects no pod template in the manifests');
    const containerPorts = pods.flatMap((pod) => containers(pod).flatMap(({ container }) => (container.ports ?? []) as Obj[]));
    ((service.doc.spec?.ports ?? []) as Obj[]).forEach((port, i) => {
      const target = port.targetPort ?? port.port;
      const served = containerPorts.some((p) => p.containerPort === target || (typeof target === 'string' && p.name === target));
      if (pods.length && !served) report(service, `/spec/ports/${i}`, `no selected container listens on ${target}`);
    });
  }

  // In-cluster addresses in env values and ConfigMaps must name a Service of the same namespace, on a port it serves.
  const addressed = (manifest: Manifest, at: string, text: string) => {
    for (const match of text.matchAll(IN_CLUSTER_HOST)) {
      const [, name, , namespace, , , , port] = match;
      if (namespace !== manifest.doc.metadata?.namespace) {
        report(manifest, at, `${match[0]} is in namespace ${namespace}, not ${manifest.doc.metadata?.namespace}`);
        continue;
      }
      const service = services.find((s) => s.doc.metadata?.name === name);
      const knative = knativeServices.find((s) => s.doc.metadata?.name === name);
      if (!service && !knative) report(manifest, at, `${match[0]}: no Service or Knative Service named "${name}"`);
      // A Knative Service answers on port 80 of its cluster-local address.
      const ports: number[] = knative ? [80] : ((service?.doc.spec?.ports ?? []) as Obj[]).map((p) => p.port);
      if (port && (service || knative) && !ports.includes(Number(port))) report(manifest, at, `${match[0]}: "${name}" serves ${ports.join(', ')}, not ${port}`);
    }
  };
  for (const manifest of workloads) {
    for (const pod of podTemplates(manifest.doc)) {
      for (const { at, container } of containers(pod)) {
        const env: Obj[] = container.env ?? [];
        const pgPort = env.find((v) => v.name === 'PGPORT')?.value ?? '5432';
        env.forEach((variable, i) => {
          if (typeof variable.value !== 'string') return;
          // libpq's PGHOST names a host without a port: the port is PGPORT's, or 5432.
          addressed(manifest, `${at}/env/${i}`, variable.name === 'PGHOST' ? `${variable.value}:${pgPort}` : variable.value);
        });
      }
    }
  }
  for (const manifest of manifests.filter((m) => m.doc.kind === 'ConfigMap')) {
    for (const [key, value] of Object.entries(manifest.doc.data ?? {})) addressed(manifest, `/data/${key}`, String(value));
  }
  return problems;
}

/** The namespace of the one Namespace manifest among `manifests`, or the course's when there is none. */
export function environmentNamespace(manifests: Manifest[]): string {
  const names = [...new Set(manifests.filter((m) => m.doc.kind === 'Namespace').map((m) => String(m.doc.metadata?.name)))];
  return names.length === 1 ? names[0]! : NAMESPACE;
}

/** Secret names with their keys, from Secrets and from the Secrets that SealedSecrets become. */
function secretKeys(manifests: Manifest[]): Map<string, Set<string>> {
  const keys = new Map<string, Set<string>>();
  for (const { doc } of manifests) {
    if (doc.kind === 'Secret' && doc.apiVersion === 'v1') keys.set(doc.metadata?.name, new Set(Object.keys({ ...doc.data, ...doc.stringData })));
    if (isSealedSecret(doc)) {
      const name = doc.spec?.template?.metadata?.name ?? doc.metadata?.name;
      keys.set(name, new Set(Object.keys({ ...doc.spec?.encryptedData, ...doc.spec?.template?.data })));
    }
  }
  return keys;
}

function selects(selector: Record<string, string>, labels: Record<string, string>): boolean {
  const entries = Object.entries(selector);
  return entries.length > 0 && entries.every(([key, value]) => labels[key] === value);
}

// ---------------------------------------------------------------------------------------------------
// For tests that break a rule on purpose

/** A deep copy of `manifests` with `change` applied to the first document of `file`. */
export function withChange(manifests: Manifest[], file: string, change: (doc: Obj) => void): Manifest[] {
  const copy = structuredClone(manifests);
  const target = copy.find((m) => m.file === file);
  if (!target) throw new Error(`no manifest ${file}`);
  change(target.doc);
  return copy;
}

/** Passes when some problem matches `pattern`; otherwise fails, listing every problem found. */
export function assertCaught(t: ExecutionContext, problems: string[], pattern: RegExp): void {
  t.true(problems.some((problem) => pattern.test(problem)), `no problem matched ${pattern}; found:\n${problems.join('\n') || '(none)'}`);
}
