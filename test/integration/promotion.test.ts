/**
 * The pipeline's promotions and the rollbacks they allow, rehearsed with real git and real kustomize on a
 * copy of the tree (sealed for a throw-away key): `npm run promote` and scripts/commit-deploy.sh as the
 * workflow runs them, against a bare repository standing in for GitHub; then each environment rendered
 * before and after a promotion, after its `git revert`, and at an older commit, as Argo CD or
 * `kubectl apply -k` would render it.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import { projectRoot } from '../../functions/shared/config';
import { functionsImagePlaces, images } from '../helpers/delivery';
import { kubectlProblem, kustomize, parseYamlDocuments, sealedRoot } from '../helpers/manifests';
import { tempDir } from '../helpers/temp';
import { testUnless } from '../helpers/tools';

const gitMissing = spawnSync('git', ['--version']).error ? 'git not found: apt-get install -y git' : undefined;
const test = testUnless(kubectlProblem() ?? gitMissing, 'kubectl and git');

const promoteScript = path.join(projectRoot, 'dist', 'scripts', 'promote.js');
const commitDeploy = path.join(projectRoot, 'scripts', 'commit-deploy.sh');
const builtCommit = path.join(projectRoot, 'scripts', 'built-commit.sh');
const name = 'ghcr.io/your-fork/devops-with-kubernetes-knative/functions';
const digest = (c: string) => `sha256:${c.repeat(64)}`;
const IDENTITY = { GIT_AUTHOR_NAME: 'Test', GIT_AUTHOR_EMAIL: 'test@example.com', GIT_COMMITTER_NAME: 'Test', GIT_COMMITTER_EMAIL: 'test@example.com' };

interface Repository {
  dir: string;
  git(...args: string[]): string;
  run(command: string, args: string[]): { code: number | null; stdout: string; stderr: string };
  /** The functions' image in each place it runs, as the environment renders at the checked-out commit. */
  imageOf(environment: string): string;
}

/** A clone of a bare "GitHub" holding the sealed tree on main, as the workflow's checkout of main. */
function repository(t: ExecutionContext): Repository & { origin: string } {
  const root = tempDir(t, 'promotion-');
  const origin = path.join(root, 'origin.git');
  const dir = path.join(root, 'work');
  const env = { ...process.env, ...IDENTITY };
  const git = (cwd: string) => (...args: string[]) => execFileSync('git', args, { cwd, env, encoding: 'utf8' }).trim();
  execFileSync('git', ['init', '--quiet', '--bare', '--initial-branch=main', origin]);
  mkdirSync(dir);
  for (const folder of ['environments', 'knative', 'db', 'monitoring']) cpSync(path.join(sealedRoot(), folder), path.join(dir, folder), { recursive: true });
  git(dir)('init', '--quiet', '--initial-branch=main');
  git(dir)('add', '.');
  git(dir)('commit', '--quiet', '-m', 'the system');
  git(dir)('remote', 'add', 'origin', origin);
  git(dir)('push', '--quiet', 'origin', 'main');
  const run = (command: string, args: string[]) => {
    const result = spawnSync(command, args, { cwd: dir, env, encoding: 'utf8' });
    return { code: result.status, stdout: result.stdout, stderr: result.stderr };
  };
  const imageOf = (environment: string) => {
    // Rendered afresh each time (renderKustomization keeps one render per folder, for a tree that does not change).
    const rendered = parseYamlDocuments(kustomize(path.join(dir, 'environments', environment)), environment).map((doc) => ({ file: '', doc }));
    const places = new Set(functionsImagePlaces(rendered));
    const found = [...new Set(images(rendered).filter((i) => places.has(i.where)).map((i) => i.image))];
    if (found.length !== 1) throw new Error(`${environment} runs ${found.length} functions images: ${found.join(', ')}`);
    return found[0]!;
  };
  return { dir, origin, git: git(dir), run, imageOf };
}

/** What the workflow's staging or production job does once it knows the image: promote, then commit and push. */
function deploy(repo: Repository, environment: string, image: string, subject: string) {
  const promoted = repo.run(process.execPath, [promoteScript, environment, image]);
  const committed = repo.run('sh', [commitDeploy, environment, subject]);
  return { promoted, committed };
}

test('a promotion is one commit on main that moves one environment to a digest; its revert moves it back', (t) => {
  const repo = repository(t);
  const first = `${name}@${digest('a')}`;
  const second = `${name}@${digest('b')}`;

  const toStaging = deploy(repo, 'staging', first, 'deploy(staging): aaaa');
  t.is(toStaging.promoted.code, 0, toStaging.promoted.stderr);
  t.is(toStaging.committed.code, 0, toStaging.committed.stderr);
  t.is(repo.git('log', '-1', '--format=%s', 'origin/main'), 'deploy(staging): aaaa', 'pushed to main');
  t.deepEqual(repo.git('show', '--name-only', '--format=', 'HEAD').split('\n'), ['environments/staging/kustomization.yaml'], 'the commit changes staging alone');
  t.is(repo.imageOf('staging'), first);

  t.is(deploy(repo, 'production', first, 'deploy(production): v1.0.0').committed.code, 0);
  const afterFirst = repo.git('rev-parse', 'HEAD');
  t.is(deploy(repo, 'production', second, 'deploy(production): v1.1.0').committed.code, 0);
  t.is(repo.imageOf('production'), second);
  t.is(repo.imageOf('staging'), first, 'promoting production leaves staging alone');

  // GitOps rollback: revert the promotion; Argo CD renders the reverted main.
  repo.git('revert', '--no-edit', 'HEAD');
  t.is(repo.imageOf('production'), first);
  t.is(repo.imageOf('staging'), first);

  // By hand: the overlay at an older commit names that commit's image.
  repo.git('checkout', '--quiet', afterFirst);
  t.is(repo.imageOf('production'), first);
});

test('the deploy commit rebases onto what was pushed meanwhile, and commits nothing when nothing changed', (t) => {
  const repo = repository(t);
  // Someone pushes to main while the job runs.
  const other = path.join(path.dirname(repo.dir), 'other');
  execFileSync('git', ['clone', '--quiet', repo.origin, other]);
  execFileSync('git', ['commit', '--quiet', '--allow-empty', '-m', 'a commit of someone else'], { cwd: other, env: { ...process.env, ...IDENTITY } });
  execFileSync('git', ['push', '--quiet', 'origin', 'main'], { cwd: other });

  const image = `${name}@${digest('c')}`;
  const { committed } = deploy(repo, 'staging', image, 'deploy(staging): cccc');
  t.is(committed.code, 0, committed.stderr);
  t.regex(committed.stderr, /main moved on \(attempt 1\); rebasing onto it/);
  t.deepEqual(repo.git('log', '--format=%s', 'origin/main').split('\n'), ['deploy(staging): cccc', 'a commit of someone else', 'the system']);

  const again = deploy(repo, 'staging', image, 'deploy(staging): cccc');
  t.is(again.promoted.stdout.trim(), `staging already runs ${image}`);
  t.regex(again.committed.stdout, /nothing changed in environments\/staging; nothing to commit/);
  t.is(repo.git('rev-list', '--count', 'origin/main'), '3');

  t.is(repo.run('sh', [commitDeploy, 'staging', 'move staging']).code, 2, 'a subject the pipeline would not know as its own is refused');
});

test('a tag finds the commit main built: itself, or the one before when it sits on a deploy commit', (t) => {
  const repo = repository(t);
  const built = repo.git('rev-parse', 'HEAD');
  t.is(deploy(repo, 'staging', `${name}@${digest('d')}`, `deploy(staging): ${built.slice(0, 12)}`).committed.code, 0);
  const deployCommit = repo.git('rev-parse', 'HEAD');
  t.not(deployCommit, built);
  const find = (ref: string) => repo.run('sh', [builtCommit, ref]).stdout.trim();
  t.is(find(deployCommit), built, 'a tag on the deploy commit means the commit it deployed');
  t.is(find(built), built);
  repo.git('commit', '--quiet', '--allow-empty', '-m', 'the next change');
  t.is(find('HEAD'), repo.git('rev-parse', 'HEAD'), 'main has moved on past the built commit');
});

test('npm run promote refuses what is not an image pinned by digest, or an environment that is not there, changing nothing', (t) => {
  const repo = repository(t);
  const before = readFileSync(path.join(repo.dir, 'environments', 'staging', 'kustomization.yaml'), 'utf8');
  for (const [args, message] of [
    [['staging', `${name}:latest`], /is not an image pinned by digest/],
    [['staging', `GHCR.io/Me/functions@${digest('e')}`], /is not an image pinned by digest/],
    [['stage', `${name}@${digest('e')}`], /no environment "stage": environments\/stage\/kustomization\.yaml not found/],
    [['dev', `${name}@${digest('e')}`], /environments\/dev\/kustomization\.yaml sets no namespace/],
    [['staging'], /^promote: usage: npm run promote -- <environment> <image>@sha256:<digest>/],
  ] as const) {
    const result = repo.run(process.execPath, [promoteScript, ...args]);
    t.is(result.code, 2, args.join(' '));
    t.regex(result.stderr, message);
  }
  t.is(readFileSync(path.join(repo.dir, 'environments', 'staging', 'kustomization.yaml'), 'utf8'), before);
});
