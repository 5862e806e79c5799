/**
 * `npm run lint:migrations`: squawk over the migrations, as `npm test` runs it. Each kind of migration
 * that would break the revision still running during a rollout is written into a temporary folder (never
 * into db/migrations) and must be refused, naming its file and squawk's rule.
 */
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import test, { type ExecutionContext } from 'ava';
import { projectRoot } from '../../functions/shared/config';
import { tempDir } from '../helpers/temp';

const run = promisify(execFile);

/** `npm run lint:migrations -- <dir>` over `files` in a folder of the test's: exit code, and every `file: rule` squawk reported. */
async function lint(t: ExecutionContext, files: Record<string, string>): Promise<{ code: number; found: string[]; output: string }> {
  const dir = tempDir(t, 'migrations-');
  for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, name), text);
  const { code, stdout, stderr } = await run('npm', ['run', '-s', 'lint:migrations', '--', dir], { cwd: projectRoot }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (error: { code: number; stdout: string; stderr: string }) => ({ code: error.code, stdout: error.stdout, stderr: error.stderr }),
  );
  // squawk colours its report and links each rule to its documentation, terminal or not.
  const output = `${stdout}${stderr}`.replace(/\x1b\]8;;[^\x1b]*\x1b\\/g, '').replace(/\x1b\[[0-9;]*m/g, '');
  const found = [...output.matchAll(/warning\[([a-z-]+)\][^\n]*\n\s*╭▸ (\S+?):\d+:\d+/g)].map(([, rule, file]) => `${path.basename(file!)}: ${rule}`);
  return { code, found, output };
}

// What a release may do to a table the running revision uses: with the timeouts squawk asks for, so each
// case shows only its own rule.
const timeouts = "set local lock_timeout = '1s';\nset local statement_timeout = '1s';\n";

test('our migrations pass', async (t) => {
  const { code, stdout, stderr } = await run('npm', ['run', '-s', 'lint:migrations'], { cwd: projectRoot }).then(
    (r) => ({ code: 0, ...r }),
    (error: { code: number; stdout: string; stderr: string }) => ({ code: error.code, stdout: error.stdout, stderr: error.stderr }),
  );
  t.is(code, 0, `${stdout}${stderr}`);
});

test('each change that breaks the running revision is refused, naming the file and the rule', async (t) => {
  const { code, found, output } = await lint(t, {
    '001_create_pings.sql': 'create table pings (id boolean primary key default true check (id), n bigint not null);\n',
    '002_required_column.sql': `${timeouts}alter table pings add column owner text not null;\n`,
    '003_drop_column.sql': `${timeouts}alter table pings drop column n;\n`,
    '004_drop_table.sql': `${timeouts}drop table pings;\n`,
    '005_rename_column.sql': `${timeouts}alter table pings rename column n to count;\n`,
    '006_rename_table.sql': `${timeouts}alter table pings rename to ping_counts;\n`,
    '007_column_type.sql': `${timeouts}alter table pings alter column n type numeric;\n`,
    '008_blocking_index.sql': `${timeouts}create index pings_n on pings (n);\n`,
    // The migrator's transaction rules CONCURRENTLY out (docs/updating.md says what to do instead).
    '009_concurrent_index.sql': `${timeouts}create index concurrently if not exists pings_n on pings (n);\n`,
    '010_no_timeouts.sql': 'alter table pings add column note text;\n',
  });
  t.is(code, 1, output);
  t.deepEqual(found.sort(), [
    '002_required_column.sql: adding-required-field',
    '003_drop_column.sql: ban-drop-column',
    '004_drop_table.sql: ban-drop-table',
    '005_rename_column.sql: renaming-column',
    '006_rename_table.sql: renaming-table',
    '007_column_type.sql: changing-column-type',
    '008_blocking_index.sql: require-concurrent-index-creation',
    '009_concurrent_index.sql: ban-concurrent-index-creation-in-transaction',
    '010_no_timeouts.sql: require-lock-timeout',
    '010_no_timeouts.sql: require-statement-timeout',
  ], output);
});

test('what keeps the previous release working passes: a nullable column, a column with a default, an index on a new table', async (t) => {
  const { code, found, output } = await lint(t, {
    '002_expand.sql': `${timeouts}alter table pings add column note text;\nalter table pings add column created_at timestamptz not null default now();\n`,
    '003_new_table.sql': `${timeouts}create table visits (id bigint generated always as identity primary key, at timestamptz not null);\ncreate index visits_at on visits (at);\n`,
  });
  t.deepEqual(found, [], output);
  t.is(code, 0, output);
});

test('a waiver sits in the migration with its reason; one without a reason is refused', async (t) => {
  const waived = `${timeouts}-- squawk-ignore require-concurrent-index-creation -- pings has one row: the index builds in microseconds\ncreate index if not exists pings_n on pings (n);\n`;
  t.is((await lint(t, { '002_index.sql': waived })).code, 0);
  const bare = await lint(t, { '002_index.sql': `${timeouts}-- squawk-ignore require-concurrent-index-creation\ncreate index if not exists pings_n on pings (n);\n` });
  t.is(bare.code, 1);
  t.regex(bare.output, /002_index\.sql:3:-- squawk-ignore require-concurrent-index-creation\n/);
  t.regex(bare.output, /a squawk-ignore above has no reason: write it as -- squawk-ignore <rule> -- <why>/);
});
