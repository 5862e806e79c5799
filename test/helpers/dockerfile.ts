/**
 * The Dockerfile and what goes into the image, checked without a container engine: the stages, the
 * runtime stage's files, user and command, the production install, and the compiled code's imports.
 */
import { builtinModules } from 'node:module';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { projectRoot } from '../../functions/shared/config';
import { migrationsDir } from '../../functions/shared/db';
import { frameworkMain, functionsEntry } from '../../scripts/functions';
import { isKnativeService, type Manifest, type Obj } from './manifests';

export interface Instruction {
  keyword: string;
  args: string;
}

export interface Stage {
  name: string | undefined;
  image: string;
  instructions: Instruction[];
}

/** Stages in order, each with its instructions; continuation lines joined, comments dropped. */
export function parseDockerfile(text: string): Stage[] {
  const stages: Stage[] = [];
  const lines = text.replace(/\\\r?\n/g, ' ').split(/\r?\n/);
  for (const line of lines.map((l) => l.trim()).filter((l) => l && !l.startsWith('#'))) {
    const [, keyword = '', args = ''] = /^(\S+)\s*(.*)$/.exec(line) ?? [];
    if (keyword.toUpperCase() === 'FROM') {
      const [image = '', , name] = args.replace(/--platform=\S+\s*/, '').split(/\s+/);
      stages.push({ name, image, instructions: [] });
    } else {
      stages.at(-1)?.instructions.push({ keyword: keyword.toUpperCase(), args });
    }
  }
  return stages;
}

const relative = (file: string) => path.relative(projectRoot, file).split(path.sep).join('/');

/** What the image must be for the manifests and for the way the local runner runs the same code. */
export function dockerfileProblems(text: string, manifests: Manifest[], root = projectRoot): string[] {
  const problems: string[] = [];
  const report = (message: string) => problems.push(`Dockerfile: ${message}`);
  const stages = parseDockerfile(text);
  const runtime = stages.at(-1);
  if (stages.length < 2 || !runtime) return ['Dockerfile: multi-stage, please: build in one stage, run from a slim one'];
  const all = (keyword: string) => runtime.instructions.filter((i) => i.keyword === keyword);
  const stageNamed = (name: string) => stages.find((s) => s.name === name);
  const runs = (stage: Stage | undefined, pattern: RegExp) => !!stage?.instructions.some((i) => i.keyword === 'RUN' && pattern.test(i.args));

  for (const stage of stages) {
    const tag = /:([^/:@]+)$/.exec(stage.image)?.[1];
    if (!stage.image.includes('@sha256:') && (!tag || tag === 'latest') && !stageNamed(stage.image)) report(`FROM ${stage.image}: pin a version tag`);
  }

  const user = all('USER').at(-1)?.args ?? '';
  // The kubelet can check runAsNonRoot only against a numeric user.
  if (!/^[1-9]\d*(:\d+)?$/.test(user)) report(`the runtime stage must end as a numeric non-root USER (uid:gid), got "${user || 'root'}"`);
  if (!all('ENV').some((i) => /\bNODE_ENV=production\b/.test(i.args))) report('the runtime stage must set NODE_ENV=production');

  const command = [...all('ENTRYPOINT'), ...all('CMD')].at(-1);
  let argv: string[] = [];
  try {
    argv = command ? (JSON.parse(command.args) as string[]) : [];
  } catch {
    report(`${command?.keyword} must use the exec form ["node", ...], so that SIGTERM reaches node, not a shell`);
  }
  if (argv.length) {
    if (argv[0] !== 'node') report(`${command!.keyword} must start node directly (not npm or a shell), so that SIGTERM reaches the function`);
    if (!argv.includes(relative(frameworkMain))) report(`${command!.keyword} must run ${relative(frameworkMain)}, as the local runner does`);
    const main = (JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as Obj).main as string;
    if (main !== relative(functionsEntry)) report(`package.json main ${main} is not the local runner's entry ${relative(functionsEntry)}`);
    if (!argv.includes(`--source=${main}`)) report(`${command!.keyword} must pass --source=${main}`);
    if (argv.some((arg) => /ts-node/.test(arg))) report('no ts-node at run time');
  }

  // COPY [--from=stage] source... destination
  const copies = all('COPY').map((i) => {
    const from = /--from=(\S+)/.exec(i.args)?.[1];
    const parts = i.args.replace(/--\S+/g, '').trim().split(/\s+/);
    return { from, sources: parts.slice(0, -1).map((s) => s.replace(/^\/app\//, '').replace(/\/$/, '')) };
  });
  const copied = (source: string, from?: string) => copies.some((c) => c.from === from && c.sources.some((s) => s === source || source.startsWith(`${s}/`)));
  // The code finds its root by package.json and its migrations under db/migrations.
  if (!copied('package.json')) report('the runtime stage must COPY package.json: the code finds the project root by it');
  if (!copied(relative(migrationsDir))) report(`the runtime stage must COPY ${relative(migrationsDir)}: pingpong applies them itself`);
  const build = copies.find((c) => c.sources.some((s) => s === 'dist' || s.startsWith('dist/')))?.from;
  if (!build || !runs(stageNamed(build), /\bnpm run build\b/)) report('the runtime stage must COPY dist/ from a stage that runs `npm run build`');
  const deps = copies.find((c) => c.sources.includes('node_modules'))?.from;
  if (!deps || !runs(stageNamed(deps), /\bnpm ci\b.*--omit=dev/)) report('the runtime stage must COPY node_modules from a stage that runs `npm ci --omit=dev`');
  if (runs(stageNamed(deps ?? ''), /--ignore-scripts/)) problems.push(...installScriptProblems(root));

  // A compile cache is worth something only filled from the files as they ship, as the user who runs them
  // (Node keeps one per user id), for every function.
  if (all('ENV').some((i) => /\bNODE_COMPILE_CACHE=/.test(i.args))) {
    const at = (instruction: Instruction | undefined) => (instruction ? runtime.instructions.indexOf(instruction) : -1);
    const after = Math.max(...all('COPY').map(at), at(all('USER').at(-1)));
    const fill = all('RUN').find((i) => at(i) > after && i.args.includes(relative(frameworkMain)) && i.args.includes(`--source=${relative(functionsEntry)}`));
    if (!fill) report(`NODE_COMPILE_CACHE is set, but no RUN after the last COPY and USER starts ${relative(frameworkMain)} --source=${relative(functionsEntry)} to fill it`);
    const targets = manifests.filter((m) => isKnativeService(m.doc)).map((m) => envValue(m.doc, 'FUNCTION_TARGET'));
    for (const target of targets.filter((name): name is string => !!name)) {
      if (fill && !new RegExp(`(^|[\\s=])${target}([\\s;]|$)`).test(fill.args)) report(`the RUN that fills the compile cache does not start ${target}`);
    }
  }

  const exposed = all('EXPOSE').map((i) => Number(i.args.split('/')[0]));
  for (const { file, doc } of manifests.filter((m) => isKnativeService(m.doc))) {
    const port = doc.spec?.template?.spec?.containers?.[0]?.ports?.[0]?.containerPort;
    if (!exposed.includes(port)) report(`EXPOSE ${exposed.join(' ') || 'nothing'}, but ${file} declares containerPort ${port}`);
  }
  return problems;
}

/** With --ignore-scripts, no production dependency may need its install script. */
export function installScriptProblems(root = projectRoot): string[] {
  const lock = JSON.parse(readFileSync(path.join(root, 'package-lock.json'), 'utf8')) as Obj;
  return Object.entries(lock.packages as Record<string, Obj>)
    .filter(([, entry]) => entry.hasInstallScript && !entry.dev)
    .map(([name]) => `package-lock.json: ${name} is a production dependency with an install script, which --ignore-scripts skips`);
}

/** Folders and files that must stay out of the build context: secrets, local data, build output. */
export const DOCKERIGNORED = ['.git', 'node_modules', 'dist', '.data', '.env'];

export function dockerignoreProblems(root = projectRoot): string[] {
  const file = path.join(root, '.dockerignore');
  if (!existsSync(file)) return ['.dockerignore: missing'];
  const patterns = readFileSync(file, 'utf8').split(/\r?\n/).map((l) => l.trim().replace(/^\/|\/$/g, ''));
  return DOCKERIGNORED.filter((entry) => !patterns.includes(entry)).map((entry) => `.dockerignore: must exclude ${entry}`);
}

/**
 * The compiled functions may load only Node's own modules and production dependencies: the image has
 * nothing else. Reads dist/, so `npm run build` comes first (as in `npm test`).
 */
export function runtimeImportProblems(root = projectRoot): string[] {
  const dist = path.join(root, 'dist', 'functions');
  if (!existsSync(dist)) return ['dist/functions: missing; run `npm run build` first'];
  const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as Obj;
  const production = new Set(Object.keys(pkg.dependencies ?? {}));
  const problems: string[] = [];
  for (const file of jsFiles(dist)) {
    // tsc writes an import's require with double quotes; a require in the source keeps its own.
    for (const [, , specifier] of readFileSync(file, 'utf8').matchAll(/require\((["'])([^"']+)\1\)/g)) {
      if (specifier!.startsWith('.') || specifier!.startsWith('node:') || builtinModules.includes(specifier!)) continue;
      const name = specifier!.startsWith('@') ? specifier!.split('/').slice(0, 2).join('/') : specifier!.split('/')[0]!;
      if (!production.has(name)) problems.push(`${path.relative(root, file)}: requires ${name}, which is not a production dependency`);
    }
  }
  return problems;
}

function jsFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const file = path.join(dir, name);
    if (statSync(file).isDirectory()) return jsFiles(file);
    return /\.c?js$/.test(name) ? [file] : [];
  });
}

function envValue(service: Obj, name: string): string | undefined {
  const env = (service.spec?.template?.spec?.containers?.[0]?.env ?? []) as Obj[];
  return env.find((variable) => variable.name === name)?.value as string | undefined;
}
