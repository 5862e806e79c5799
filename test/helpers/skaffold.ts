/**
 * skaffold.yaml, checked offline: against skaffold's own JSON schema (closed, as in ./manifests.ts),
 * with every profile applied the way skaffold applies its patches, and against what it deploys: the
 * kustomizations it renders, with its image rewriting modelled (rewriteImages).
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { ValidateFunction } from 'ajv';
import { parse } from 'yaml';
import { projectRoot } from '../../functions/shared/config';
import { imageTag } from './cluster-agreement';
import { parseDockerfile } from './dockerfile';
import {
  closeSchema, containers, describeAjvError, DEV_HOOK, devHookManifests, isKnativeService, isSealedSecret, label, NAMESPACE, newAjv, podTemplates, renderKustomization, SCHEMAS_DIR, type Manifest, type Obj,
} from './manifests';

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

/** The kustomizations a configuration renders, in order (skaffold's default path is the project root). */
export function kustomizePaths(config: Obj): string[] {
  const kustomize = config.manifests?.kustomize;
  return kustomize ? ((kustomize.paths ?? ['.']) as string[]) : [];
}

/**
 * The kinds whose image fields skaffold rewrites to the image it built: its transformableAllowlist
 * (GoogleContainerTools/skaffold, pkg/skaffold/kubernetes/manifest/visitor.go), as `group/Kind`. In those
 * it rewrites every field named `image`, at any depth, except under a StatefulSet's volumeClaimTemplates
 * and except images pinned by digest; in any other kind it rewrites nothing.
 */
export const SKAFFOLD_REWRITTEN_KINDS = [
  '/Pod', 'apps/DaemonSet', 'apps/Deployment', 'apps/ReplicaSet', 'apps/StatefulSet', 'batch/CronJob', 'batch/Job',
  'serving.knative.dev/Service', 'agones.dev/Fleet', 'agones.dev/GameServer', 'argoproj.io/Rollout',
];

function groupKind(doc: Obj): string {
  const apiVersion = String(doc.apiVersion ?? '');
  return `${apiVersion.includes('/') ? apiVersion.split('/')[0] : ''}/${doc.kind}`;
}

/** Every field named `image` in an object, with its JSON pointer, as skaffold's visitor walks them. */
export function imageFields(doc: Obj): { at: string; parent: Obj; image: string }[] {
  const found: { at: string; parent: Obj; image: string }[] = [];
  const walk = (node: unknown, at: string) => {
    if (Array.isArray(node)) return node.forEach((child, i) => walk(child, `${at}/${i}`));
    if (node === null || typeof node !== 'object') return;
    if (at === '/spec/volumeClaimTemplates') return;
    for (const [key, value] of Object.entries(node)) {
      if (key === 'image' && typeof value === 'string') found.push({ at: `${at}/${key}`, parent: node as Obj, image: value });
      else walk(value, `${at}/${key}`);
    }
  };
  walk(doc, '');
  return found;
}

/** `dev.local/functions` for `dev.local/functions`, `dev.local/functions:tag`; undefined for an image pinned by digest. */
function rewritableName(image: string): string | undefined {
  if (image.includes('@')) return undefined;
  return image.replace(/:[^/:]+$/, '');
}

/** The manifests as skaffold deploys them once it has built `images` (name to tagged name): a modified copy. */
export function rewriteImages(manifests: Manifest[], images: Record<string, string>): Manifest[] {
  return structuredClone(manifests).map((manifest) => {
    if (!SKAFFOLD_REWRITTEN_KINDS.includes(groupKind(manifest.doc))) return manifest;
    for (const { parent, image } of imageFields(manifest.doc)) {
      const tagged = images[rewritableName(image) ?? ''];
      if (tagged) parent.image = tagged;
    }
    return manifest;
  });
}

/** The shell scripts a configuration's before-deploy host hooks run, as paths relative to the project root. */
function beforeDeployScripts(config: Obj): string[] {
  return ((config.deploy?.kubectl?.hooks?.before ?? []) as Obj[])
    .flatMap((hook) => ((hook.host?.command ?? []) as string[]).map((arg) => path.posix.join(hook.host.dir ?? '.', arg)))
    .filter((file) => /\.sh$/.test(file));
}

const objectKey = ({ doc }: Manifest) => `${doc.kind}/${doc.metadata?.namespace ?? ''}/${doc.metadata?.name}`;

/** The environment skaffold deploys, and the kustomizations a profile may add to it. */
export const DEV_ENVIRONMENT = 'environments/dev';
export const ADD_ON_DIRS = ['monitoring'];
/** Kinds that hold data: skaffold deletes what it deployed on Ctrl-C, so none of these may be among it. */
const HOLDS_DATA = ['Namespace', 'PersistentVolumeClaim'];

/**
 * Problems of skaffold.yaml against the dev environment, `dev` (loadEnvironment('dev'): what
 * environments/dev renders plus what the hook applies): schema, profiles, what each configuration renders
 * (all of environments/dev and what its hook does not apply, nothing outside it and the ADD_ON_DIRS, no
 * SealedSecret, nothing holding data), what it builds and whether its images reach the manifests, what it
 * forwards. `render` renders one kustomization (renderKustomization); tests may stand in their own.
 */
export function skaffoldProblems(config: Obj, dev: Manifest[], root = projectRoot, render = (dir: string) => renderKustomization(dir, root)): string[] {
  const problems: string[] = [];
  if (config.apiVersion !== SKAFFOLD_API_VERSION) problems.push(`skaffold.yaml: /apiVersion: must be ${SKAFFOLD_API_VERSION}`);
  ((config.profiles ?? []) as Obj[]).forEach((profile, i) => {
    const extra = Object.keys(profile).filter((key) => !['name', 'activation', 'patches', 'requiresAllActivations'].includes(key));
    // Skaffold lays a profile's own sections onto the base in ways that depend on the field; patches say exactly what changes.
    if (extra.length) problems.push(`skaffold.yaml: /profiles/${i}: change the configuration with patches only, not ${extra.join(', ')}`);
  });

  let configs: Variant[];
  try {
    configs = variants(config);
  } catch (error) {
    return [...problems, `skaffold.yaml: /profiles: ${(error as Error).message}`];
  }
  const command = runtimeCommand(root);
  const allowed = new Set(
    [DEV_ENVIRONMENT, ...ADD_ON_DIRS].flatMap((dir) => {
      try {
        return render(dir).map(objectKey);
      } catch {
        return [];
      }
    }),
  );
  for (const { name, config: variant } of configs) {
    const where = `skaffold.yaml (${name})`;
    if (!schema()(variant)) problems.push(...(schema().errors ?? []).map((e) => `${where}: ${describeAjvError(e)}`));
    for (const other of ['rawYaml', 'helm', 'kpt', 'kcl']) {
      if (variant.manifests?.[other] !== undefined) problems.push(`${where}: /manifests/${other}: deploy what \`kubectl apply -k\` deploys: manifests.kustomize only`);
    }

    const rendered: Manifest[] = [];
    for (const dir of kustomizePaths(variant)) {
      try {
        rendered.push(...render(dir));
      } catch (error) {
        problems.push(`${where}: /manifests/kustomize/paths: ${(error as Error).message.split('\n')[0]}`);
      }
    }
    // What the before-deploy hooks apply stays when skaffold deletes what it deployed.
    const hooks = beforeDeployScripts(variant);
    const applied = new Set(hooks.includes(DEV_HOOK) ? devHookManifests(root).map(objectKey) : []);
    const byHook = (m: Manifest) => applied.has(objectKey(m));
    if (!dev.some((m) => m.doc.kind === 'Namespace' && byHook(m))) {
      problems.push(`${where}: /deploy/kubectl/hooks/before: must apply the namespace (and make the Secrets) before deploying, so that Ctrl-C leaves them: none of ${hooks.join(', ') || 'no hook'} does`);
    }
    const keys = new Set(rendered.map(objectKey));
    for (const manifest of dev) {
      if (!keys.has(objectKey(manifest)) && !byHook(manifest)) problems.push(`${where}: /manifests/kustomize/paths: ${label(manifest)} is never deployed`);
    }
    for (const manifest of rendered) {
      if (!allowed.has(objectKey(manifest))) problems.push(`${where}: /manifests/kustomize/paths: ${label(manifest)} is in none of ${[DEV_ENVIRONMENT, ...ADD_ON_DIRS].join(', ')} (test/helpers/skaffold.ts)`);
      // The hook makes the Secrets from .env; a SealedSecret for another cluster's key would only fail to open beside them.
      if (isSealedSecret(manifest.doc)) problems.push(`${where}: /manifests/kustomize/paths: ${label(manifest)} must not be deployed: the hook makes the Secrets`);
      if (HOLDS_DATA.includes(manifest.doc.kind)) problems.push(`${where}: /manifests/kustomize/paths: ${label(manifest)} holds data, which Ctrl-C would delete: let the hook apply it`);
      if (manifest.doc.kind === 'StatefulSet' && manifest.doc.spec?.persistentVolumeClaimRetentionPolicy?.whenDeleted === 'Delete') {
        problems.push(`${where}: ${label(manifest)}: /spec/persistentVolumeClaimRetentionPolicy/whenDeleted: Delete would take its volumes with it on Ctrl-C`);
      }
    }

    const artifacts = (variant.build?.artifacts ?? []) as Obj[];
    const built = Object.fromEntries(artifacts.map((artifact) => [String(artifact.image), `${artifact.image}:skaffold-tag`]));
    artifacts.forEach((artifact, i) => {
      const dockerfile = path.join(root, artifact.context ?? '.', artifact.docker?.dockerfile ?? 'Dockerfile');
      if (!existsSync(dockerfile)) problems.push(`${where}: /build/artifacts/${i}: no ${path.relative(root, dockerfile)}`);
      if (name === 'default' && !LOCAL_REGISTRIES.includes(String(artifact.image).split('/')[0]!)) {
        problems.push(`${where}: /build/artifacts/${i}/image: use ${LOCAL_REGISTRIES.join(' or ')}/..., which Knative does not try to resolve`);
      }
      const used = rendered.some((m) => SKAFFOLD_REWRITTEN_KINDS.includes(groupKind(m.doc)) && imageFields(m.doc).some((f) => rewritableName(f.image) === artifact.image));
      if (!used) problems.push(`${where}: /build/artifacts/${i}/image: ${artifact.image} appears in no manifest skaffold rewrites`);
    });
    // What skaffold would deploy: a built image left under its bare name would be pulled from nowhere.
    for (const manifest of rewriteImages(rendered, built)) {
      for (const { at, image } of imageFields(manifest.doc)) {
        const bare = image.split('@')[0]!.replace(/:[^/:]+$/, '');
        if (built[bare] !== undefined && image !== built[bare]) {
          const why = image.includes('@') ? 'skaffold leaves images pinned by digest alone' : `skaffold rewrites images only in ${SKAFFOLD_REWRITTEN_KINDS.join(', ')}`;
          problems.push(`${where}: ${label(manifest)}: ${at}: ${image} would not become the image skaffold built (${why})`);
        } else if (built[bare] === undefined) {
          const tag = imageTag(image);
          if ((!tag || tag === 'latest') && !image.includes('@sha256:')) problems.push(`${where}: ${label(manifest)}: ${at}: ${image} is neither built by skaffold nor pinned to a version`);
        }
      }
    }
    // A container that runs the built image with its own command can only run what the image has.
    for (const manifest of rendered) {
      for (const pod of podTemplates(manifest.doc)) {
        for (const { at, container } of containers(pod)) {
          const program = (container.command as string[] | undefined)?.[0];
          if (program && built[rewritableName(container.image) ?? ''] && command && program !== command) {
            problems.push(`${where}: ${label(manifest)}: ${at}/command: runs ${program}, but the image built from the Dockerfile is known to have only ${command} (its CMD)`);
          }
        }
      }
    }

    ((variant.portForward ?? []) as Obj[]).forEach((forward, i) => {
      const knative = dev.some((m) => isKnativeService(m.doc) && m.doc.metadata?.name === forward.resourceName);
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

  return problems;
}

/** The program the Dockerfile's last stage runs (its exec-form CMD's first word), or undefined. */
function runtimeCommand(root: string): string | undefined {
  const file = path.join(root, 'Dockerfile');
  if (!existsSync(file)) return undefined;
  const cmd = parseDockerfile(readFileSync(file, 'utf8')).at(-1)?.instructions.filter((i) => i.keyword === 'CMD').at(-1)?.args;
  try {
    return (JSON.parse(cmd ?? '') as string[])[0];
  } catch {
    return undefined;
  }
}
