/**
 * The documentation's links: README.md links every page in docs/, every relative link and `#anchor` in
 * README.md and docs/ leads somewhere, and README's test command is the one `.ci/run` runs.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { projectRoot } from '../../functions/shared/config';
import { brokenLinks, githubSlug, headingAnchors, markdownLinks, type Files } from '../helpers/markdown-links';

const read = (file: string) => readFileSync(path.join(projectRoot, file), 'utf8');
const projectFiles: Files = { exists: (file) => existsSync(path.join(projectRoot, file)), read };
const docs = readdirSync(path.join(projectRoot, 'docs'), { recursive: true, withFileTypes: true })
  .filter((entry) => entry.isFile())
  .map((entry) => path.relative(projectRoot, path.join(entry.parentPath, entry.name)).split(path.sep).join('/'))
  .sort();
const pages = ['README.md', ...docs.filter((file) => file.endsWith('.md'))];

test('README.md links every file in docs/', (t) => {
  t.true(docs.length > 0, 'docs/ holds no pages');
  const linked = new Set(markdownLinks(read('README.md')).map(({ target }) => path.posix.normalize(target.split('#')[0]!)));
  t.deepEqual(docs.filter((file) => !linked.has(file)), [], 'add a line for each of these to README.md\'s list of topic pages');
});

test('every relative link and #anchor in README.md and docs/ leads to a file, a folder or a heading', (t) => {
  const links = pages.flatMap((page) => markdownLinks(read(page)));
  t.true(links.length > 50, `only ${links.length} links found: is the link parser still reading the pages?`);
  t.deepEqual(pages.flatMap((page) => brokenLinks(page, read(page), projectFiles)), []);
});

test("README.md names the test command .ci/run runs, and .ci/run runs that command after npm ci", (t) => {
  const ciCommands = read('.ci/run').split('\n').map((line) => line.trim()).filter((line) => line && !line.startsWith('#'));
  const afterInstall = ciCommands.slice(ciCommands.indexOf('npm ci') + 1);
  t.true(ciCommands.includes('npm ci'), '.ci/run no longer runs npm ci');
  const readmeCommand = /then runs both suites: `([^`]+)`/.exec(read('README.md'))?.[1];
  if (!readmeCommand) return t.fail("README.md no longer says which command .ci/run runs ('then runs both suites: `...`')");
  t.deepEqual(afterInstall, [readmeCommand]);
});

test('headings get the anchors GitHub gives them, repeated ones numbered', (t) => {
  t.is(githubSlug('pingpong (`functions/pingpong/`)'), 'pingpong-functionspingpong');
  t.is(githubSlug("Back up the controller's key"), 'back-up-the-controllers-key');
  t.is(githubSlug('1. A cluster with Knative Serving, Kourier and the sealed-secrets controller'),
    '1-a-cluster-with-knative-serving-kourier-and-the-sealed-secrets-controller');
  t.is(githubSlug('**Bold** and [a link](x.md) in µs'), 'bold-and-a-link-in-µs');
  t.is(githubSlug('snake_case  twice'), 'snake_case--twice');
  const page = '# Notes\n## Setup\n```sh\n# Setup\n```\n## Setup\n### Setup ##\n## Setup-1\n';
  t.deepEqual([...headingAnchors(page)], ['notes', 'setup', 'setup-1', 'setup-2', 'setup-1-1']);
});

test('a missing file, a missing folder, an unknown anchor and a link outside the project are each caught', (t) => {
  const tree: Record<string, string> = {
    'README.md': '# Title\n## Run it\n',
    'docs/guide.md': '# Guide\n## Deploy\n',
    'functions/pingpong/counter.ts': '',
  };
  const files: Files = {
    exists: (file) => file === '.' || Object.keys(tree).some((known) => known === file || known.startsWith(`${file}/`)),
    read: (file) => tree[file]!,
  };
  const page = [
    '# Guide',
    '## Deploy',
    'Good: [counter](../functions/pingpong/counter.ts), [folder](../functions/pingpong/), [run](../README.md#run-it),',
    '[here](#deploy), [web](https://example.com/x#y), `[code](nowhere.md)`, and in a fence:',
    '```',
    '[fenced](nowhere.md)',
    '```',
    'Bad: [gone](../functions/pingpong/count.ts), [no folder](../knative/), [anchor](../README.md#run),',
    '[here](#deploying), [up](../../etc/passwd), [root](/README.md), [ts anchor](../functions/pingpong/counter.ts#L1)',
  ].join('\n');
  t.deepEqual(brokenLinks('docs/guide.md', page, files), [
    'docs/guide.md:8: ../functions/pingpong/count.ts: no such file or folder (functions/pingpong/count.ts)',
    'docs/guide.md:8: ../knative/: no such file or folder (knative/)',
    'docs/guide.md:8: ../README.md#run: no heading with the anchor #run in README.md',
    'docs/guide.md:9: #deploying: no heading with the anchor #deploying in docs/guide.md',
    'docs/guide.md:9: ../../etc/passwd: leaves the project',
    'docs/guide.md:9: /README.md: a link from the site root; use a path relative to the page',
    'docs/guide.md:9: ../functions/pingpong/counter.ts#L1: an anchor on a file that is not Markdown',
  ]);
});
