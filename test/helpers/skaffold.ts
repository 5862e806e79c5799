/**
 * skaffold.yaml, checked offline: against skaffold's own JSON schema (closed, as in ./manifests.ts),
 * with every profile applied the way skaffold applies its patches, and against the manifests it deploys.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import type { ValidateFunction } from 'ajv';
import { parse } from 'yaml';
import { projectRoot } from '../../functions/shared/config';
import { closeSchema, containers, describeAjvError, isKnativeService, isSealedSecret, manifestFiles, NAMESPACE, newAjv, podTemplates, SCHEMAS_DIR, type Manifest, type Obj } from './manifests';
import { imageTag } from './cluster-agreement';

export const SKAFFOLD_API_VERSION = 'skaffold/v4beta14';
/** Registries whose tags Knative does not resolve to digests (its config-deployment default), so images loaded straight into k3d or kind run. */
export const LOCAL_REGISTRIES = ['dev.local', 'kind.local'];

export function loadSkaffold(root = projectRoot): Obj {
  return parse(readFileSync(path.join(root, 'skaffold.yaml'), 'utf8'), { version: '1.1' }) as Obj;
}

let validator: ValidateFunction | undefined;
function schema(): ValidateFunction {
  return (validator ??= newAjv().compile(closeSchema(JSON.parse(readFileSync(path.join(SCHEMAS_DIR, 'skaffold-v4beta14.json'), 'utf8'))) as object));
}

export interface Variant {
  /** `default`, or the profile's name. */
  name: string;
  config: Obj;
}

/** The configuration as skaffold runs it without profiles, and with each profile's patches applied. */
export function variants(config: Obj): Variant[] {
  const base = { ...config };
  delete base.profiles;
  return [
    { name: 'default', config: base },
    ...((config.profiles ?? []) as Obj[]).map((profile) => ({ name: String(profile.name), config: applyPatches(base, profile.patches ?? []) })),
  ];
}

/** RFC 6902 add, replace and remove: the operations our profiles use. */
export function applyPatches(config: Obj, patches: Obj[]): Obj {
  const result = structuredClone(config);
  for (const { op, path: pointer, value } of patches) {
    const keys = String(pointer).split('/').slice(1).map((key) => key.replace(/~1/g, '/').replace(/~0/g, '~'));
    const last = keys.pop()!;
    const parent = keys.reduce<Obj | undefined>((node, key) => node?.[key], result);
    if (parent === undefined || parent === null) throw new Error(`patch ${op} ${pointer}: no such parent`);
    if (op === 'remove' || op === 'replace') {
      if (!(last in parent)) throw new Error(`patch ${op} ${pointer}: nothing there`);
      if (op === 'remove') Array.isArray(parent) ? parent.splice(Number(last), 1) : delete parent[last];
      else parent[last] = structuredClone(value);
    } else if (op === 'add') {
      if (Array.isArray(parent)) parent.splice(last === '-' ? parent.length : Number(last), 0, structuredClone(value));
      else parent[last] = structuredClone(value);
    } else {
      throw new Error(`patch ${op} ${pointer}: only add, replace and remove are supported here`);
    }
  }
  return result;
}

/** The files `manifests.rawYaml` deploys, in skaffold's order: each pattern in turn, a glob's matches sorted, no file twice. */
export function rawYamlFiles(config: Obj, root = projectRoot): { files: string[]; unmatched: string[] } {
  const files: string[] = [];
  const unmatched: string[] = [];
  for (const pattern of (config.manifests?.rawYaml ?? []) as string[]) {
    const matches = expand(pattern, root);
    if (matches.length === 0) unmatched.push(pattern);
    for (const file of matches) if (!files.includes(file)) files.push(file);
  }
  return { files, unmatched };
}

function expand(pattern: string, root: string): string[] {
  const full = path.join(root, pattern);
  if (existsSync(full) && statSync(full).isFile()) return [path.posix.normalize(pattern)];
  const dir = path.posix.dirname(pattern);
  if (/[*?[]/.test(dir)) throw new Error(`${pattern}: wildcards only in the file name, please`);
  if (!existsSync(path.join(root, dir))) return [];
  const name = new RegExp(`^${path.posix.basename(pattern).replace(/[.+^${}()|\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]')}$`);
  return readdirSync(path.join(root, dir))
    .filter((entry) => name.test(entry) && statSync(path.join(root, dir, entry)).isFile())
    .sort()
    .map((entry) => path.posix.join(dir, entry));
}

/** The text of the scripts a configuration's before-deploy host hooks run. */
function beforeDeployScripts(config: Obj, root: string): string[] {
  return ((config.deploy?.kubectl?.hooks?.before ?? []) as Obj[])
    .flatMap((hook) => ((hook.host?.command ?? []) as string[]).map((arg) => path.join(root, hook.host.dir ?? '.', arg)))
    .filter((file) => /\.sh$/.test(file) && existsSync(file))
    .map((file) => readFileSync(file, 'utf8'));
}

/** Problems of skaffold.yaml: schema, profiles, what it deploys, what it builds, what it forwards. */
export function skaffoldProblems(config: Obj, manifests: Manifest[], root = projectRoot): string[] {
  const problems: string[] = [];
  if (config.apiVersion !== SKAFFOLD_API_VERSION) problems.push(`skaffold.yaml: /apiVersion: must be ${SKAFFOLD_API_VERSION}`);
  ((config.profiles ?? []) as Obj[]).forEach((profile, i) => {
    const extra = Object.keys(profile).filter((key) => !['name', 'activation', 'patches', 'requiresAllActivations'].includes(key));
    // Skaffold lays a profile's own sections onto the base in ways that depend on the field; patches say exactly what changes.
    if (extra.length) problems.push(`skaffold.yaml: /profiles/${i}: change the configuration with patches only, not ${extra.join(', ')}`);
  });

  const allFiles = manifestFiles(root);
  const fileOf = (predicate: (doc: Obj) => boolean) => new Set(manifests.filter((m) => predicate(m.doc)).map((m) => m.file));
  const secretFiles = fileOf(isSealedSecret);
  const namespaceFiles = fileOf((doc) => doc.kind === 'Namespace' && doc.metadata?.name === NAMESPACE);
  const images = new Set(manifests.flatMap((m) => podTemplates(m.doc).flatMap((pod) => containers(pod).map(({ container }) => container.image as string))));

  let configs: Variant[];
  try {
    configs = variants(config);
  } catch (error) {
    return [...problems, `skaffold.yaml: /profiles: ${(error as Error).message}`];
  }
  for (const { name, config: variant } of configs) {
    const where = `skaffold.yaml (${name})`;
    if (!schema()(variant)) problems.push(...(schema().errors ?? []).map((e) => `${where}: ${describeAjvError(e)}`));

    const { files, unmatched } = rawYamlFiles(variant, root);
    unmatched.forEach((pattern) => problems.push(`${where}: /manifests/rawYaml: ${pattern} matches no file`));
    ((variant.manifests?.kustomize?.paths ?? []) as string[]).forEach((dir, i) => {
      if (!existsSync(path.join(root, dir, 'kustomization.yaml'))) problems.push(`${where}: /manifests/kustomize/paths/${i}: no ${dir}/kustomization.yaml`);
    });
    const byHook = new Set(allFiles.filter((file) => beforeDeployScripts(variant, root).some((script) => script.includes(file))));
    // kubectl applies in the order given: the namespace must exist before anything is created in it.
    const namespaceFirst = files.length > 0 && namespaceFiles.has(files[0]!);
    if (!namespaceFirst && ![...namespaceFiles].some((file) => byHook.has(file) && !files.includes(file))) {
      problems.push(`${where}: /manifests/rawYaml: the Namespace manifest must come first (or be applied by a before-deploy hook), got ${files[0]}`);
    }
    // Everything is deployed, by rawYaml or by a hook; in the dev profile the Secrets come from .env instead (below).
    const expected = allFiles.filter((file) => !byHook.has(file) && (name !== 'dev' || !secretFiles.has(file)));
    for (const file of expected) if (!files.includes(file)) problems.push(`${where}: /manifests/rawYaml: ${file} is never deployed`);

    const artifacts = (variant.build?.artifacts ?? []) as Obj[];
    artifacts.forEach((artifact, i) => {
      if (!images.has(artifact.image)) problems.push(`${where}: /build/artifacts/${i}/image: ${artifact.image} appears in no manifest`);
      const dockerfile = path.join(root, artifact.context ?? '.', artifact.docker?.dockerfile ?? 'Dockerfile');
      if (!existsSync(dockerfile)) problems.push(`${where}: /build/artifacts/${i}: no ${path.relative(root, dockerfile)}`);
      if (name === 'default' && !LOCAL_REGISTRIES.includes(String(artifact.image).split('/')[0]!)) {
        problems.push(`${where}: /build/artifacts/${i}/image: use ${LOCAL_REGISTRIES.join(' or ')}/..., which Knative does not try to resolve`);
      }
    });
    for (const image of images) {
      const built = artifacts.some((artifact) => artifact.image === image);
      const tag = imageTag(image);
      if (!built && (!tag || tag === 'latest') && !image.includes('@sha256:')) problems.push(`${where}: ${image} is neither built by skaffold nor pinned to a version`);
    }

    ((variant.portForward ?? []) as Obj[]).forEach((forward, i) => {
      const knative = manifests.some((m) => isKnativeService(m.doc) && m.doc.metadata?.name === forward.resourceName);
      if (knative || (forward.namespace ?? 'default') === NAMESPACE) {
        problems.push(`${where}: /portForward/${i}: forward Knative's ingress, not ${forward.resourceName} in ${forward.namespace}: a Knative Service answers through the ingress`);
      }
    });

    for (const stage of ['before', 'after']) {
      ((variant.deploy?.kubectl?.hooks?.[stage] ?? []) as Obj[]).forEach((hook, i) => {
        for (const arg of (hook.host?.command ?? []) as string[]) {
          if (/\.(sh|js|ts)$/.test(arg) && !existsSync(path.join(root, hook.host.dir ?? '.', arg))) {
            problems.push(`${where}: /deploy/kubectl/hooks/${stage}/${i}: ${arg} does not exist`);
          }
        }
      });
    }
  }

  const dev = configs.find((c) => c.name === 'dev');
  const devProfile = ((config.profiles ?? []) as Obj[]).find((p) => p.name === 'dev');
  if (!dev || !devProfile) {
    problems.push('skaffold.yaml: /profiles: no dev profile');
  } else {
    if (!((devProfile.activation ?? []) as Obj[]).some((a) => a.command === 'dev')) problems.push('skaffold.yaml (dev): /activation: must activate on `skaffold dev`');
    if (!((dev.config.deploy?.kubectl?.hooks?.before ?? []) as Obj[]).some((hook) => hook.host?.command)) {
      problems.push('skaffold.yaml (dev): /deploy/kubectl/hooks/before: must make the Secrets from .env before deploying');
    }
    // The hook makes the Secrets; a SealedSecret for another cluster's key would only fail to open beside them.
    for (const file of rawYamlFiles(dev.config, root).files) if (secretFiles.has(file)) problems.push(`skaffold.yaml (dev): /manifests/rawYaml: ${file} must not be deployed`);
  }
  return problems;
}
