/**
 * The image rehearsed without a container engine (test/helpers/image.ts): the Dockerfile's stages built
 * as it says, then each function run from the last stage's tree as its CMD does, on the image's Node,
 * as its USER, with NODE_ENV and the rest of its ENV, the env, Secrets (stand-ins) and volumes its Knative
 * Service gives it, and every filesystem read-only. pingpong counts in a real Postgres (applying the
 * migrations itself), log-output reads its ConfigMap's dotenv file where the manifest mounts it,
 * image-proxy searches the stand-in Pixabay, and each answers a scrape. A missing file, a dev dependency,
 * a write to the filesystem or a difference in the image's Node shows up as a problem naming the function
 * and what it said.
 */
import { spawnSync } from 'node:child_process';
import { appendFileSync, cpSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseEnv } from 'node:util';
import test, { type ExecutionContext } from 'ava';
import { projectRoot } from '../../functions/shared/config';
import { migrationsDir } from '../../functions/shared/db';
import { startFunction, type RunningFunction } from '../helpers/functions';
import { ImageBuilder, imageScratch, podOf, spawnAsImage, type ImageTree, type StandIns } from '../helpers/image';
import { imageNode, type ImageNode } from '../helpers/image-node';
import { kubectlProblem, loadManifests } from '../helpers/manifests';
import { fakePixabay } from '../helpers/pixabay';
import { startTestPostgres } from '../helpers/postgres';
import { testUnless } from '../helpers/tools';

const dockerfile = readFileSync(path.join(projectRoot, 'Dockerfile'), 'utf8');
const manifests = loadManifests();
const scratch = imageScratch();

let node: ImageNode | undefined;
const [problem, needs] = ((): [string | undefined, string] => {
  if (process.getuid?.() !== 0) return ["root, for a mount namespace and running as the image's user: run the tests as root (CI does)", 'root'];
  const tools = ['unshare', 'setpriv'].filter((tool) => spawnSync(tool, ['--version']).error);
  if (tools.length) return [`${tools.join(', ')} not found: apt-get install -y util-linux`, tools.join(', ')];
  // The pods' env and volumes come from the rendered kustomizations.
  const kubectl = kubectlProblem();
  if (kubectl) return [kubectl, 'kubectl'];
  try {
    node = imageNode();
    return [undefined, ''];
  } catch (error) {
    return [`the image's Node: ${(error as Error).message}`, "the image's Node"];
  }
})();
const rehearsal = testUnless(problem, needs, { serial: true });
const builder = node && new ImageBuilder(scratch.dir, node.path);

// Building the stages runs `npm ci` twice and `npm run build`: minutes on a busy machine.
const BUILD_MS = 10 * 60_000;

rehearsal('every function runs from the image as built, on the image\'s Node, as its user, on a read-only filesystem', async (t) => {
  t.timeout(BUILD_MS);
  const image = await builder!.build(dockerfile);
  t.log(`${node!.version}, uid ${image.user.uid}, workdir ${image.workdir}, ${JSON.stringify(image.env)}, command ${image.command.join(' ')}`);
  t.deepEqual(await rehearse(t, image, ['pingpong', 'log-output', 'image-proxy']), []);
  if (image.env.NODE_COMPILE_CACHE) t.deepEqual(await compileCacheProblems(t, image), []);
});

rehearsal('a file the code needs left out of the last stage fails it, saying which', async (t) => {
  t.timeout(BUILD_MS);
  const withoutMigrations = dockerfile.replace(/^COPY db\/migrations .*$/m, '');
  t.not(withoutMigrations, dockerfile);
  const problems = await rehearse(t, await builder!.build(withoutMigrations), ['pingpong']);
  t.log(problems.join('\n'));
  t.true(problems.some((problem) => /^pingpong: GET \/pingpong answered 503 .*ENOENT.*db\/migrations/.test(problem)), problems.join('\n'));
});

rehearsal('code that writes to its own directory, or loads a dev dependency, fails it, saying why', async (t) => {
  t.timeout(BUILD_MS);
  const image = await builder!.build(dockerfile);
  const writing = alter(image, 'writes', "require('node:fs').writeFileSync(require('node:path').join(__dirname, 'started.json'), '{}');");
  const writes = await rehearse(t, writing, ['image-proxy']);
  t.log(writes.join('\n'));
  t.true(writes.some((problem) => /^image-proxy: did not start: .*EROFS: read-only file system, open '.*\/dist\/functions\/started\.json'/s.test(problem)), writes.join('\n'));

  const devDependency = alter(image, 'dev-dependency', "require('yaml');");
  const loads = await rehearse(t, devDependency, ['image-proxy']);
  t.log(loads.join('\n'));
  t.true(loads.some((problem) => /^image-proxy: did not start: .*Cannot find module 'yaml'/s.test(problem)), loads.join('\n'));
});

test.after.always(() => scratch.remove());

/** A copy of the image whose entry also runs `code`. */
function alter(image: ImageTree, name: string, code: string): ImageTree {
  const root = `${image.root}-${name}`;
  cpSync(image.root, root, { recursive: true, verbatimSymlinks: true });
  appendFileSync(path.join(root, image.workdir, 'dist', 'functions', 'index.cjs'), `\n${code}\n`);
  return { ...image, root };
}

/**
 * Runs `targets` from `image` in order (log-output asks the pingpong started before it), checks what a
 * user would see of each, stops each as Kubernetes would (SIGTERM), and returns every problem, one line each.
 */
async function rehearse(t: ExecutionContext, image: ImageTree, targets: string[]): Promise<string[]> {
  const problems: string[] = [];
  const db = await startTestPostgres(t);
  const pixabay = await fakePixabay(t);
  const database = new URL(db.url);
  const running: Record<string, RunningFunction> = {};
  for (const target of targets) {
    // What lives in the cluster, replaced by what runs here: the sealed Secrets, Postgres's and pingpong's hosts, Pixabay.
    const standIns: StandIns = {
      secrets: {
        'postgres-credentials': { PGUSER: database.username, PGPASSWORD: decodeURIComponent(database.password), PGDATABASE: database.pathname.slice(1) },
        'pixabay-apikey': { API_KEY: pixabay.apiKey },
      },
      env: {
        PGHOST: database.hostname,
        PGPORT: database.port,
        PINGPONG_URL: running.pingpong?.url ?? 'http://127.0.0.1:9',
        PIXABAY_API_URL: pixabay.env.PIXABAY_API_URL,
        PIXABAY_IMAGE_HOSTS: pixabay.env.PIXABAY_IMAGE_HOSTS,
      },
    };
    const pod = podOf(manifests, target, standIns, scratch.dir);
    const say = (problem: string) => problems.push(`${target}: ${problem}`);
    let fn: RunningFunction;
    try {
      fn = await startFunction(t, target, {}, { spawn: (_target, port) => spawnAsImage(image, node!.path, pod, port, scratch.dir) });
    } catch (error) {
      say(`did not start: ${withoutStacks((error as Error).message.replace(/^.*?it printed:\n/s, ''))}`);
      continue;
    }
    running[target] = fn;
    await checks[target]!(fn, say, { db, pod });
    // The process metrics load at the first scrape, and read /proc: that too as in the image.
    const metrics = await get(fn, '/metrics');
    const missing = ['http_server_request_duration_seconds_count', 'process_resident_memory_bytes'].filter((name) => !metrics.text.includes(`\n${name}`));
    if (metrics.status !== 200 || missing.length) say(`GET /metrics answered ${metrics.status} without ${missing.join(', ')}: ${JSON.stringify(metrics.text.slice(0, 200))}`);
  }
  // Stopped as Kubernetes stops a pod, the last started first (log-output asks pingpong until then).
  for (const [target, fn] of Object.entries(running).reverse()) {
    const code = await fn.stop();
    if (code !== 0) problems.push(`${target}: exited ${code} on SIGTERM, not 0`);
    // Anything it said about a failure: EROFS, EACCES, a missing module, a warning from Node.
    const failures = fn.output().split('\n').filter((line) => /\bE[A-Z]{3,}\b/.test(line) || /error|warning|cannot|denied/i.test(line));
    problems.push(...failures.map((line) => `${target}: said: ${line}`));
  }
  return problems;
}

/**
 * The compile cache the image's build filled is the one a start reads, from the read-only tree: Node's own
 * debug output (NODE_DEBUG_NATIVE=COMPILE_CACHE) says whether it accepted the entries for the framework's
 * entry and ours.
 */
async function compileCacheProblems(t: ExecutionContext, image: ImageTree): Promise<string[]> {
  const pod = podOf(manifests, 'image-proxy', { secrets: { 'pixabay-apikey': { API_KEY: 'unused' } }, env: { NODE_DEBUG_NATIVE: 'COMPILE_CACHE' } }, scratch.dir);
  const fn = await startFunction(t, 'image-proxy', {}, { spawn: (_target, port) => spawnAsImage(image, node!.path, pod, port, scratch.dir) });
  await fn.stop();
  const tree = path.join(image.root, image.workdir);
  return [image.command.find((arg) => arg.endsWith('main.js'))!, 'dist/functions/index.cjs']
    .filter((file) => !fn.output().includes(`cache for ${path.join(tree, file)} was accepted`))
    .map((file) => `the compile cache in ${image.env.NODE_COMPILE_CACHE} was not used for ${file}; Node said:\n${fn.output().split('\n').filter((line) => line.includes('[compile cache]')).slice(0, 8).join('\n')}`);
}

type Say = (problem: string) => void;
interface Context {
  db: Awaited<ReturnType<typeof startTestPostgres>>;
  pod: ReturnType<typeof podOf>;
}

const checks: Record<string, (fn: RunningFunction, say: Say, context: Context) => Promise<void>> = {
  async pingpong(fn, say, { db }) {
    for (const n of [0, 1, 2]) await expectText(fn, '/pingpong', `pong ${n}`, say);
    await expectText(fn, '/pongs', '{"pongs":3}', say);
    const files = readdirSync(migrationsDir).filter((name) => name.endsWith('.sql')).sort();
    const applied = await db.sql<{ name: string }[]>`select name from schema_migrations order by name`.catch(() => []);
    if (JSON.stringify(applied.map((row) => row.name)) !== JSON.stringify(files)) say(`applied migrations ${JSON.stringify(applied.map((row) => row.name))}, not ${JSON.stringify(files)}`);
  },

  async 'log-output'(fn, say, { pod }) {
    const configMap = pod.volumes.find((volume) => pod.env.ENV_FILE?.startsWith(`${volume.mountPath}/`));
    if (!configMap || configMap.source === 'emptyDir') return say(`ENV_FILE ${pod.env.ENV_FILE} is on no ConfigMap volume`);
    const { MESSAGE } = parseEnv(readFileSync(path.join(configMap.source, path.relative(configMap.mountPath, pod.env.ENV_FILE!)), 'utf8'));
    const page = await get(fn, '/');
    const lines = page.text.split('\n');
    if (page.status !== 200 || lines[0] !== MESSAGE || !/: [0-9a-f-]{36}\.$/.test(lines[1] ?? '') || lines[2] !== 'Ping / Pongs: 3') {
      say(`GET / answered ${page.status} ${JSON.stringify(page.text)}, not "${MESSAGE}", the stamp line and "Ping / Pongs: 3"`);
    }
  },

  async 'image-proxy'(fn, say) {
    const search = await get(fn, '/api/images?q=red+sky');
    const images = search.status === 200 ? (JSON.parse(search.text) as { images: { id: number; preview: { url: string } }[] }).images : [];
    if (!images.length) return say(`GET /api/images?q=red+sky answered ${search.status} ${JSON.stringify(search.text.slice(0, 200))}, not a list of images`);
    const image = await fetch(`${fn.url}${images[0]!.preview.url}`);
    if (image.status !== 200 || image.headers.get('content-type') !== 'image/png') say(`GET ${images[0]!.preview.url} answered ${image.status} ${image.headers.get('content-type')}`);
  },
};

async function get(fn: RunningFunction, route: string): Promise<{ status: number; text: string }> {
  const response = await fetch(`${fn.url}${route}`);
  return { status: response.status, text: await response.text() };
}

async function expectText(fn: RunningFunction, route: string, expected: string, say: Say): Promise<void> {
  const { status, text } = await get(fn, route);
  if (status !== 200 || text !== expected) say(`GET ${route} answered ${status} ${JSON.stringify(text.trim())}, not ${JSON.stringify(expected)}`);
}

/** A start-up failure in one line: what the process printed, less the stack frames. */
function withoutStacks(text: string): string {
  return text.split('\n').filter((line) => line.trim() && !/^\s+at /.test(line)).join(' | ');
}
