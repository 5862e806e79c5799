import { writeFileSync } from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { readLogOutputConfig } from '../../functions/log-output/config';
import { pageText, stampLine } from '../../functions/log-output/page';
import { ConfigError, readBoolean, readHttpUrl, readInt } from '../../functions/shared/config';
import { readDatabaseConfig } from '../../functions/shared/db';
import { tempDirForFile } from '../helpers/temp';

const dir = tempDirForFile('config-test-');
function dotenv(name: string, text: string): string {
  const file = path.join(dir, name);
  writeFileSync(file, text);
  return file;
}

test('readInt takes the default when unset and names the variable when malformed', (t) => {
  t.is(readInt({}, 'DB_POOL_SIZE', 10, 1, 100), 10);
  t.is(readInt({ DB_POOL_SIZE: ' 4 ' }, 'DB_POOL_SIZE', 10, 1, 100), 4);
  for (const bad of ['0', '101', '2.5', 'ten']) {
    const error = t.throws(() => readInt({ DB_POOL_SIZE: bad }, 'DB_POOL_SIZE', 10, 1, 100), { instanceOf: ConfigError });
    t.regex(error!.message, /^DB_POOL_SIZE must be a whole number from 1 to 100/);
  }
});

test('readBoolean: true or false, false when unset or empty, anything else named as wrong', (t) => {
  t.false(readBoolean({}, 'DEMO_IMAGES'));
  t.false(readBoolean({ DEMO_IMAGES: '' }, 'DEMO_IMAGES'));
  t.false(readBoolean({ DEMO_IMAGES: 'false' }, 'DEMO_IMAGES'));
  t.true(readBoolean({ DEMO_IMAGES: ' TRUE ' }, 'DEMO_IMAGES'));
  for (const bad of ['1', 'yes', 'on']) {
    t.throws(() => readBoolean({ DEMO_IMAGES: bad }, 'DEMO_IMAGES'), { instanceOf: ConfigError, message: `DEMO_IMAGES must be true or false, got "${bad}"` });
  }
});

test('readHttpUrl drops a trailing slash and refuses what is not http(s)', (t) => {
  t.is(readHttpUrl({}, 'PINGPONG_URL', 'http://localhost:8081'), 'http://localhost:8081');
  t.is(readHttpUrl({ PINGPONG_URL: 'http://pingpong.exercises.svc.cluster.local/' }, 'PINGPONG_URL', 'x'), 'http://pingpong.exercises.svc.cluster.local');
  t.throws(() => readHttpUrl({ PINGPONG_URL: 'ftp://x' }, 'PINGPONG_URL', 'x'), { message: /^PINGPONG_URL must be an http\(s\) URL/ });
  t.throws(() => readHttpUrl({ PINGPONG_URL: 'not a url' }, 'PINGPONG_URL', 'x'), { message: /^PINGPONG_URL/ });
});

test('the database settings: DATABASE_URL when set, a pool of 10 by default', (t) => {
  t.deepEqual(readDatabaseConfig({}), { url: undefined, poolSize: 10 });
  t.deepEqual(readDatabaseConfig({ DATABASE_URL: 'postgres://db/x', DB_POOL_SIZE: '3' }), { url: 'postgres://db/x', poolSize: 3 });
});

test('MESSAGE comes from the dotenv file, and a MESSAGE variable overrides it', (t) => {
  const file = dotenv('hello.env', '# greeting\nMESSAGE=Hello\nOTHER="quoted value"\n');
  t.is(readLogOutputConfig({ ENV_FILE: file }).message, 'Hello');
  t.is(readLogOutputConfig({ ENV_FILE: file, MESSAGE: 'Override' }).message, 'Override');
});

test('PINGPONG_URL is plain http: pingpong is reached inside the cluster', (t) => {
  t.is(readLogOutputConfig({ PINGPONG_URL: 'http://pingpong.exercises.svc.cluster.local/' }).pingpongUrl, 'http://pingpong.exercises.svc.cluster.local');
  t.throws(() => readLogOutputConfig({ PINGPONG_URL: 'https://pingpong.example.com' }), { message: /^PINGPONG_URL must be an http:\/\/ URL/ });
});

test('a missing dotenv file means no message', (t) => {
  t.is(readLogOutputConfig({ ENV_FILE: path.join(dir, 'absent.env') }).message, undefined);
  t.is(readLogOutputConfig({}).message, undefined);
});

test('a dotenv file that cannot be parsed stops start-up with the file and line', (t) => {
  const file = dotenv('broken.env', 'MESSAGE=Hello\nthis is not a setting\n');
  t.throws(() => readLogOutputConfig({ ENV_FILE: file }), { instanceOf: ConfigError, message: `ENV_FILE ${file} line 2 is not KEY=VALUE: "this is not a setting"` });
  t.throws(() => readLogOutputConfig({ ENV_FILE: dir }), { instanceOf: ConfigError, message: /cannot be read/ });
});

test('the wait for pingpong is 2 s unless PINGPONG_TIMEOUT_MS says otherwise, in whole milliseconds up to a minute', (t) => {
  t.is(readLogOutputConfig({}).pingpongTimeoutMs, 2000);
  t.is(readLogOutputConfig({ PINGPONG_TIMEOUT_MS: '10000' }).pingpongTimeoutMs, 10_000);
  for (const bad of ['10s', '0', '-1', '60001', '1.5']) {
    t.throws(() => readLogOutputConfig({ PINGPONG_TIMEOUT_MS: bad }), { instanceOf: ConfigError, message: `PINGPONG_TIMEOUT_MS must be a whole number from 1 to 60000, got "${bad}"` });
  }
});

test('the stamp line and the page have the exact course format', (t) => {
  const stamp = stampLine(new Date('2020-03-30T12:15:17.705Z'), '8523ecb1-c716-4cb6-a044-b9e83bb98e43');
  t.is(stamp, '2020-03-30T12:15:17.705Z: 8523ecb1-c716-4cb6-a044-b9e83bb98e43.');
  t.is(pageText('Hello', stamp, 3), `Hello\n${stamp}\nPing / Pongs: 3`);
  t.is(pageText(undefined, stamp, 0), `${stamp}\nPing / Pongs: 0`);
});
