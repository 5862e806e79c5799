/** README's Commands table lists exactly package.json's scripts: every one, and nothing else. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { projectRoot } from '../../functions/shared/config';
import { readmeCommandScripts } from '../helpers/docs-commands';

const read = (file: string) => readFileSync(path.join(projectRoot, file), 'utf8');

test("README's Commands table lists every npm script, and only those", (t) => {
  const scripts = Object.keys(JSON.parse(read('package.json')).scripts).sort();
  const listed = readmeCommandScripts(read('README.md'));
  t.deepEqual(listed.filter((name, i) => listed.indexOf(name) !== i), [], 'a script listed twice');
  t.deepEqual({ missing: scripts.filter((name) => !listed.includes(name)), notScripts: listed.filter((name) => !scripts.includes(name)) }, { missing: [], notScripts: [] });
});

test('the table is read from its first column, in every form a command takes there', (t) => {
  const readme = [
    '## Two commands', '', '| command | does |', '| --- | --- |', '| `npm run elsewhere` | not the Commands table |', '',
    '## Commands', '', '| command | does |', '| --- | --- |',
    '| `npm start` | a |', '| `npm test` | b |', '| `npm run test:chaos` | c |', '| `npm run seal -- --name <secret> ...` | d |', '| `npm run -s quiet` | e |', '| `npx ava` | not npm |',
    '', '## Layout', '| `npm run after` | not the Commands table |',
  ].join('\n');
  t.deepEqual(readmeCommandScripts(readme), ['start', 'test', 'test:chaos', 'seal', 'quiet']);
});
