/**
 * The image without a container engine. `buildImage` builds each stage of the Dockerfile as a folder by
 * doing what its instructions say: COPY from the build context (less what .dockerignore leaves out) or
 * from an earlier stage, RUN in the stage's WORKDIR with the image's Node first on PATH, ENV, USER, CMD.
 * `spawnAsImage` runs a function from the last stage's folder as the image's CMD does, as its USER, with
 * its ENV and the env, secrets and volumes its Knative Service gives it, in a private mount namespace
 * where every filesystem is read-only (readOnlyRootFilesystem) but the emptyDir volumes.
 *
 * What differs from a real image, and why it does not matter here: FROM gives no base image's files (the
 * image's Node comes from test/helpers/image-node.ts, the build stages' npm from this machine), and the
 * last stage's "/" is a folder elsewhere (the code finds its root by package.json, not by path).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { projectRoot } from '../../functions/shared/config';
import { parseDockerfile, type Stage } from './dockerfile';
import { containers, isKnativeService, podTemplates, type Manifest, type Obj } from './manifests';

const run = promisify(execFile);

export interface ImageTree {
  /** The folder standing for the image's "/". */
  root: string;
  /** The last stage's WORKDIR inside the image, e.g. /app; `CMD` runs there. */
  workdir: string;
  /** The image's `ENV`. */
  env: Record<string, string>;
  /** The last `USER`, by number. */
  user: { uid: number; gid: number };
  /** `ENTRYPOINT` then `CMD`, exec form. */
  command: string[];
}

/** Builds stages into folders under `scratch`; a stage whose instructions another build already ran is reused. */
export class ImageBuilder {
  private readonly built = new Map<string, Promise<ImageTree>>();
  private count = 0;

  constructor(
    private readonly scratch: string,
    /** The image's `node`, put first on PATH for RUN, as the base image would. */
    private readonly node: string,
    private readonly context = projectRoot,
  ) {}

  /** The last stage of `dockerfile`, built. */
  build(dockerfile: string): Promise<ImageTree> {
    const stages = parseDockerfile(dockerfile);
    if (!stages.length) throw new Error('Dockerfile: no FROM');
    return this.stage(stages, stages.length - 1);
  }

  private stage(stages: Stage[], index: number): Promise<ImageTree> {
    const key = JSON.stringify(stages.slice(0, index + 1));
    let tree = this.built.get(key);
    if (!tree) {
      tree = this.buildStage(stages, index);
      this.built.set(key, tree);
    }
    return tree;
  }

  private async buildStage(stages: Stage[], index: number): Promise<ImageTree> {
    const stage = stages[index]!;
    const named = (name: string) => {
      const found = stages.slice(0, index).findIndex((s) => s.name === name);
      return found < 0 ? undefined : this.stage(stages, found);
    };
    const root = path.join(this.scratch, `stage-${++this.count}-${stage.name ?? 'last'}`);
    const base = named(stage.image);
    const image: ImageTree = base
      ? { ...structuredClone(await base), root }
      : { root, workdir: '/', env: {}, user: { uid: 0, gid: 0 }, command: [] };
    if (base) cpSync((await base).root, root, { recursive: true, verbatimSymlinks: true });
    mkdirSync(root, { recursive: true });
    chmodSync(root, 0o755);
    const at = (inImage: string) => path.join(root, path.posix.resolve(image.workdir, inImage));

    for (const { keyword, args } of stage.instructions) {
      const where = `Dockerfile stage ${stage.name ?? `#${index + 1}`}: ${keyword} ${args}`;
      switch (keyword) {
        case 'WORKDIR':
          image.workdir = path.posix.resolve(image.workdir, args);
          mkdirSync(at('.'), { recursive: true });
          break;
        case 'ENV':
          Object.assign(image.env, parseEnvInstruction(args));
          break;
        case 'USER':
          image.user = parseUser(args, where);
          break;
        case 'CMD':
        case 'ENTRYPOINT':
          image.command = parseExecForm(args, where);
          break;
        case 'COPY': {
          const from = /--from=(\S+)/.exec(args)?.[1];
          const [destination, ...sources] = args.replace(/--\S+/g, '').trim().split(/\s+/).reverse();
          if (!destination || !sources.length) throw new Error(`${where}: a source and a destination, please`);
          const source = from ? await named(from) : undefined;
          if (from && !source) throw new Error(`${where}: no earlier stage named ${from}`);
          const intoFolder = destination.endsWith('/') || destination === '.' || sources.length > 1;
          for (const name of sources.reverse()) {
            if (/[*?[]/.test(name)) throw new Error(`${where}: wildcards are not rehearsed; name the files`);
            const from = source ? path.join(source.root, path.posix.resolve(source.workdir, name)) : this.fromContext(name, where);
            const to = intoFolder && !statSync(from).isDirectory() ? path.join(at(destination), path.basename(name)) : at(destination);
            mkdirSync(path.dirname(to), { recursive: true });
            // Symlinks as they are (node_modules/.bin), as COPY keeps them.
            const filter = source ? undefined : (file: string) => !this.ignored(path.relative(this.context, file));
            cpSync(from, to, { recursive: true, verbatimSymlinks: true, filter });
          }
          break;
        }
        case 'RUN':
          await this.runInstruction(image, args, where);
          break;
        case 'EXPOSE':
        case 'LABEL':
          break;
        default:
          throw new Error(`${where}: the rehearsal does not know how to do ${keyword}`);
      }
    }
    return image;
  }

  private async runInstruction(image: ImageTree, args: string, where: string): Promise<void> {
    const command = args.startsWith('[') ? parseExecForm(args, where) : ['sh', '-c', args];
    // As the stage's USER at that point, as Docker runs it.
    const { uid, gid } = image.user;
    const argv = uid === 0 ? command : ['setpriv', `--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', '--', ...command];
    // What the base image's shell would have: its Node and npm first on PATH, the stage's ENV; nothing of
    // the npm that runs these tests (its npm_* variables would steer an `npm ci` in the stage).
    const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !/^npm_|^NODE$|^INIT_CWD$/i.test(name)));
    try {
      await run(argv[0]!, argv.slice(1), {
        cwd: path.join(image.root, image.workdir),
        env: { ...env, PATH: `${path.dirname(this.node)}:${process.env.PATH}`, ...image.env },
        maxBuffer: 64 * 1024 * 1024,
      });
    } catch (error) {
      const { stdout = '', stderr = '' } = error as { stdout?: string; stderr?: string };
      throw new Error(`${where} failed:\n${`${stdout}\n${stderr}`.trim().split('\n').slice(-15).join('\n')}`, { cause: error });
    }
  }

  private fromContext(name: string, where: string): string {
    const relative = path.posix.normalize(name).replace(/^\/+|\/+$/g, '');
    const file = path.join(this.context, relative);
    if (!existsSync(file) || this.ignored(relative)) throw new Error(`${where}: ${name} is not in the build context (or .dockerignore leaves it out)`);
    return file;
  }

  private patterns?: { exclude: boolean; match: RegExp }[];

  /** Whether .dockerignore leaves `relative` (a path in the context) out: the last pattern that matches it or a folder above it decides. */
  ignored(relative: string): boolean {
    if (!relative || relative.startsWith('..')) return false;
    this.patterns ??= readDockerignore(path.join(this.context, '.dockerignore'));
    const parts = relative.split(path.sep);
    const candidates = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
    let ignored = false;
    for (const { exclude, match } of this.patterns) if (candidates.some((candidate) => match.test(candidate))) ignored = exclude;
    return ignored;
  }
}

function readDockerignore(file: string): { exclude: boolean; match: RegExp }[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith('#'))
    .map((line) => {
      const exclude = !line.startsWith('!');
      const pattern = path.posix.normalize(line.replace(/^!/, '')).replace(/^\/+|\/+$/g, '');
      const source = pattern
        .split('/')
        .map((part) => (part === '**' ? '.*' : part.replace(/[.+^${}()|\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]')))
        .join('/');
      return { exclude, match: new RegExp(`^${source}$`) };
    });
}

/** `ENV A=1 B="two words"` or the old `ENV A 1`. */
function parseEnvInstruction(args: string): Record<string, string> {
  const unquote = (value: string) => value.replace(/^"(.*)"$/, '$1').replace(/^'(.*)'$/, '$1');
  if (!/^[A-Za-z_][A-Za-z0-9_]*=/.test(args)) {
    const [name, ...value] = args.split(/\s+/);
    return { [name!]: unquote(value.join(' ')) };
  }
  const env: Record<string, string> = {};
  for (const [, name, value] of args.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|'[^']*'|\S*)/g)) env[name!] = unquote(value!);
  return env;
}

function parseUser(args: string, where: string): { uid: number; gid: number } {
  const [uid, gid = uid] = args.split(':');
  if (!/^\d+$/.test(uid ?? '') || !/^\d+$/.test(gid ?? '')) throw new Error(`${where}: the rehearsal runs numeric users only`);
  return { uid: Number(uid), gid: Number(gid) };
}

function parseExecForm(args: string, where: string): string[] {
  try {
    const argv = JSON.parse(args) as unknown;
    if (Array.isArray(argv) && argv.length && argv.every((arg) => typeof arg === 'string')) return argv as string[];
  } catch {
    // said below
  }
  throw new Error(`${where}: only the exec form (a JSON array) is rehearsed`);
}

// ---------------------------------------------------------------------------------------------------
// Running a function as its Knative Service and the image say

/** What the pod gives the container: its env and volumes, with stand-ins for what lives in the cluster. */
export interface Pod {
  env: Record<string, string>;
  /** Read-only folders (ConfigMap volumes, filled from the manifests) and writable emptyDirs, by mount path. */
  volumes: { mountPath: string; source: string | 'emptyDir' }[];
}

export interface StandIns {
  /** Each Secret's values by Secret name: the sealed ones cannot be read here. */
  secrets: Record<string, Record<string, string>>;
  /** Env values that name something in the cluster (a Service's host, a URL), replaced by what runs here. */
  env: Record<string, string>;
}

/**
 * The pod of the Knative Service named `service`: its container's env (literal values, then Secrets by
 * `envFrom`, then the stand-ins) and its volumes (a ConfigMap's keys written as files under `scratch`).
 */
export function podOf(manifests: Manifest[], service: string, standIns: StandIns, scratch: string): Pod {
  const manifest = manifests.find((m) => isKnativeService(m.doc) && m.doc.metadata?.name === service);
  if (!manifest) throw new Error(`no Knative Service named ${service} in the manifests`);
  const [pod] = podTemplates(manifest.doc);
  const [entry] = containers(pod!);
  const container = entry!.container;
  const env: Record<string, string> = {};
  for (const source of (container.envFrom ?? []) as Obj[]) {
    const name = source.secretRef?.name as string | undefined;
    if (!name || !standIns.secrets[name]) throw new Error(`${service}: envFrom ${JSON.stringify(source)} has no stand-in`);
    Object.assign(env, standIns.secrets[name]);
  }
  for (const variable of (container.env ?? []) as Obj[]) {
    if (variable.valueFrom) throw new Error(`${service}: env ${variable.name} from ${JSON.stringify(variable.valueFrom)} is not rehearsed`);
    env[variable.name] = String(variable.value ?? '');
  }
  Object.assign(env, standIns.env);

  const volumes = ((container.volumeMounts ?? []) as Obj[]).map((mount) => {
    const volume = ((pod!.spec.volumes ?? []) as Obj[]).find((v) => v.name === mount.name);
    if (volume?.emptyDir) return { mountPath: mount.mountPath as string, source: 'emptyDir' as const };
    if (!volume?.configMap) throw new Error(`${service}: volume ${mount.name} is neither a ConfigMap nor an emptyDir: not rehearsed`);
    const configMap = manifests.find((m) => m.doc.kind === 'ConfigMap' && m.doc.metadata?.name === volume.configMap.name)?.doc;
    if (!configMap) throw new Error(`${service}: no ConfigMap named ${volume.configMap.name}`);
    const folder = mkdtempSync(path.join(scratch, `volume-${mount.name}-`));
    chmodSync(folder, 0o755);
    const items = (volume.configMap.items as Obj[] | undefined) ?? Object.keys(configMap.data ?? {}).map((key) => ({ key, path: key }));
    for (const item of items) {
      mkdirSync(path.dirname(path.join(folder, item.path)), { recursive: true });
      writeFileSync(path.join(folder, item.path), String(configMap.data?.[item.key] ?? ''), { mode: 0o644 });
    }
    return { mountPath: mount.mountPath as string, source: folder };
  });
  return { env, volumes };
}

/**
 * Starts the image's command for a function: in a new mount namespace, the pod's volumes mounted (a
 * mount point the host lacks is made in a throwaway layer over its parent), then every filesystem but
 * /proc, /sys and the device nodes remounted read-only, then the emptyDirs as fresh tmpfs; then, as the
 * image's USER with no capabilities and no new privileges, `node` (the image's) on the CMD's arguments
 * in the WORKDIR, with nothing in its environment but the image's ENV, the pod's env, PORT, HOME and PATH.
 */
export function spawnAsImage(image: ImageTree, node: string, pod: Pod, port: number, scratch: string): ChildProcess {
  const [program, ...args] = image.command;
  if (program !== 'node') throw new Error(`the image's command runs ${program}, not node`);
  const q = (arg: string) => `'${arg.replaceAll("'", `'\\''`)}'`;
  const lines = ['set -e'];
  for (const { mountPath, source } of pod.volumes) {
    if (!existsSync(mountPath)) {
      const parent = nearestExisting(mountPath);
      const layer = mkdtempSync(path.join(scratch, 'layer-'));
      lines.push(
        `mount -t tmpfs -o mode=755 layer ${q(layer)}`,
        `mkdir ${q(`${layer}/upper`)} ${q(`${layer}/work`)}`,
        `mount -t overlay overlay -o ${q(`lowerdir=${parent},upperdir=${layer}/upper,workdir=${layer}/work`)} ${q(parent)}`,
        `mkdir -p ${q(mountPath)}`,
      );
    }
    if (source !== 'emptyDir') lines.push(`mount --bind ${q(source)} ${q(mountPath)}`);
  }
  lines.push(
    `for m in $(awk '$4 ~ /(^|,)rw(,|$)/ && $3 !~ /^(proc|sysfs|cgroup2?|devtmpfs|devpts)$/ && $2 !~ /^\\/(proc|sys)(\\/|$)/ { print $2 }' /proc/self/mounts); do`,
    '  mount -o remount,bind,ro "$m"',
    'done',
    ...pod.volumes.filter((v) => v.source === 'emptyDir').map((v) => `mount -t tmpfs -o mode=1777 emptydir ${q(v.mountPath)}`),
    `exec setpriv --reuid=${image.user.uid} --regid=${image.user.gid} --clear-groups --no-new-privs --inh-caps=-all --bounding-set=-all -- "$@"`,
  );
  const home = path.join(image.root, 'home', 'image-user');
  mkdirSync(home, { recursive: true });
  chmodSync(home, 0o755);
  const env = {
    PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    // The user's own home, yet not writable: the root filesystem is read-only.
    HOME: home,
    ...image.env,
    ...pod.env,
    PORT: String(port),
  };
  return spawn('unshare', ['--mount', '--propagation', 'private', '--', 'sh', '-c', lines.join('\n'), 'sh', node, ...args], {
    cwd: path.join(image.root, image.workdir),
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

function nearestExisting(file: string): string {
  let dir = path.dirname(file);
  while (!existsSync(dir)) dir = path.dirname(dir);
  return dir;
}

/** A scratch folder others can enter (the image's user reads the tree in it), outside /tmp (an emptyDir may be mounted there). */
export function imageScratch(): { dir: string; remove(): void } {
  const dir = mkdtempSync('/var/tmp/image-rehearsal-');
  chmodSync(dir, 0o755);
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
