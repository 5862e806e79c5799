/**
 * The deploy environments, environments/<name>/kustomization.yaml, as the scripts that change them
 * (`npm run seal -- --environment`, `npm run promote`) read and write them: relative to the working
 * folder, which npm sets to the project root.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseDocument, type Document } from 'yaml';

/** The name the bases give the functions' image (knative/*.yaml); each environment replaces it. */
export const IMAGE_PLACEHOLDER = 'dev.local/functions';

/** Something about an environment the user named or gave is wrong; the script prints it and exits with 2. */
export class EnvironmentError extends Error {
  override name = 'EnvironmentError';
}

export interface Environment {
  name: string;
  /** environments/<name>, relative to the working folder. */
  dir: string;
  kustomizationFile: string;
  /** The kustomization, comments kept, for editing in place. */
  kustomization: Document;
  /** Its `namespace:`; every object of the environment lands there. */
  namespace: string;
  /** The Secrets it deploys as SealedSecrets: the `<name>.sealedsecret.yaml` files among its resources. */
  sealedSecrets: string[];
}

const environmentName = /^[a-z0-9][-a-z0-9]*$/;

export function readEnvironment(name: string, root = process.cwd()): Environment {
  if (!environmentName.test(name)) throw new EnvironmentError(`"${name}" is not an environment name (see the folders in environments/)`);
  const dir = path.join('environments', name);
  const kustomizationFile = path.join(dir, 'kustomization.yaml');
  let text: string;
  try {
    text = readFileSync(path.resolve(root, kustomizationFile), 'utf8');
  } catch {
    throw new EnvironmentError(`no environment "${name}": ${kustomizationFile} not found (run from the project root)`);
  }
  const kustomization = parseDocument(text);
  const namespace = kustomization.get('namespace');
  if (typeof namespace !== 'string') throw new EnvironmentError(`${kustomizationFile} sets no namespace: only staging and production are sealed and promoted`);
  const resources = (kustomization.toJS().resources ?? []) as string[];
  const sealedSecrets = resources.map((file) => /^([-a-z0-9.]+)\.sealedsecret\.yaml$/.exec(file)?.[1]).filter((secret): secret is string => secret !== undefined);
  return { name, dir, kustomizationFile, kustomization, namespace, sealedSecrets };
}

/** A registry image pinned by digest, as the pipeline pushes it: lower-case name, `@sha256:` and 64 hex digits. */
const pinnedImage = /^((?:[a-z0-9]+(?:[._-][a-z0-9]+)*)(?::\d+)?(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)+)@(sha256:[0-9a-f]{64})$/;

export function parsePinnedImage(image: string): { name: string; digest: string } {
  const match = pinnedImage.exec(image);
  if (!match) throw new EnvironmentError(`"${image}" is not an image pinned by digest, such as ghcr.io/<owner>/<repository>/functions@sha256:<64 hex digits>`);
  return { name: match[1]!, digest: match[2]! };
}

/**
 * Points the environment's functions image at `image` (name@sha256:digest) in its `images:` list, keeping
 * the file's comments. Returns the image it ran before, or undefined when it already ran this one.
 */
export function setImage(environment: Environment, image: string, root = process.cwd()): string | undefined {
  const { name, digest } = parsePinnedImage(image);
  const { kustomization } = environment;
  const images = (kustomization.toJS().images ?? []) as { name?: string; newName?: string; digest?: string }[];
  const index = images.findIndex((entry) => entry.name === IMAGE_PLACEHOLDER);
  if (index === -1) throw new EnvironmentError(`${environment.kustomizationFile} has no images: entry for ${IMAGE_PLACEHOLDER}`);
  const current = images[index]!;
  const before = `${current.newName ?? IMAGE_PLACEHOLDER}@${current.digest ?? '(no digest)'}`;
  if (current.newName === name && current.digest === digest) return undefined;
  kustomization.setIn(['images', index, 'newName'], name);
  kustomization.setIn(['images', index, 'digest'], digest);
  kustomization.deleteIn(['images', index, 'newTag']);
  writeFileSync(path.resolve(root, environment.kustomizationFile), kustomization.toString({ lineWidth: 0 }));
  return before;
}
