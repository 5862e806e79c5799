/**
 * docs/configuration.md holds every environment variable the code reads, with the default the code uses,
 * and nothing that no code reads. What counts as a read, and what this does not cover, is said in
 * test/helpers/docs-configuration.ts.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { projectRoot } from '../../functions/shared/config';
import { configurationProblems, configurationRows, envReadsInShell, envReadsInTypeScript, projectEnvReads } from '../helpers/docs-configuration';

const page = readFileSync(path.join(projectRoot, 'docs', 'configuration.md'), 'utf8');

test('configuration.md lists every variable the code reads, with its default, and none that nothing reads', (t) => {
  const reads = projectEnvReads(projectRoot);
  const rows = configurationRows(page);
  t.true(reads.length > 40, `only ${reads.length} reads found: is the reader still finding them?`);
  t.true(rows.length > 20, `only ${rows.length} rows found in configuration.md's tables`);
  t.deepEqual(configurationProblems(reads, rows), []);
});

test('reads and their defaults are found in every form the code uses', (t) => {
  const source = [
    "import postgres from 'postgres';",
    "const LIMIT = 'a.example,b.example';",
    "const port = readInt(process.env, 'PORT_A', 8_080, 1, 65535);",
    "const hosts = readHosts(env, 'HOSTS', LIMIT);",
    'const flag = readBoolean(env, "FLAG");',
    "const dir = path.resolve(env.DIR || path.join(root, '.data'));",
    'const file = env.FILE ?? other.FILE;',
    "const out = env.OUT ? fromUser(env, env.OUT) : path.join(root, 'backups');",
    "const url = env['URL']?.trim() || undefined;",
    "env.WRITTEN = 'x';",
    'const built = { ...process.env, SET_FOR_A_CHILD: "1" };',
  ].join('\n');
  const reads = envReadsInTypeScript('x.ts', source, { envParameter: true }).map(({ name, defaults }) => `${name} ${defaults.join(',')}`);
  t.deepEqual(reads, [
    'PGHOST ', 'PGPORT ', 'PGDATABASE ', 'PGUSER ', 'PGPASSWORD ',
    'PORT_A 8080', 'HOSTS a.example,b.example', 'FLAG ', 'DIR .data', 'FILE ', 'OUT backups', 'OUT ', 'URL ',
  ]);
  // In a test file `env` is an environment being built for a child, not read.
  t.deepEqual(envReadsInTypeScript('x.test.ts', 'const a = env.BUILT; const b = process.env.CI;', { envParameter: false }).map((read) => read.name), ['CI']);

  const shell = 'backup_dir=${BACKUP_DIR:-/backups}\nexport TIMEOUT=${TIMEOUT:-10}\nurl=${URL:-}\nstarted=${EPOCHREALTIME/[.,]/}\necho "$NAME"\npg_dump --no-password';
  t.deepEqual(envReadsInShell('x.sh', shell).map(({ name, defaults }) => `${name} ${defaults.join(',')}`), [
    'BACKUP_DIR /backups', 'TIMEOUT 10', 'URL ', 'NAME ', 'PGHOST ', 'PGPORT ', 'PGDATABASE ', 'PGUSER ', 'PGPASSWORD ',
  ]);
});

test('a variable missing from the table, a wrong default, a variable nothing reads and one listed twice are each caught', (t) => {
  const table = [
    '| variable | read by | default | meaning |',
    '| --- | --- | --- | --- |',
    '| `BENCH_SECONDS` | bench | `4` | seconds a run |',
    '| `PORT_A`, `OLD_NAME` | x | `8080` | a port |',
    '| `PORT_A` | y | `8080` | again |',
    '| `DIR` | x | `.data/` | where |',
  ].join('\n');
  const reads = [
    { name: 'BENCH_SECONDS', where: 'bench/run.ts:20', defaults: ['5'] },
    { name: 'PORT_A', where: 'x.ts:1', defaults: ['8080'] },
    { name: 'DIR', where: 'x.ts:2', defaults: ['.data'] },
    { name: 'PROMETHEUS_PORT', where: 'scripts/monitor.ts:10', defaults: ['9090'] },
  ];
  t.deepEqual(configurationProblems(reads, configurationRows(table), 'page.md'), [
    'page.md:5: PORT_A is listed twice (also on line 4): give it one home',
    'bench/run.ts:20: BENCH_SECONDS defaults to "5" here, but page.md:3 gives "4"',
    'scripts/monitor.ts:10: reads PROMETHEUS_PORT, which page.md does not list',
    'page.md:4: OLD_NAME is listed, but nothing reads it',
  ]);
  // A number is matched whole: 5 is not shown by 15 or 0.5.
  t.deepEqual(configurationProblems([{ name: 'N', where: 'x', defaults: ['5'] }], configurationRows('| variable | default |\n| --- | --- |\n| `N` | `15`, or 0.5 |'), 'p'), [
    'x: N defaults to "5" here, but p:3 gives "15, or 0.5"',
  ]);
});
