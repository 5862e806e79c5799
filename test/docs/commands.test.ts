/**
 * Every `kubectl`, `npm` and `kn` command in README.md and docs/ names a script, path, namespace, object,
 * label, container or flag that exists. What is checked, and what is not, is said in
 * test/helpers/docs-commands.ts.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { projectRoot } from '../../functions/shared/config';
import {
  checkedCommands, commandProblems, crdsIn, documentedOverlays, gatherCreated, kubectlHelpFromBinary, kustomizationDirs, pageCommands, resourceTypes, shellCommands,
  type DocsContext,
} from '../helpers/docs-commands';
import { COMPONENT_DIR as CLOUDNATIVEPG } from '../helpers/cloudnativepg';
import { ENVIRONMENTS, loadEnvironment, loadEnvironmentWith, manifestTest as test, renderKustomization, SCHEMAS_DIR, type Manifest } from '../helpers/manifests';

const read = (file: string) => readFileSync(path.join(projectRoot, file), 'utf8');
const pages = ['README.md', ...readdirSync(path.join(projectRoot, 'docs')).filter((file) => file.endsWith('.md')).sort().map((file) => `docs/${file}`)];

/**
 * Every object the tree's kustomizations render: each environment as the cluster gets it (staging's and
 * production's Secrets sealed for a throw-away key, dev's hook included), production with the CloudNativePG
 * option its overlay names, every other folder as it is.
 */
function renderedTree(dirs: string[]): Manifest[] {
  const environments = ENVIRONMENTS.map((name) => `environments/${name}`);
  return [
    ...ENVIRONMENTS.flatMap((name) => loadEnvironment(name)),
    ...loadEnvironmentWith('production', { components: [CLOUDNATIVEPG] }),
    ...dirs.filter((dir) => !environments.some((environment) => dir === environment || dir.startsWith(`${environment}/`))).flatMap((dir) => renderKustomization(dir)),
  ];
}

/** The tree as the commands see it, with what every page's commands create. */
function treeContext(allPages: Array<[string, string]>): DocsContext {
  const dirs = kustomizationDirs(projectRoot);
  const context: DocsContext = {
    scripts: JSON.parse(read('package.json')).scripts,
    exists: (file) => !file.startsWith('..') && existsSync(path.join(projectRoot, file)),
    isKustomization: (dir) => dirs.includes(dir),
    readFile: read,
    kubectlHelp: kubectlHelpFromBinary,
    cluster: { manifests: renderedTree(dirs), types: resourceTypes(crdsIn(SCHEMAS_DIR)) },
    documentedOverlays: new Set(allPages.flatMap(([, text]) => documentedOverlays(text))),
    writtenFiles: new Set(),
    createdNamespaces: new Set(),
    createdObjects: new Set(),
    knTags: new Set(),
  };
  gatherCreated(allPages.flatMap(([page, text]) => pageCommands(page, text)), context);
  return context;
}

const realPages = pages.map((page): [string, string] => [page, read(page)]);

test('every kubectl, npm and kn command in the docs names what exists', (t) => {
  const context = treeContext(realPages);
  const commands = checkedCommands(realPages.flatMap(([page, text]) => pageCommands(page, text)));
  const count = (tool: string) => commands.filter((command) => command.words.includes(tool)).length;
  t.true(count('kubectl') > 20 && count('npm') > 20 && count('kn') > 5, `too few commands found (${count('kubectl')} kubectl, ${count('npm')} npm, ${count('kn')} kn): is the reader still finding them?`);
  t.deepEqual(commands.flatMap((command) => commandProblems(command, context)), []);
});

test('a wrong script, flag, path, namespace, object, label, container or revision is caught', (t) => {
  const page = [
    '# Planted',
    '```sh',
    'npm run bnech',
    'npm run seal -- --nmae pixabay-apikey',
    'kubectl apply -k enviroments/dev',
    'kubectl apply -k ../my-own',
    'kubectl apply -f knative/pingpog.yaml',
    'kubectl -n exercise get pods',
    'kubectl -n exercises logs job/postgres-backup-later',
    'kubectl -n exercises exec -i postgres-1 -- psql',
    'kubectl -n exercises get cronjbo postgres-backup',
    'kubectl -n exercises get pods -l app.kubernetes.io/name=postgress',
    'kubectl logs -n exercises -l serving.knative.dev/service=pingpong -c ping-pong',
    'kubectl -n exercises get ksvc pingpong --wach',
    'kubectl rollout restat deployment/x',
    'kubectl logs postgres-0',
    'kubectl -n exercises create job --from=cronjob/postgres-backups backup-now',
    'kn service update pingpog -n exercises --traffic @latest=100',
    'kn service update pingpong -n exercises --traffic pingpong-4=100',
    '```',
    'And inline: `npm run demo -- --fast` and `kubectl -n exercises describe sts postgres`.',
  ].join('\n');
  const context = treeContext([...realPages, ['docs/planted.md', page]]);
  const problems = checkedCommands(pageCommands('docs/planted.md', page)).flatMap((command) => commandProblems(command, context));
  t.deepEqual(problems.map((problem) => problem.replace(/^docs\/planted\.md:(\d+): `[^`]*`: /, '$1: ')), [
    '3: package.json has no script "bnech"',
    '4: scripts/seal.ts (npm run seal) knows no --nmae',
    '5: enviroments/dev is no folder with a kustomization in the tree, nor an overlay a page shows',
    '6: ../my-own is no folder with a kustomization in the tree, nor an overlay a page shows',
    '7: knative/pingpog.yaml is no file in the tree, nor one a documented command writes',
    '8: namespace exercise is not one the manifests use, a documented command creates, or EXTERNAL_NAMESPACES lists',
    '9: no Job named postgres-backup-later in exercises: the manifests define none, nor does a documented command create one',
    '10: no Pod named postgres-1 in exercises: the manifests define none, nor does a documented command create one',
    '11: kubectl knows no resource type "cronjbo" (or add it to BUILT_IN_TYPES, or its CRD to test/schemas/)',
    '12: no object in exercises carries the label app.kubernetes.io/name=postgress',
    '13: no pod in exercises has a container named ping-pong',
    '14: kubectl get has no flag --wach',
    '15: kubectl has no command "rollout restat"',
    '16: names Pod postgres-0 without -n: add its namespace',
    '17: no CronJob named postgres-backups in exercises: the manifests define none, nor does a documented command create one',
    '18: no Knative Service named pingpog in exercises',
    '19: --traffic pingpong-4: neither @latest, a revision of pingpong (pingpong-NNNNN), nor a tag a documented --tag gives',
    '21: scripts/start.ts (npm run demo) knows no --fast',
  ]);
});

test('commands are split as the shell splits them', (t) => {
  const text = [
    "kubectl -n x run r --overrides='",
    '{"a": 1}\' && kubectl get secret s -o yaml > main.key   # a comment',
    'FOO=1 npm run restore -- <dump or folder> [--force] < in.dump 2>&1 | tee out.log',
    'kubectl patch cm/c \\',
    '  -p "{\\"x\\": 1}"; echo "$(date) done"',
  ].join('\n');
  t.deepEqual(shellCommands(text).map(({ words, line, writes }) => ({ words, line, writes })), [
    { words: ['kubectl', '-n', 'x', 'run', 'r', '--overrides=\n{"a": 1}'], line: 1, writes: [] },
    { words: ['kubectl', 'get', 'secret', 's', '-o', 'yaml'], line: 2, writes: ['main.key'] },
    { words: ['FOO=1', 'npm', 'run', 'restore', '--', '<dump or folder>', '[--force]'], line: 3, writes: [] },
    { words: ['tee', 'out.log'], line: 3, writes: [] },
    { words: ['kubectl', 'patch', 'cm/c', '-p', '{"x": 1}'], line: 4, writes: [] },
    { words: ['echo', '$(date) done'], line: 5, writes: [] },
  ]);
  const session = ['```console', '$ kn service list -n exercises', 'NAME   URL', '$ npm run bench \\', '  -- --x', '```', 'Run `kubectl get pods` or `npm test`, not `node x`.'].join('\n');
  t.deepEqual(pageCommands('p.md', session).map(({ words, line }) => `${line}: ${words.join(' ')}`), [
    '2: kn service list -n exercises',
    '4: npm run bench -- --x',
    '7: kubectl get pods',
    '7: npm test',
  ]);
});
