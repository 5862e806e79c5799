/**
 * The `kubectl`, `npm` and `kn` commands the docs tell a reader to run, against the tree: a script, a
 * path, a namespace, an object, a label, a container or a flag a command names must exist.
 *
 * Commands are read from README.md and docs/*.md: from shell blocks (```sh, bash, shell, console or no
 * language; where a block has `$ ` prompts only those lines are commands) and from inline code spans.
 * Each is split as the shell would (quotes, `\` line continuations, `&&`, `||`, `;`, `|`, comments,
 * redirections), and each simple command starting with one of the three is checked:
 *
 * - `npm run X`, `npm start`, `npm test`: X is a script in package.json; each `--flag` after `--` is one the
 *   script's own source knows (a `--flag` in its text, or a parseArgs option `flag:`).
 * - `kubectl`: the subcommand exists and every flag is one `kubectl <subcommand> --help` or
 *   `kubectl options` lists (kubectl's own help, so this is exact for the kubectl installed here);
 *   `-k`/`kustomize` paths are folders in the tree with a kustomization, or an overlay a page shows as a
 *   ```yaml block starting `# <folder>/kustomization.yaml`; `-f` paths exist, or a documented command
 *   writes them (`> file`); `-n` names a namespace the rendered manifests use, one a documented command
 *   creates (`kubectl create namespace`, `helm --create-namespace`), or one of EXTERNAL_NAMESPACES. In the
 *   namespaces the project makes (a Namespace in the manifests) every named object (`TYPE NAME`, `TYPE/NAME`, a pod for exec and logs), every
 *   `-l key=value` and every `-c container` must be one the rendered manifests define, or one that what
 *   they define makes (a StatefulSet's pods, a SealedSecret's Secret, a Knative Service's revisions,
 *   Service and pod labels, a CloudNativePG Cluster's pod labels), or one a documented command creates (`kubectl create job`, `kubectl run`).
 * - `kn`: `-n` as above; `kn service <verb> NAME` and `kn revision ... -s NAME` name a Knative Service;
 *   revisions in `--traffic` and `--tag` are that Service's (`<service>-NNNNN`) or `@latest`.
 *
 * Not covered: `kn`'s flags (kn is not installed here), kubectl plugins (KUBECTL_PLUGINS, not installed either), objects in namespaces the project does not make
 * (others' installs make them, and their objects; the project's own objects there are not checked either), URLs (never fetched), words with a placeholder
 * (`<commit>`), a `...` or a shell expansion (`$(...)`), what follows `--` (the container's own command),
 * values inside JSON or YAML given to a flag, whether an object really is of the kind a `TYPE` names when
 * kubectl would accept either, and other programs (helm, skaffold, curl, psql).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { instancePodLabels, instances, isCloudNativePgCluster } from './cloudnativepg';
import { podTemplates, type Manifest, type Obj } from './manifests';

// ---------------------------------------------------------------------------------------------------
// Reading the commands

export interface ShellCommand {
  words: string[];
  /** The line of the page the command starts on. */
  line: number;
  /** Files the command writes with `>` or `>>`. */
  writes: string[];
}

export interface DocCommand extends ShellCommand {
  page: string;
  /** The command as written, for messages. */
  text: string;
}

/** Splits shell text into simple commands, as sh would, keeping quotes' contents as one word. */
export function shellCommands(text: string, firstLine = 1): ShellCommand[] {
  const commands: ShellCommand[] = [];
  let words: string[] = [];
  let writes: string[] = [];
  let word: string | undefined;
  let line = firstLine;
  let startLine = firstLine;
  let redirect: 'write' | 'other' | undefined;
  const endWord = () => {
    if (word === undefined) return;
    if (redirect) {
      if (redirect === 'write') writes.push(word);
      redirect = undefined;
    } else {
      if (words.length === 0) startLine = line;
      words.push(word);
    }
    word = undefined;
  };
  const endCommand = () => {
    endWord();
    if (words.length) commands.push({ words, line: startLine, writes });
    words = [];
    writes = [];
  };
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '\n') {
      endCommand();
      line++;
    } else if (c === '\\') {
      if (text[i + 1] === '\n') {
        i++;
        line++;
        endWord();
      } else {
        word = (word ?? '') + (text[i + 1] ?? '');
        i++;
      }
    } else if (c === "'") {
      const end = text.indexOf("'", i + 1);
      const quoted = text.slice(i + 1, end < 0 ? text.length : end);
      line += quoted.split('\n').length - 1;
      word = (word ?? '') + quoted;
      i = end < 0 ? text.length : end;
    } else if (c === '"') {
      let quoted = '';
      for (i++; i < text.length && text[i] !== '"'; i++) {
        if (text[i] === '\\' && i + 1 < text.length) i++;
        if (text[i] === '\n') line++;
        quoted += text[i];
      }
      word = (word ?? '') + quoted;
    } else if (c === '$' && text[i + 1] === '(') {
      let depth = 0;
      let j = i;
      for (; j < text.length; j++) {
        if (text[j] === '(') depth++;
        else if (text[j] === ')' && --depth === 0) break;
      }
      word = (word ?? '') + text.slice(i, j + 1);
      i = j;
    } else if (c === '#' && word === undefined) {
      while (i + 1 < text.length && text[i + 1] !== '\n') i++;
    } else if (c === ' ' || c === '\t') {
      endWord();
    } else if (c === ';' || c === '|' || c === '&') {
      if (c === '&' && text[i - 1] === '>') continue;
      endCommand();
      if ((c === '|' || c === '&') && text[i + 1] === c) i++;
    } else if (c === '<' && /^<[^\s<>|;&][^<>|;&\n]*>/.test(text.slice(i))) {
      // A placeholder (`<your key>`), not a redirection.
      const end = text.indexOf('>', i);
      word = (word ?? '') + text.slice(i, end + 1);
      i = end;
    } else if (c === '>' || c === '<') {
      if (word !== undefined && /^\d$/.test(word)) word = undefined; // 2> and the like
      endWord();
      const appendOrDup = text[i + 1] === '>' || text[i + 1] === '&';
      redirect = c === '>' && text[i + 1] !== '&' ? 'write' : 'other';
      if (appendOrDup) i++;
    } else if (c === '(' || c === ')') {
      endCommand();
    } else {
      word = (word ?? '') + c;
    }
  }
  endCommand();
  return commands;
}

const SHELL_BLOCKS = ['', 'sh', 'bash', 'shell', 'console', 'shell-session'];

/** Programs whose commands an inline code span may hold. */
const INLINE_PROGRAMS = ['kubectl', 'npm', 'kn', 'helm'];

/** Every command on a page: all of its shell blocks, and the inline code spans that run one of INLINE_PROGRAMS. */
export function pageCommands(page: string, markdown: string): DocCommand[] {
  const found: DocCommand[] = [];
  const add = (text: string, firstLine: number) => {
    for (const command of shellCommands(text, firstLine)) found.push({ ...command, page, text: command.words.join(' ') });
  };
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const fence = /^ {0,3}(`{3,}|~{3,})\s*([\w-]*)/.exec(lines[i]!);
    if (fence) {
      const end = lines.findIndex((text, j) => j > i && text.trimStart().startsWith(fence[1]!));
      const body = lines.slice(i + 1, end < 0 ? lines.length : end);
      if (SHELL_BLOCKS.includes(fence[2]!.toLowerCase())) {
        if (body.some((text) => text.startsWith('$ '))) {
          // A session: the commands after `$ `, with their continuation lines; the rest is their output.
          for (let j = 0; j < body.length; j++) {
            if (!body[j]!.startsWith('$ ')) continue;
            const start = j;
            let text = body[j]!.slice(2);
            while (text.endsWith('\\') && j + 1 < body.length) text += `\n${body[++j]}`;
            add(text, i + 2 + start);
          }
        } else {
          add(body.join('\n'), i + 2);
        }
      }
      i = end < 0 ? lines.length : end;
      continue;
    }
    for (const span of lines[i]!.matchAll(/(`+)([^`]+?)\1(?!`)/g)) {
      const runs = (text: string) => INLINE_PROGRAMS.some((name) => new RegExp(`^\\s*([A-Z_]+=\\S*\\s+)*${name}\\b|(&&|\\|)\\s*${name}\\b`).test(text));
      if (runs(span[2]!)) add(span[2]!.trim(), i + 1);
    }
  }
  return found;
}

/** The commands this file checks: those that run kubectl, npm or kn. */
export function checkedCommands(commands: DocCommand[]): DocCommand[] {
  return commands.filter((command) => ['kubectl', 'npm', 'kn'].includes(program(command.words)[0] ?? ''));
}

/** The words from the program on: leading `NAME=value` assignments dropped. */
function program(words: string[]): string[] {
  let i = 0;
  while (i < words.length && /^[A-Za-z_][A-Za-z0-9_]*=/.test(words[i]!)) i++;
  return words.slice(i);
}

/** A word the reader fills in or the shell expands: nothing to check in it. */
const isPlaceholder = (word: string) => /<[^>]*>|\.\.\.|\$/.test(word);
const isUrl = (word: string) => /^[a-z][a-z0-9+.-]*:\/\//i.test(word) || /^github\.com\//.test(word);

// ---------------------------------------------------------------------------------------------------
// What the commands are checked against

/** A kubectl (sub)command's help: its subcommands and its flags. */
export interface KubectlHelp {
  commands: Set<string>;
  flags: Map<string, { takesValue: boolean }>;
  shorthands: Map<string, string>;
}

export interface ResourceType {
  kind: string;
  /** The API group ('' for the core group). */
  group: string;
  namespaced: boolean;
}

export interface Cluster {
  manifests: Manifest[];
  types: Map<string, ResourceType>;
}

export interface DocsContext {
  scripts: Record<string, string>;
  /** Paths relative to the project root. */
  exists(file: string): boolean;
  isKustomization(dir: string): boolean;
  readFile(file: string): string;
  kubectlHelp(subcommand: string[]): KubectlHelp | undefined;
  cluster: Cluster;
  /** Folders whose kustomization.yaml some page shows, to be written by the reader. */
  documentedOverlays: Set<string>;
  /** Files some documented command writes. */
  writtenFiles: Set<string>;
  /** Namespaces some documented command creates. */
  createdNamespaces: Set<string>;
  /** `Kind/name` of objects some documented command creates in the project's namespaces. */
  createdObjects: Set<string>;
  /** `service=tag` for every tag a documented `kn --tag` gives. */
  knTags: Set<string>;
}

/**
 * Namespaces the project uses but others create: Kubernetes itself, what cluster.md installs from
 * release URLs (Knative Serving, Kourier), and Flagger's, from its kustomizations (updating.md). Objects
 * there are theirs, so only the namespace is checked.
 */
export const EXTERNAL_NAMESPACES = ['kube-system', 'knative-serving', 'kourier-system', 'flagger-system'];

/** Knative's own pod sidecar, in every function's pod. */
const KNATIVE_CONTAINERS = ['queue-proxy'];
/** kubectl plugins a page may use, which are not installed here: `kubectl cnpg` (CloudNativePG's, docs/cloudnativepg.md). */
const KUBECTL_PLUGINS = ['cnpg'];

/**
 * Kubernetes' built-in kinds the docs may name, with kubectl's names for them (`kubectl api-resources`);
 * Knative's Revision, Route and Configuration too, which every Knative Service makes. Custom resources
 * add theirs from their CRDs (crdResourceTypes).
 */
const BUILT_IN_TYPES: Array<[string[], ResourceType]> = [
  [['pod', 'pods', 'po'], { kind: 'Pod', group: '', namespaced: true }],
  [['service', 'services', 'svc'], { kind: 'Service', group: '', namespaced: true }],
  [['configmap', 'configmaps', 'cm'], { kind: 'ConfigMap', group: '', namespaced: true }],
  [['secret', 'secrets'], { kind: 'Secret', group: '', namespaced: true }],
  [['persistentvolumeclaim', 'persistentvolumeclaims', 'pvc'], { kind: 'PersistentVolumeClaim', group: '', namespaced: true }],
  [['serviceaccount', 'serviceaccounts', 'sa'], { kind: 'ServiceAccount', group: '', namespaced: true }],
  [['event', 'events', 'ev'], { kind: 'Event', group: '', namespaced: true }],
  [['endpoints', 'ep'], { kind: 'Endpoints', group: '', namespaced: true }],
  [['resourcequota', 'resourcequotas', 'quota'], { kind: 'ResourceQuota', group: '', namespaced: true }],
  [['limitrange', 'limitranges', 'limits'], { kind: 'LimitRange', group: '', namespaced: true }],
  [['namespace', 'namespaces', 'ns'], { kind: 'Namespace', group: '', namespaced: false }],
  [['node', 'nodes', 'no'], { kind: 'Node', group: '', namespaced: false }],
  [['deployment', 'deployments', 'deploy'], { kind: 'Deployment', group: 'apps', namespaced: true }],
  [['statefulset', 'statefulsets', 'sts'], { kind: 'StatefulSet', group: 'apps', namespaced: true }],
  [['daemonset', 'daemonsets', 'ds'], { kind: 'DaemonSet', group: 'apps', namespaced: true }],
  [['replicaset', 'replicasets', 'rs'], { kind: 'ReplicaSet', group: 'apps', namespaced: true }],
  [['job', 'jobs'], { kind: 'Job', group: 'batch', namespaced: true }],
  [['cronjob', 'cronjobs', 'cj'], { kind: 'CronJob', group: 'batch', namespaced: true }],
  [['ingress', 'ingresses', 'ing'], { kind: 'Ingress', group: 'networking.k8s.io', namespaced: true }],
  [['revision', 'revisions', 'rev'], { kind: 'Revision', group: 'serving.knative.dev', namespaced: true }],
  [['route', 'routes', 'rt'], { kind: 'Route', group: 'serving.knative.dev', namespaced: true }],
  [['configuration', 'configurations', 'config', 'cfg'], { kind: 'Configuration', group: 'serving.knative.dev', namespaced: true }],
];

/** kubectl's names for the built-in kinds, then each CRD's (plural, singular, short names, plural.group), the built-in winning a clash as in kubectl. */
export function resourceTypes(crds: Obj[]): Map<string, ResourceType> {
  const types = new Map<string, ResourceType>();
  for (const [names, type] of BUILT_IN_TYPES) for (const name of names) types.set(name, type);
  for (const crd of crds) {
    const { names, group, scope } = crd.spec ?? {};
    if (!names?.kind) continue;
    const type = { kind: names.kind as string, group: group as string, namespaced: scope !== 'Cluster' };
    for (const name of [names.plural, names.singular, ...(names.shortNames ?? []), `${names.plural}.${group}`, names.kind?.toLowerCase()]) {
      if (name && !types.has(name)) types.set(name, type);
    }
  }
  return types;
}

/** The CustomResourceDefinitions in a folder of YAML files (test/schemas/). */
export function crdsIn(dir: string): Obj[] {
  return readdirSync(dir)
    .filter((file) => /\.ya?ml$/.test(file))
    .flatMap((file) => {
      const text = readFileSync(path.join(dir, file), 'utf8');
      return text.split(/^---\s*$/m).map((part) => parse(part) as Obj | null);
    })
    .filter((doc): doc is Obj => doc?.kind === 'CustomResourceDefinition');
}

/** `kubectl <subcommand> --help` with `kubectl options`, parsed (once per subcommand); undefined when kubectl has no such command. */
export function kubectlHelpFromBinary(subcommand: string[]): KubectlHelp | undefined {
  const key = subcommand.join(' ');
  if (!helps.has(key)) {
    const run = spawnSync('kubectl', [...subcommand, '--help'], { encoding: 'utf8' });
    globalOptions ??= spawnSync('kubectl', ['options'], { encoding: 'utf8' }).stdout;
    helps.set(key, run.status === 0 ? parseKubectlHelp(`${run.stdout}\n${globalOptions}`) : undefined);
  }
  return helps.get(key);
}
const helps = new Map<string, KubectlHelp | undefined>();
let globalOptions: string | undefined;

export function parseKubectlHelp(text: string): KubectlHelp {
  const help: KubectlHelp = { commands: new Set(), flags: new Map(), shorthands: new Map() };
  let inCommands = false;
  for (const line of text.split('\n')) {
    if (/Commands.*:$/.test(line)) inCommands = true;
    else if (line.trim() === '') inCommands = false;
    else if (inCommands) {
      const command = /^ {2}([a-z][a-z0-9-]*)\s{2,}\S/.exec(line)?.[1];
      if (command) help.commands.add(command);
    }
    const flag = /^\s+(?:-([A-Za-z0-9]), )?--([A-Za-z0-9-]+)=(.*):$/.exec(line);
    if (flag) {
      help.flags.set(flag[2]!, { takesValue: !/^(true|false)$/.test(flag[3]!) });
      if (flag[1]) help.shorthands.set(flag[1], flag[2]!);
    }
  }
  return help;
}

// ---------------------------------------------------------------------------------------------------
// The checks

/** What documented commands create or write (on any page, in any order): files, namespaces, objects, kn tags. */
export function gatherCreated(commands: DocCommand[], context: DocsContext): void {
  for (const command of commands) {
    command.writes.forEach((file) => context.writtenFiles.add(path.posix.normalize(file)));
    const [tool, ...args] = program(command.words);
    if (tool === 'kubectl') {
      const { subcommand, positional } = parseKubectl(args, context);
      const [name] = positional;
      if (!name || isPlaceholder(name)) continue;
      if (subcommand.join(' ') === 'create namespace') context.createdNamespaces.add(name);
      if (subcommand.join(' ') === 'create job') context.createdObjects.add(`Job/${name}`);
      if (subcommand[0] === 'create' && subcommand[1] === 'secret') context.createdObjects.add(`Secret/${name}`);
      if (subcommand.join(' ') === 'run') context.createdObjects.add(`Pod/${name}`);
    }
    if (tool === 'helm' && args.includes('--create-namespace')) {
      args.forEach((word, i) => {
        if (word === '--namespace' || word === '-n') context.createdNamespaces.add(args[i + 1]!);
        else if (word.startsWith('--namespace=')) context.createdNamespaces.add(word.slice(12));
      });
    }
    if (tool === 'kn' && args[0] === 'service' && args[2] && !args[2].startsWith('-')) {
      args.forEach((word, i) => {
        const value = word === '--tag' ? args[i + 1] : word.startsWith('--tag=') ? word.slice(6) : undefined;
        for (const pair of value?.split(',') ?? []) context.knTags.add(`${args[2]}=${pair.split('=')[1]}`);
      });
    }
  }
}

/** The namespaces the project's objects live in: a documented `-n` may name any of them. */
export function projectNamespaces(cluster: Cluster): Set<string> {
  return new Set(cluster.manifests.flatMap(({ doc }) => [doc.metadata?.namespace, doc.kind === 'Namespace' ? doc.metadata?.name : undefined]).filter(Boolean));
}

/**
 * The namespaces the project itself makes (a Namespace object in the manifests): everything in them comes
 * from the manifests or from what those make, so the names of objects there are checked. In a namespace
 * another install makes (Argo CD's, say) the project may put objects, but the rest there is not ours.
 */
export function ownedNamespaces(cluster: Cluster): Set<string> {
  return new Set(cluster.manifests.filter(({ doc }) => doc.kind === 'Namespace').map(({ doc }) => doc.metadata?.name as string));
}

/** One line per thing a documented command names that does not exist. */
export function commandProblems(command: DocCommand, context: DocsContext): string[] {
  const words = program(command.words);
  const problems = (() => {
    switch (words[0]) {
      case 'npm':
        return npmProblems(words.slice(1), context);
      case 'kubectl':
        return kubectlProblems(words.slice(1), context);
      case 'kn':
        return knProblems(words.slice(1), context);
      default:
        return [];
    }
  })();
  return problems.map((problem) => `${command.page}:${command.line}: \`${command.text.length > 90 ? `${command.text.slice(0, 87)}...` : command.text}\`: ${problem}`);
}

function npmProblems(args: string[], context: DocsContext): string[] {
  const [verb, ...rest] = args;
  if (verb === 'start' || verb === 'test' || verb === 'stop' || verb === 'restart') {
    return verb in context.scripts ? [] : [`package.json has no script "${verb}"`];
  }
  if (verb !== 'run' && verb !== 'run-script') return [];
  const nameAt = rest.findIndex((word) => !word.startsWith('-'));
  const name = rest[nameAt];
  if (name === undefined || isPlaceholder(name)) return [];
  if (!(name in context.scripts)) return [`package.json has no script "${name}"`];
  const dashDash = rest.indexOf('--');
  if (dashDash < 0) return [];
  const source = scriptSource(context.scripts[name]!, context);
  if (!source) return [];
  return rest
    .slice(dashDash + 1)
    .map((word) => word.replace(/^\[|\]$/g, ''))
    .filter((word) => /^--[a-z]/.test(word) && !isPlaceholder(word))
    .map((word) => word.split('=')[0]!)
    .filter((flag) => !source.text.includes(flag) && !new RegExp(`['"]?${flag.slice(2)}['"]?\\s*:\\s*\\{`).test(source.text))
    .map((flag) => `${source.file} (npm run ${name}) knows no ${flag}`);
}

/** The file an npm script runs: the last `node dist/<x>.js` (its source `<x>.ts`) or `sh <file>`. */
function scriptSource(script: string, context: DocsContext): { file: string; text: string } | undefined {
  const node = [...script.matchAll(/\bnode\s+dist\/(\S+)\.js\b/g)].at(-1)?.[1];
  const file = node ? `${node}.ts` : /\b(?:sh|bash)\s+(\S+\.sh)\b/.exec(script)?.[1];
  return file && context.exists(file) ? { file, text: context.readFile(file) } : undefined;
}

interface ParsedKubectl {
  subcommand: string[];
  positional: string[];
  flags: Map<string, string[]>;
  problems: string[];
}

/** kubectl's words as pflag reads them, each flag checked against that subcommand's help. */
function parseKubectl(args: string[], context: DocsContext): ParsedKubectl {
  const parsed: ParsedKubectl = { subcommand: [], positional: [], flags: new Map(), problems: [] };
  let help = context.kubectlHelp([]);
  if (!help) return { ...parsed, problems: ['kubectl cannot be asked for its help here'] };
  const set = (flag: string, value: string) => parsed.flags.set(flag, [...(parsed.flags.get(flag) ?? []), value]);
  for (let i = 0; i < args.length; i++) {
    const word = args[i]!;
    if (word === '--') break;
    if (word.startsWith('--')) {
      const [name, value] = [word.slice(2).split('=')[0]!, word.includes('=') ? word.slice(word.indexOf('=') + 1) : undefined];
      const flag = help.flags.get(name);
      if (!flag) parsed.problems.push(`kubectl ${parsed.subcommand.join(' ')} has no flag --${name}`.replace('  ', ' '));
      else set(name, value ?? (flag.takesValue && i + 1 < args.length ? args[++i]! : 'true'));
    } else if (word.startsWith('-') && word.length > 1) {
      for (let j = 1; j < word.length; j++) {
        const name = help.shorthands.get(word[j]!);
        if (!name) {
          parsed.problems.push(`kubectl ${parsed.subcommand.join(' ')} has no flag -${word[j]}`.replace('  ', ' '));
          break;
        }
        if (help.flags.get(name)!.takesValue) {
          const attached = word.slice(j + 1).replace(/^=/, '');
          set(name, attached || (i + 1 < args.length ? args[++i]! : ''));
          break;
        }
        set(name, 'true');
      }
    } else if (parsed.positional.length === 0 && help.commands.has(word)) {
      parsed.subcommand.push(word);
      help = context.kubectlHelp(parsed.subcommand);
      if (!help) return { ...parsed, problems: [...parsed.problems, `kubectl has no command "${parsed.subcommand.join(' ')}"`] };
    } else {
      parsed.positional.push(word);
    }
  }
  // A command that has subcommands takes no other word in their place (`kubectl rollout restat`).
  if (parsed.positional.length > 0 && help.commands.size > 0) parsed.problems.push(`kubectl has no command "${[...parsed.subcommand, parsed.positional[0]].join(' ')}"`);
  return parsed;
}

/** Verbs whose positional words are `TYPE[,TYPE] [NAME...]` or `TYPE/NAME...`. */
const TYPE_NAME_VERBS = ['get', 'describe', 'delete', 'edit', 'patch', 'wait', 'label', 'annotate', 'scale', 'status', 'restart', 'history', 'undo', 'pause', 'resume'];
/** Verbs whose first positional word is a pod, or `TYPE/NAME`. */
const POD_VERBS = ['logs', 'exec', 'attach', 'port-forward', 'cp'];

function kubectlProblems(args: string[], context: DocsContext): string[] {
  if (KUBECTL_PLUGINS.includes(args.find((word) => !word.startsWith('-')) ?? '')) return [];
  const parsed = parseKubectl(args, context);
  const problems = [...parsed.problems];
  const { flags, positional, subcommand } = parsed;
  const verb = subcommand.at(-1) ?? '';

  for (const dir of [...(flags.get('kustomize') ?? []), ...(verb === 'kustomize' ? positional.slice(0, 1) : [])]) {
    // An empty one: `kubectl apply -k` named in prose, without a folder.
    if (dir === '' || isPlaceholder(dir) || isUrl(dir)) continue;
    const normalized = path.posix.normalize(dir).replace(/\/$/, '');
    if (normalized.startsWith('..') || !context.isKustomization(normalized)) {
      if (!context.documentedOverlays.has(path.posix.basename(normalized))) problems.push(`${dir} is no folder with a kustomization in the tree, nor an overlay a page shows`);
    }
  }
  for (const file of flags.get('filename') ?? []) {
    if (file === '' || file === '-' || isPlaceholder(file) || isUrl(file)) continue;
    const normalized = path.posix.normalize(file);
    if (!context.exists(normalized) && !context.writtenFiles.has(normalized)) problems.push(`${file} is no file in the tree, nor one a documented command writes`);
  }

  const used = projectNamespaces(context.cluster);
  const owned = ownedNamespaces(context.cluster);
  const namespaces = flags.get('namespace') ?? [];
  for (const namespace of namespaces) {
    if (!isPlaceholder(namespace) && !used.has(namespace) && !context.createdNamespaces.has(namespace) && !EXTERNAL_NAMESPACES.includes(namespace)) {
      problems.push(`namespace ${namespace} is not one the manifests use, a documented command creates, or EXTERNAL_NAMESPACES lists`);
    }
  }
  const namespace = namespaces.at(-1);
  if (flags.has('all-namespaces') || (namespace !== undefined && (!owned.has(namespace) || isPlaceholder(namespace)))) return problems;

  // Objects named in the project's namespace (or, without -n, named as if they were).
  const refs: Array<{ type: string; name?: string }> = [];
  if (subcommand.join(' ') === 'create job') {
    const from = flags.get('from')?.[0];
    if (from?.includes('/')) refs.push({ type: from.split('/')[0]!, name: from.split('/')[1] });
  } else if (TYPE_NAME_VERBS.includes(verb) && !flags.has('filename') && !flags.has('kustomize')) {
    const args = positional.filter((word) => !word.includes('='));
    if (args[0]?.includes('/')) for (const word of args) refs.push({ type: word.split('/')[0]!, name: word.split('/').slice(1).join('/') });
    else if (args[0]) {
      for (const type of args[0].split(',')) if (args.length === 1) refs.push({ type });
      for (const name of args.slice(1)) refs.push({ type: args[0], name });
    }
  } else if (POD_VERBS.includes(verb) && positional[0] && !positional[0].includes(':')) {
    const [first] = positional;
    refs.push(first.includes('/') ? { type: first.split('/')[0]!, name: first.split('/')[1] } : { type: 'pod', name: first });
  }
  for (const ref of refs) {
    if (isPlaceholder(ref.type) || (ref.name !== undefined && isPlaceholder(ref.name))) continue;
    const type = context.cluster.types.get(ref.type.toLowerCase());
    if (!type) {
      problems.push(`kubectl knows no resource type "${ref.type}" (or add it to BUILT_IN_TYPES, or its CRD to test/schemas/)`);
      continue;
    }
    if (ref.name === undefined || !type.namespaced) continue;
    const known = objectNames(type, context, namespace);
    if (namespace === undefined) {
      if (known.has(ref.name) || [...known].some((name) => matchesPattern(name, ref.name!))) problems.push(`names ${type.kind} ${ref.name} without -n: add its namespace`);
    } else if (!known.has(ref.name) && ![...known].some((name) => matchesPattern(name, ref.name!))) {
      problems.push(`no ${type.kind} named ${ref.name} in ${namespace}: the manifests define none, nor does a documented command create one`);
    }
  }
  if (namespace === undefined) return problems;

  for (const selector of flags.get('selector') ?? []) {
    for (const term of selector.split(',')) {
      const [key, value] = term.split(/==?/);
      if (isPlaceholder(term) || /[!()]|\bin\b|notin/.test(term)) continue;
      if (!labelExists(key!.trim(), value?.trim(), context, namespace)) problems.push(`no object in ${namespace} carries the label ${term}`);
    }
  }
  for (const container of flags.get('container') ?? []) {
    if (!isPlaceholder(container) && !containerNames(context, namespace).has(container)) problems.push(`no pod in ${namespace} has a container named ${container}`);
  }
  return problems;
}

/** The rendered objects in a namespace (all of them when it is not given: a command without `-n`). */
function docsIn(context: DocsContext, namespace: string | undefined): Obj[] {
  return context.cluster.manifests.map((m) => m.doc).filter((doc) => namespace === undefined || doc.metadata?.namespace === namespace);
}

/** A name pattern (`pingpong-\d{5}`) written as a regular expression source, marked by a leading `^`. */
const matchesPattern = (pattern: string, name: string) => pattern.startsWith('^') && new RegExp(pattern).test(name);

/** The names a kind's objects have, or may have (patterns start with `^`), in the project's namespaces. */
function objectNames(type: ResourceType, context: DocsContext, namespace: string | undefined): Set<string> {
  const docs = docsIn(context, namespace);
  const groupOf = (doc: Obj) => (String(doc.apiVersion).includes('/') ? String(doc.apiVersion).split('/')[0] : '');
  const names = new Set<string>(docs.filter((doc) => doc.kind === type.kind && groupOf(doc) === type.group).map((doc) => doc.metadata?.name));
  const knative = docs.filter((doc) => doc.kind === 'Service' && groupOf(doc) === 'serving.knative.dev').map((doc) => doc.metadata.name as string);
  const created = [...context.createdObjects].filter((ref) => ref.startsWith(`${type.kind}/`)).map((ref) => ref.slice(type.kind.length + 1));
  created.forEach((name) => names.add(name));
  const add = (values: string[]) => values.forEach((name) => names.add(name));
  switch (`${type.group}/${type.kind}`) {
    case '/Secret':
      add(docs.filter((doc) => doc.kind === 'SealedSecret').map((doc) => doc.metadata.name));
      break;
    case '/Pod':
      add(docs.filter((doc) => doc.kind === 'StatefulSet').flatMap((doc) => Array.from({ length: doc.spec?.replicas ?? 1 }, (_, i) => `${doc.metadata.name}-${i}`)));
      break;
    case '/PersistentVolumeClaim':
      add(docs.filter((doc) => doc.kind === 'StatefulSet').flatMap((doc) =>
        ((doc.spec?.volumeClaimTemplates ?? []) as Obj[]).flatMap((claim) => Array.from({ length: doc.spec?.replicas ?? 1 }, (_, i) => `${claim.metadata.name}-${doc.metadata.name}-${i}`))));
      break;
    case '/Service':
    case 'serving.knative.dev/Route':
    case 'serving.knative.dev/Configuration':
      add(knative);
      break;
    case 'serving.knative.dev/Revision':
      add(knative.map((name) => `^${name}-\\d{5}$`));
      break;
    case 'batch/Job':
      add(docs.filter((doc) => doc.kind === 'CronJob').map((doc) => `^${doc.metadata.name}-\\d+$`));
      break;
  }
  return names;
}

/** Some rendered object or pod template carries the label (with the value, when given), or Knative puts it on a function's pods. */
function labelExists(key: string, value: string | undefined, context: DocsContext, namespace: string): boolean {
  const docs = docsIn(context, namespace);
  const labelSets: Array<Record<string, string>> = [
    ...docs.map((doc) => doc.metadata?.labels ?? {}),
    ...docs.flatMap((doc) => podTemplates(doc).map((pod) => pod.labels)),
    // The labels CloudNativePG puts on a Cluster's instances.
    ...docs.filter(isCloudNativePgCluster).flatMap((cluster) => Array.from({ length: instances(cluster) }, (_, i) => instancePodLabels(cluster, i + 1))),
  ];
  const knative = docs.filter((doc) => doc.apiVersion === 'serving.knative.dev/v1' && doc.kind === 'Service').map((doc) => doc.metadata.name as string);
  const knativeLabels: Record<string, RegExp[]> = {
    'serving.knative.dev/service': knative.map((name) => new RegExp(`^${name}$`)),
    'serving.knative.dev/configuration': knative.map((name) => new RegExp(`^${name}$`)),
    'serving.knative.dev/revision': knative.map((name) => new RegExp(`^${name}-\\d{5}$`)),
  };
  if (knativeLabels[key]) return value === undefined || knativeLabels[key].some((pattern) => pattern.test(value));
  return labelSets.some((labels) => key in labels && (value === undefined || String(labels[key]) === value));
}

function containerNames(context: DocsContext, namespace: string): Set<string> {
  const names = new Set(KNATIVE_CONTAINERS);
  for (const doc of docsIn(context, namespace)) {
    for (const pod of podTemplates(doc)) for (const field of ['initContainers', 'containers']) for (const container of (pod.spec[field] ?? []) as Obj[]) names.add(container.name);
  }
  return names;
}

function knProblems(args: string[], context: DocsContext): string[] {
  const problems: string[] = [];
  const value = (long: string, short?: string): string[] =>
    args.flatMap((word, i) => (word === `--${long}` || (short && word === `-${short}`) ? [args[i + 1] ?? ''] : word.startsWith(`--${long}=`) ? [word.slice(long.length + 3)] : []));
  const namespace = value('namespace', 'n').at(-1);
  if (namespace !== undefined && !isPlaceholder(namespace) && !projectNamespaces(context.cluster).has(namespace) && !context.createdNamespaces.has(namespace) && !EXTERNAL_NAMESPACES.includes(namespace)) {
    problems.push(`namespace ${namespace} is not one the manifests use, a documented command creates, or EXTERNAL_NAMESPACES lists`);
  }
  if (namespace === undefined || !ownedNamespaces(context.cluster).has(namespace)) return problems;
  const knative = new Set(docsIn(context, namespace).filter((doc) => doc.apiVersion === 'serving.knative.dev/v1' && doc.kind === 'Service').map((doc) => doc.metadata.name as string));
  const [group, verb, name] = args;
  const service = group === 'service' && verb !== 'list' && name && !name.startsWith('-') ? name : group === 'revision' ? value('service', 's').at(-1) : undefined;
  if (service === undefined || isPlaceholder(service)) return problems;
  if (!knative.has(service)) return [...problems, `no Knative Service named ${service} in ${namespace}`];
  const isRevision = (word: string) => word === '@latest' || new RegExp(`^${service}-\\d{5}$`).test(word);
  for (const traffic of value('traffic')) {
    for (const [target] of traffic.split(',').map((pair) => pair.split('='))) {
      if (!isPlaceholder(target!) && !isRevision(target!) && !context.knTags.has(`${service}=${target}`)) problems.push(`--traffic ${target}: neither @latest, a revision of ${service} (${service}-NNNNN), nor a tag a documented --tag gives`);
    }
  }
  for (const tag of value('tag')) {
    for (const [revision] of tag.split(',').map((pair) => pair.split('='))) {
      if (!isPlaceholder(revision!) && !isRevision(revision!)) problems.push(`--tag ${revision}: neither @latest nor a revision of ${service} (${service}-NNNNN)`);
    }
  }
  if (group === 'revision' && verb !== 'list' && name && !name.startsWith('-') && !isPlaceholder(name) && !isRevision(name)) problems.push(`${name} is no revision of ${service}`);
  return problems;
}

// ---------------------------------------------------------------------------------------------------
// README's list of commands

/** The scripts README's `## Commands` table names in its first column (`npm start`, `npm run X ...`). */
export function readmeCommandScripts(markdown: string): string[] {
  const section = /^## Commands\n([\s\S]*?)(?=^## |(?![\s\S]))/m.exec(markdown)?.[1] ?? '';
  return section
    .split('\n')
    .filter((line) => line.startsWith('|'))
    .map((line) => /^\|\s*`npm (?:run(?:-script)? (?:-\S+ )*)?([^\s`]+)/.exec(line)?.[1])
    .filter((name): name is string => name !== undefined);
}

// ---------------------------------------------------------------------------------------------------
// The tree

/** Every folder in the tree with a kustomization that builds on its own (components left out). */
export function kustomizationDirs(root: string): string[] {
  const found: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(path.join(root, dir), { withFileTypes: true })) {
      if (!entry.isDirectory() || entry.name.startsWith('.') || ['node_modules', 'dist', 'test'].includes(entry.name)) continue;
      walk(path.posix.join(dir, entry.name));
    }
    const file = ['kustomization.yaml', 'kustomization.yml', 'Kustomization'].map((name) => path.join(root, dir, name)).find(existsSync);
    if (file && (parse(readFileSync(file, 'utf8')) as Obj | null)?.kind !== 'Component') found.push(dir);
  };
  walk('.');
  return found.map((dir) => path.posix.normalize(dir));
}

/** Folders whose kustomization.yaml a page shows for the reader to write (`# <folder>/kustomization.yaml`). */
export function documentedOverlays(markdown: string): string[] {
  return [...markdown.matchAll(/^ {0,3}```ya?ml\n# ([\w./-]+)\/kustomization\.ya?ml\n/gm)].map((m) => path.posix.basename(m[1]!));
}
