/**
 * db/backups/backup.sh and db/backups/restore.sh against a real Postgres with the real pg_dump, pg_restore and psql,
 * and `npm run backup` / `npm run restore` run as a user runs them (compiled).
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { connect as connectTcp } from 'node:net';
import path from 'node:path';
import ava, { type ExecutionContext } from 'ava';
import postgres from 'postgres';
import { projectRoot } from '../../functions/shared/config';
import { migrate } from '../../functions/shared/db';
import { startFunction } from '../helpers/functions';
import { freePort } from '../helpers/ports';
import { sharedTestPostgres, startTestPostgres } from '../helpers/postgres';
import { tempDir } from '../helpers/temp';
import { testNeeding } from '../helpers/tools';

// One at a time: each test runs several processes, and other files' tests measure response times.
const test = testNeeding(['pg_dump', 'pg_restore', 'psql'], "install Debian's postgresql-client (.ci/run does)", { serial: true });
const shared = sharedTestPostgres();
ava.after.always(shared.stop);

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end with only `env` (plus PATH and HOME), so no PG* variable of ours leaks in. */
function run(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.once('error', reject).once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const script = (name: string) => path.join(projectRoot, 'db', 'backups', name);
const backup = (env: NodeJS.ProcessEnv) => run('bash', [script('backup.sh')], env);
const restore = (env: NodeJS.ProcessEnv, ...args: string[]) => run('bash', [script('restore.sh'), ...args], env);
const npmScript = (name: string) => path.join(projectRoot, 'dist', 'scripts', `${name}.js`);

/** A server and database to connect to: a URL with the password in it, never printed. */
type Database = { url: string };

const passwordOf = (db: Database) => decodeURIComponent(new URL(db.url).password);

/** The libpq variables for `db`, the way the CronJob gets them from the Secret. */
function libpq(db: Database): NodeJS.ProcessEnv {
  const url = new URL(db.url);
  return { PGHOST: url.hostname, PGPORT: url.port, PGUSER: url.username, PGPASSWORD: passwordOf(db), PGDATABASE: url.pathname.slice(1) };
}

/** A client for `db`, closed at teardown. */
function connectTo(t: ExecutionContext, db: Database): postgres.Sql {
  const sql = postgres(db.url, { max: 1, onnotice: () => undefined, connect_timeout: 30 });
  t.teardown(() => sql.end({ timeout: 1 }));
  return sql;
}

/** Every file in `dir`, hidden ones (a partial dump) included, sorted. */
const filesIn = (dir: string) => readdirSync(dir).sort();

const summaryLine = /^backup ok: file=(\S+) bytes=(\d+) tables=(\d+) seconds=(\d+\.\d\d)\n$/;

/** The count the dump holds, read from its data with pg_restore, not from any database. */
function countInDump(file: string): number {
  const data = spawnSync('pg_restore', ['--data-only', '--table=pings', '--file=-', file], { encoding: 'utf8' });
  const row = /^t\t(\d+)$/m.exec(data.stdout);
  if (!row) throw new Error(`no pings row in ${file}: ${data.stderr}`);
  return Number(row[1]);
}

const countOf = async (sql: postgres.Sql) => Number((await sql<[{ n: string }]>`select n from pings`)[0].n);
const pongsOf = async (url: string) => ((await (await fetch(`${url}/pongs`)).json()) as { pongs: number }).pongs;

/** 'connected', or the error code of connecting to `port` on this machine. */
function tryConnecting(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connectTcp(port, 'localhost');
    socket.once('connect', () => resolve('connected')).once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'error'));
    socket.once('connect', () => socket.end());
  });
}

/** Rows enough that the data, not the table of contents, is most of the dump. */
const addFiller = (sql: postgres.Sql) => sql`create table filler as select g, md5(g::text) as h from generate_series(1, 5000) g`;

/** A pg_dump on PATH that runs the real one, then does `then` (bash) with the output file in $file. */
function wrapPgDump(t: ExecutionContext, then: string): string {
  const real = spawnSync('bash', ['-c', 'command -v pg_dump'], { encoding: 'utf8' }).stdout.trim();
  const bin = tempDir(t, 'bin-');
  const body = `#!/usr/bin/env bash\nset -euo pipefail\n${JSON.stringify(real)} "$@"\nfor arg; do [[ $arg == --file=* ]] && file=\${arg#--file=}; done\n${then}\n`;
  writeFileSync(path.join(bin, 'pg_dump'), body);
  chmodSync(path.join(bin, 'pg_dump'), 0o755);
  return `${bin}:${process.env.PATH}`;
}

test('count at K, backup, wipe, restore: the count is K again', async (t) => {
  const db = await shared.database(t);
  const pingpong = await startFunction(t, 'pingpong', { DATABASE_URL: db.url });
  const k = 37;
  for (let i = 0; i < k; i++) await fetch(`${pingpong.url}/pingpong`);
  t.is(await pongsOf(pingpong.url), k);
  const dir = tempDir(t, 'backups-');

  const made = await backup({ ...libpq(db), BACKUP_DIR: dir });
  t.is(made.code, 0, made.stderr);
  const summary = summaryLine.exec(made.stdout);
  if (!summary) return t.fail(`no summary line in: ${made.stdout}`);
  const [, file = '', bytes, tables] = summary;
  t.deepEqual(filesIn(dir), [path.basename(file)]);
  t.regex(file, /\/backup-\d{8}T\d{6}Z\.dump$/);
  t.is(Number(bytes), statSync(file).size);
  t.is(Number(tables), 2, 'pings and schema_migrations');
  t.log(made.stdout.trim());

  await db.sql`drop table pings, schema_migrations`;
  t.is((await fetch(`${pingpong.url}/pongs`)).status, 503, 'the wipe is real');

  const restored = await restore(libpq(db), file);
  t.is(restored.code, 0, restored.stderr);
  t.regex(restored.stdout, /^restore ok: file=\S+ tables=2 seconds=\d+\.\d\d\n$/);
  t.log(restored.stdout.trim());
  t.is(await pongsOf(pingpong.url), k, 'pingpong, still running, reads the restored count');
  t.is(await (await fetch(`${pingpong.url}/pingpong`)).text(), `pong ${k}`);
});

test('a backup taken while pings are being written restores to the count in the dump', async (t) => {
  const db = await shared.database(t);
  await migrate(db.sql);
  const pingpong = await startFunction(t, 'pingpong', { DATABASE_URL: db.url });
  let writing = true;
  t.teardown(() => (writing = false));
  const writers = Array.from({ length: 6 }, async () => {
    while (writing) await fetch(`${pingpong.url}/pingpong`).catch(() => undefined); // what counts is what was committed
  });
  while ((await countOf(db.sql)) < 50) await new Promise((resolve) => setTimeout(resolve, 10));
  const dir = tempDir(t, 'backups-');

  const before = await countOf(db.sql);
  const made = await backup({ ...libpq(db), BACKUP_DIR: dir });
  const after = await countOf(db.sql);
  writing = false;
  await Promise.all(writers);
  t.is(made.code, 0, made.stderr);
  t.true(after > before, 'pings were being counted while the dump ran');

  const file = path.join(dir, filesIn(dir)[0]!);
  const dumped = countInDump(file);
  t.true(before <= dumped && dumped <= after, `${before} <= ${dumped} <= ${after}`);
  const elsewhere = await shared.database(t);
  const restored = await restore(libpq(elsewhere), file);
  t.is(restored.code, 0, restored.stderr);
  t.is(await countOf(elsewhere.sql), dumped);
});

test('database down: non-zero exit, no new file, the older backups kept', async (t) => {
  const dir = tempDir(t, 'backups-');
  writeFileSync(path.join(dir, 'backup-20200101T000000Z.dump'), 'an older backup');
  const nobody = { PGHOST: 'localhost', PGPORT: String(await freePort()), PGUSER: 'postgres', PGPASSWORD: 'x' };

  const made = await backup({ ...nobody, BACKUP_DIR: dir });
  t.not(made.code, 0);
  t.regex(made.stderr, /Connection refused[\s\S]*backup failed: pg_dump could not dump the database/);
  t.is(made.stdout, '');
  t.deepEqual(filesIn(dir), ['backup-20200101T000000Z.dump']);
});

test('connection lost in the middle of the dump: non-zero exit and the partial file is removed', async (t) => {
  const db = await shared.database(t);
  await migrate(db.sql);
  const dir = tempDir(t, 'backups-');
  // Hold a lock pg_dump must wait for, so it is caught mid-dump with its output file already open.
  const locker = await db.sql.reserve();
  t.teardown(() => locker.release());
  await locker`begin`;
  await locker`lock table pings in access exclusive mode`;

  const running = backup({ ...libpq(db), BACKUP_DIR: dir });
  let waiting: { pid: number }[] = [];
  for (const giveUpAt = Date.now() + 15_000; waiting.length === 0 && Date.now() < giveUpAt; ) {
    await new Promise((resolve) => setTimeout(resolve, 25));
    waiting = await db.sql`select pid from pg_stat_activity where datname = current_database() and application_name = 'pg_dump' and wait_event_type = 'Lock'`;
  }
  t.is(waiting.length, 1, 'pg_dump is waiting for the lock');
  t.deepEqual(filesIn(dir).filter((name) => name.endsWith('.partial')).length, 1, 'a partial file exists meanwhile');
  await db.sql`select pg_terminate_backend(${waiting[0]!.pid})`;

  const made = await running;
  await locker`rollback`;
  t.not(made.code, 0);
  t.regex(made.stderr, /backup failed: pg_dump could not dump the database/);
  t.deepEqual(filesIn(dir), []);
});

test('wrong password: non-zero exit, no file, and no password in the output', async (t) => {
  const db = await shared.database(t);
  const dir = tempDir(t, 'backups-');
  const made = await backup({ ...libpq(db), PGPASSWORD: 'not-the-password-7d1e', BACKUP_DIR: dir });
  t.not(made.code, 0);
  t.regex(made.stderr, /password authentication failed for user "postgres"/);
  t.false((made.stdout + made.stderr).includes('not-the-password-7d1e'));
  t.deepEqual(filesIn(dir), []);
});

test('a password inside DATABASE_URL is refused: it would show on the command line', async (t) => {
  const dir = tempDir(t, 'backups-');
  // Built at run time, so the tree holds no URL with a password in it.
  const inUserInfo = new URL('postgres://postgres@localhost/postgres');
  inUserInfo.password = 'in-url';
  const inQuery = new URL('postgres://postgres@localhost/postgres');
  inQuery.searchParams.set('password', 'in-url');
  for (const url of [inUserInfo, inQuery]) {
    const made = await backup({ DATABASE_URL: url.href, BACKUP_DIR: dir });
    t.is(made.code, 1);
    t.is(made.stderr, 'backup failed: DATABASE_URL has a password in it: put the password in PGPASSWORD instead\n');
  }
  t.deepEqual(filesIn(dir), []);
});

test('retention keeps exactly the newest BACKUP_KEEP and touches nothing else', async (t) => {
  const db = await shared.database(t);
  const dir = tempDir(t, 'backups-');
  const older = [1, 2, 3, 4, 5, 6].map((day) => `backup-2020010${day}T000000Z.dump`);
  for (const name of [...older, 'notes.txt', 'other-20200101T000000Z.dump']) writeFileSync(path.join(dir, name), name);

  for (const keep of ['0', 'seven', '-1']) {
    const refused = await backup({ ...libpq(db), BACKUP_DIR: dir, BACKUP_KEEP: keep });
    t.is(refused.code, 1);
    t.is(refused.stderr, `backup failed: BACKUP_KEEP must be a whole number from 1 to 9999, got "${keep}"\n`);
  }
  t.is(filesIn(dir).length, 8, 'a refused run deletes nothing');

  const made = await backup({ ...libpq(db), BACKUP_DIR: dir, BACKUP_KEEP: '3' });
  t.is(made.code, 0, made.stderr);
  const newest = path.basename(summaryLine.exec(made.stdout)![1]!);
  t.deepEqual(filesIn(dir), [older[4], older[5], newest, 'notes.txt', 'other-20200101T000000Z.dump'].sort());
});

test('a truncated or corrupted dump is caught by the verify step and not kept', async (t) => {
  const db = await shared.database(t);
  await migrate(db.sql);
  await addFiller(db.sql);
  const kept = tempDir(t, 'damaged-');
  const damages = {
    truncated: 'truncate -s $(($(wc -c <"$file") / 2)) "$file"',
    corrupted: `printf '\\xde\\xad\\xbe\\xef' | dd of="$file" bs=1 seek=$(($(wc -c <"$file") * 2 / 3)) conv=notrunc status=none`,
  };
  for (const [damage, command] of Object.entries(damages)) {
    const dir = tempDir(t, 'backups-');
    writeFileSync(path.join(dir, 'backup-20200101T000000Z.dump'), 'an older backup');
    const copy = path.join(kept, `${damage}.dump`);
    const PATH = wrapPgDump(t, `${command}\ncp "$file" ${JSON.stringify(copy)}`);

    const made = await backup({ ...libpq(db), PATH, BACKUP_DIR: dir });
    t.not(made.code, 0, damage);
    t.regex(made.stderr, /backup failed: verify: pg_restore cannot read every data block of \S+ \(truncated or corrupt\)/, damage);
    t.deepEqual(filesIn(dir), ['backup-20200101T000000Z.dump'], damage);
    // Why the script reads every block: the table of contents of the damaged file still lists fine.
    t.is(spawnSync('pg_restore', ['--list', copy]).status, 0, `${damage}: pg_restore --list alone would pass it`);
  }
});

test('full disk (a file size limit on the script): non-zero exit and no partial file', async (t) => {
  const db = await shared.database(t);
  await migrate(db.sql);
  await addFiller(db.sql);
  const limitKiB = 16;
  const probe = await backup({ ...libpq(db), BACKUP_DIR: tempDir(t, 'backups-') });
  t.true(Number(summaryLine.exec(probe.stdout)?.[2]) > limitKiB * 1024, 'the dump is larger than the limit');

  const dir = tempDir(t, 'backups-');
  // With SIGXFSZ ignored, a write past the limit fails like one on a full disk instead of killing pg_dump.
  const made = await run('bash', ['-c', `ulimit -f ${limitKiB} && trap '' XFSZ && exec bash "$0"`, script('backup.sh')], {
    ...libpq(db),
    BACKUP_DIR: dir,
  });
  t.not(made.code, 0);
  t.regex(made.stderr, /could not write to output file: File too large[\s\S]*backup failed: pg_dump could not dump/);
  t.deepEqual(filesIn(dir), []);
});

test('restore refuses a database with data, naming it, and replaces it with --force', async (t) => {
  const db = await shared.database(t);
  await migrate(db.sql);
  await db.sql`update pings set n = 5`;
  const dir = tempDir(t, 'backups-');
  t.is((await backup({ ...libpq(db), BACKUP_DIR: dir })).code, 0);
  const file = path.join(dir, filesIn(dir)[0]!);
  await db.sql`update pings set n = 9`;

  const refused = await restore(libpq(db), file);
  t.is(refused.code, 1);
  t.is(
    refused.stderr,
    'restore failed: the database is not empty, it has public.pings (rows: 1), public.schema_migrations (rows: 1). ' +
      'Pass --force to replace it with the dump\n',
  );
  t.is(await countOf(db.sql), 9, 'nothing changed');

  const forced = await restore(libpq(db), file, '--force');
  t.is(forced.code, 0, forced.stderr);
  t.is(await countOf(db.sql), 5);

  // A folder means its newest backup: the older "backup" here is garbage, so picking it would fail.
  writeFileSync(path.join(dir, 'backup-20200101T000000Z.dump'), 'garbage');
  await db.sql`update pings set n = 9`;
  const newest = await restore(libpq(db), `${dir}/`, '--force');
  t.is(newest.code, 0, newest.stderr);
  t.true(newest.stdout.startsWith(`restore ok: file=${file} `), newest.stdout);
  t.is(await countOf(db.sql), 5);
  const empty = await restore(libpq(db), tempDir(t, 'backups-'), '--force');
  t.is(empty.code, 1);
  t.regex(empty.stderr, /^restore failed: no backup-\*\.dump in \S+\n$/);

  const garbage = path.join(dir, 'not-a-dump.dump');
  writeFileSync(garbage, 'PGDMP but not really');
  const refusedGarbage = await restore(libpq(db), garbage, '--force');
  t.is(refusedGarbage.code, 1);
  t.regex(refusedGarbage.stderr, /restore failed: \S+ is not an archive made by pg_dump --format=custom \(or it is damaged\)/);
  t.is(await countOf(db.sql), 5);

  t.is((await restore(libpq(db))).code, 2, 'no file: usage');
  t.is((await restore(libpq(db), file, '--forse')).code, 2, 'an unknown flag: usage');
});

test('npm run backup and restore use the embedded Postgres of npm start, starting it only when it is not running', async (t) => {
  const db = await startTestPostgres(t); // its own: this test stops it
  await migrate(db.sql);
  await db.sql`update pings set n = 5`;
  const dir = tempDir(t, 'backups-');
  const local = { EMBEDDED_PG_DIR: db.dir, EMBEDDED_PG_PORT: String(db.port), BACKUP_DIR: dir };

  const made = await run(process.execPath, [npmScript('backup')], local);
  t.is(made.code, 0, made.stderr);
  t.regex(made.stdout, new RegExp(`^using the running embedded Postgres at postgres://postgres@localhost:${db.port}/postgres\nbackup ok: `));
  t.is(await countOf(db.sql), 5, 'the running server is left running');
  const file = filesIn(dir)[0]!;

  await db.sql`update pings set n = 9`;
  await db.sql.end();
  await db.stop();
  // A path relative to where the user typed the command (npm itself runs in the project root).
  const restored = await run(process.execPath, [npmScript('restore'), file, '--force'], { ...local, INIT_CWD: dir });
  t.is(restored.code, 0, restored.stderr);
  t.regex(restored.stdout, /^started the embedded Postgres at \S+ for this command[^\n]*\nrestore ok: /);
  t.is(await tryConnecting(db.port), 'ECONNREFUSED', 'the server it started is stopped again');

  await db.start();
  t.is(await countOf(connectTo(t, db)), 5);
  for (const output of [made, restored]) t.false((output.stdout + output.stderr).includes(passwordOf(db)), 'no password printed');

  const usage = await run(process.execPath, [npmScript('restore')], local);
  t.is(usage.code, 2);
  t.is(usage.stderr, 'usage: npm run restore -- <dump file | backup folder (its newest dump)> [--force]\n');
  const missing = await run(process.execPath, [npmScript('backup')], { ...local, EMBEDDED_PG_DIR: path.join(dir, 'none') });
  t.is(missing.code, 1);
  t.regex(missing.stderr, /^backup failed: no database to work on: there is no embedded Postgres in \S+ yet \(npm start creates it\)/);
});

test('npm run backup with DATABASE_URL: the password reaches pg_dump only through its environment', async (t) => {
  const db = await shared.database(t);
  const dir = tempDir(t, 'backups-');
  const argsFile = path.join(tempDir(t, 'args-'), 'pg_dump-args');
  const PATH = wrapPgDump(t, `printf '%s\\n' "$@" > ${JSON.stringify(argsFile)}`);

  const made = await run(process.execPath, [npmScript('backup')], { DATABASE_URL: db.url, BACKUP_DIR: dir, PATH });
  t.is(made.code, 0, made.stderr);
  t.regex(made.stdout, summaryLine);
  const args = readFileSync(argsFile, 'utf8');
  t.true(args.includes(`--dbname=postgres://postgres@localhost:${db.port}/${db.database}\n`), args);
  t.false((args + made.stdout + made.stderr).includes(passwordOf(db)));
});
