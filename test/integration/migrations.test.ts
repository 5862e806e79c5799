import { readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import postgres from 'postgres';
import { migrate, migrationsDir } from '../../functions/shared/db';
import { startTestPostgres } from '../helpers/postgres';
import { tempDir } from '../helpers/temp';

test('ten instances migrating at the same moment apply each file exactly once', async (t) => {
  const db = await startTestPostgres(t);
  const dir = tempDir(t, 'migrations-');
  // Neither file can run twice: a second run would fail on the existing table or the duplicate row.
  writeFileSync(path.join(dir, '001_first.sql'), 'create table a (id int primary key); insert into a values (1);');
  writeFileSync(path.join(dir, '002_second.sql'), 'create table b (id int primary key); insert into a values (2);');

  const pools = Array.from({ length: 10 }, () => postgres(db.url, { max: 1, onnotice: () => undefined }));
  t.teardown(() => Promise.all(pools.map((sql) => sql.end())));
  const results = await Promise.all(pools.map((sql) => migrate(sql, dir)));

  t.deepEqual(results.flat().sort(), ['001_first.sql', '002_second.sql'], 'each applied by one instance');
  t.deepEqual((await db.sql`select name from schema_migrations order by name`).map((row) => row.name), ['001_first.sql', '002_second.sql']);
  t.deepEqual((await db.sql`select id from a order by id`).map((row) => row.id), [1, 2]);
});

test('with nothing to apply, migrating costs one query', async (t) => {
  const db = await startTestPostgres(t);
  await migrate(db.sql);
  const queries: string[] = [];
  // fetch_types off, as in the functions' own pool: otherwise a new connection first asks for array types.
  const sql = postgres(db.url, { max: 1, fetch_types: false, debug: (_connection, query) => queries.push(query) });
  t.teardown(() => sql.end());
  t.deepEqual(await migrate(sql), []);
  t.is(queries.length, 1, queries.join('\n'));
});

test('the project migrations create the counter at zero', async (t) => {
  const db = await startTestPostgres(t);
  t.true((await migrate(db.sql, migrationsDir)).length > 0);
  t.deepEqual([...(await db.sql`select n from pings`)], [{ n: '0' }]);
});

test('a failing migration applies nothing and is retried next time', async (t) => {
  const db = await startTestPostgres(t);
  const dir = tempDir(t, 'migrations-');
  writeFileSync(path.join(dir, '001_ok.sql'), 'create table c (id int);');
  writeFileSync(path.join(dir, '002_broken.sql'), 'create tabel oops;');
  await t.throwsAsync(migrate(db.sql, dir), { message: /syntax error/ });
  t.deepEqual([...(await db.sql`select to_regclass('c') as c`)], [{ c: null }], 'the first file was rolled back with the second');

  writeFileSync(path.join(dir, '002_broken.sql'), 'create table d (id int);');
  t.deepEqual(await migrate(db.sql, dir), ['001_ok.sql', '002_broken.sql']);
});

test('CREATE INDEX CONCURRENTLY cannot run in the migrator\'s transaction: Postgres refuses it and nothing is applied', async (t) => {
  const { db, dir } = await nextRelease(t, '002_index.sql', 'create index concurrently if not exists pings_n on pings (n);');
  await t.throwsAsync(migrate(db.sql, dir), { message: /CREATE INDEX CONCURRENTLY cannot run inside a transaction block/ });
  t.deepEqual([...(await db.sql`select to_regclass('pings_n') as i`)], [{ i: null }]);
});

test('a migration that cannot take its lock within its lock_timeout fails at once instead of queueing the running revision behind it', async (t) => {
  const { db, dir } = await nextRelease(t, '002_note.sql', "set local lock_timeout = '200ms';\nset local statement_timeout = '1s';\nalter table pings add column note text;\n");
  // A long transaction holding the table, as a slow query of the running revision would.
  // It holds the lock until the test lets go, so a migration that queued behind it would never end by
  // itself; its statement_timeout would end it with "canceling statement due to statement timeout".
  // Failing with "lock timeout" is the proof, whatever a busy machine does to the wall clock.
  const holder = postgres(db.url, { max: 1, onnotice: () => undefined });
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let locked!: () => void;
  const lockTaken = new Promise<void>((resolve) => (locked = resolve));
  const held = holder.begin(async (tx) => {
    await tx`select n from pings for update`;
    locked();
    await released;
  });
  t.teardown(async () => {
    release();
    await held;
    await holder.end();
  });
  await lockTaken;
  await t.throwsAsync(migrate(db.sql, dir), { message: /canceling statement due to lock timeout/ });
  release();
  await held;
  t.deepEqual((await migrate(db.sql, dir)).sort(), ['002_note.sql'], 'retried once the table is free');
});

/**
 * A database with the project's migrations applied, and a folder as the next release would ship it:
 * those migrations (empty here, being applied) and `name` with `text` after them.
 */
async function nextRelease(t: ExecutionContext, name: string, text: string) {
  const db = await startTestPostgres(t);
  await migrate(db.sql, migrationsDir);
  const dir = tempDir(t, 'migrations-');
  for (const applied of readdirSync(migrationsDir)) writeFileSync(path.join(dir, applied), '');
  writeFileSync(path.join(dir, name), text);
  return { db, dir };
}
