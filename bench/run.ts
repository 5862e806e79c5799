/**
 * `npm run bench`: the system's throughput, latency, cold start, memory and the CPU a metrics scrape
 * costs, each beside the ceilings measured in the same run (the framework's "hello", bare node:http, the
 * database itself, and a naive peer), so the targets are ratios that mean something on a noisy shared
 * machine. Not a test.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createConnection } from 'node:net';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { projectRoot, readInt } from '../functions/shared/config';
import { connect, migrate, readDatabaseConfig } from '../functions/shared/db';
import { spawnFunction, type SpawnOptions } from '../scripts/functions';
import { startLocalPostgres } from '../scripts/local-postgres';
import { imageNode } from '../test/helpers/image-node';
import { startFakePixabay } from '../test/helpers/pixabay';
import { databaseCeiling, have, wrk, type LoadResult } from './load';

const SECONDS = readInt(process.env, 'BENCH_SECONDS', 5, 1, 120);
const COLD_START_TRIALS = readInt(process.env, 'BENCH_COLD_STARTS', 5, 1, 50);
// `BENCH_ONLY=cold-starts`: only the cold-start rows (a minute or two), for working on start-up.
const ONLY = process.env.BENCH_ONLY?.trim() || undefined;
if (ONLY !== undefined && ONLY !== 'cold-starts') throw new Error(`BENCH_ONLY must be "cold-starts" or unset, got "${ONLY}"`);
/** Goals for a cold start against the framework's hello (its quickstart), time and CPU alike; pingpong's first /healthz also connects to Postgres. */
const COLD_START_GOALS: Record<string, number> = { pingpong: 0.85, 'log-output': 0.75, 'image-proxy': 0.75 };
const IDLE_RSS_GOAL_MB = 64;
// The machine is shared and noisy: every run is repeated, interleaved with the others, and the median kept.
const ROUNDS = readInt(process.env, 'BENCH_ROUNDS', 3, 1, 20);
const SCRAPES = readInt(process.env, 'BENCH_SCRAPES', 200, 10, 10_000);
const CONNECTIONS = [1, 32, 128];
const INCREMENT = 'update pings set n = n + 1 returning n';

interface Row extends LoadResult {
  name: string;
  connections: number;
  processes: number;
  /** CPU time the serving processes spent per answer (user + system): steadier than req/s on a shared machine. */
  cpuUsPerRequest?: number;
  check?: string;
}

interface Server {
  name: string;
  url: string;
  child: ChildProcess;
  peakRssMb: number;
}

const servers: Server[] = [];
/** What to remove when the bench ends, however it ends. */
const cleanups: (() => void)[] = [];
let pixabay: Awaited<ReturnType<typeof startFakePixabay>> | undefined;
let nextPort = 19_100;

async function main(): Promise<void> {
  if (!ONLY && !(await have('wrk'))) throw new Error('wrk is not installed: apt-get install -y wrk (see docs/performance.md)');
  // Installed from the npm registry on first use (test/helpers/image-node.ts); without it the bench fails here, saying why.
  const image = imageNode();
  const own = Number(process.versions.node.split('.')[0]);

  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'bench-pg-'));
  chmodSync(dataDir, 0o755); // as root the server runs as the postgres user
  const db = await startLocalPostgres(dataDir, nextPort++, ['-c', 'max_connections=300']);
  const sql = connect(readDatabaseConfig({ DATABASE_URL: db.url, DB_POOL_SIZE: '2' }), 'bench');
  try {
    await migrate(sql);
    const readCount = async () => Number((await sql<[{ n: string }]>`select n from pings`)[0].n);
    // wrk abandons the requests in flight when its time is up; the servers still finish them, so wait
    // until the count stops moving before reading it.
    const count = async () => {
      for (let last = await readCount(); ; ) {
        await new Promise((resolve) => setTimeout(resolve, 300));
        const now = await readCount();
        if (now === last) return now;
        last = now;
      }
    };
    const dbEnv = { DATABASE_URL: db.url };

    const logOutputEnv = { ENV_FILE: path.join(projectRoot, 'knative', 'log-output.env') };
    const pingpongs = [await start('pingpong', dbEnv)];
    pixabay = await startFakePixabay();
    const rows: Row[] = [];
    /**
     * The load runs, every one repeated in ROUNDS interleaved rounds, then the cost of a scrape (into
     * `scrapes`); resolves with each server's RSS before any load, after a first scrape.
     */
    async function runLoad(): Promise<Record<string, number>> {
      const hello = await start('hello', dbEnv, path.join(projectRoot, 'dist', 'bench', 'hello.js'));
      const bare = await startBare();
      pingpongs.push(await start('pingpong', dbEnv), await start('pingpong', dbEnv));
      const naive = await start('naive-pingpong', dbEnv, path.join(projectRoot, 'dist', 'bench', 'naive-pingpong.js'));
      const logOutput = await start('log-output', { ...logOutputEnv, PINGPONG_URL: pingpongs[0]!.url });
      const imageProxy = await start('image-proxy', pixabay!.env);
      // As Prometheus would: the first scrape starts the process metrics, which then count in memory and CPU.
      for (const server of [...pingpongs, logOutput, imageProxy]) await fetch(`${server.url}/metrics`);
      const idle = Object.fromEntries(servers.map((server) => [server.name, rssMb(server.child.pid!)]));
      const measure = async (name: string, server: Server | Server[], route: string, connections: number, check?: (r: LoadResult) => Promise<string>) => {
        const targets = Array.isArray(server) ? server : [server];
        const sampler = sampleRss(targets);
        const cpuBefore = targets.map((s) => cpuMs(s.child.pid!));
        const result = await wrk(targets.map((s) => s.url + route), connections, SECONDS);
        const cpuUsed = targets.reduce((sum, s, i) => sum + cpuMs(s.child.pid!) - cpuBefore[i]!, 0);
        clearInterval(sampler);
        const cpuUsPerRequest = (cpuUsed * 1000) / result.requests;
        const row: Row = { name, connections, processes: targets.length, ...result, cpuUsPerRequest, check: check ? await check(result) : undefined };
        delete row.pongs;
        rows.push(row);
        console.error(`  ${name} c=${connections} x${targets.length}: ${Math.round(result.requestsPerSecond)} req/s${row.check ? `, ${row.check}` : ''}`);
        return row;
      };

      console.error(`${ROUNDS} rounds; each run: ${SECONDS} s of load from wrk. A row's figures are the median round's.`);
      for (let round = 1; round <= ROUNDS; round++) {
        console.error(`Round ${round}:`);
        for (const c of CONNECTIONS) await measure('framework hello', hello, '/', c);
        for (const c of CONNECTIONS) await measure('bare node:http', bare, '/', c);

        for (const instances of [pingpongs.slice(0, 1), pingpongs]) {
          for (const c of CONNECTIONS) {
            const before = await count();
            await measure('pingpong /pingpong', instances, '/pingpong', c, async (result) => {
              const after = await count();
              return checkPongs(result, before, after, c, await exactBurst(instances.map((s) => `${s.url}/pingpong`), c, count));
            });
          }
        }

        for (const c of CONNECTIONS) {
          const before = await count();
          const result = await databaseCeiling(db.url, c, SECONDS, INCREMENT);
          const after = await count();
          rows.push({ name: `database (${result.tool})`, connections: c, processes: 1, ...result, check: after - before === result.requests ? 'ok' : `count moved ${after - before} for ${result.requests}` });
          console.error(`  database c=${c}: ${Math.round(result.requestsPerSecond)} tx/s`);
        }

        for (const c of CONNECTIONS) {
          const before = await count();
          await measure('naive peer', naive, '/', c, async (result) => {
            const after = await count();
            const answered = result.pongs!.length;
            const repeated = answered - new Set(result.pongs).size;
            return `${Math.max(0, answered - (after - before))} lost updates, ${repeated} repeated numbers`;
          });
        }

        await measure('pingpong /pongs', pingpongs[0]!, '/pongs', 128);
        await measure('log-output /', logOutput, '/', 128);
        await fetch(`${imageProxy.url}/api/images?q=red+sky`); // fill the cache: the run measures cached searches
        const upstreamBefore = pixabay!.calls.api;
        await measure('image-proxy /api/images (cached)', imageProxy, '/api/images?q=red+sky', 128, async (result) =>
          `${pixabay!.calls.api - upstreamBefore} upstream requests for ${result.requests} answers`);
      }

      console.error(`Scrapes: ${SCRAPES} GET /metrics one after another, after the load above.`);
      for (const server of [pingpongs[0]!, logOutput, imageProxy]) scrapes[server.name] = await scrapeCost(server);
      return idle;
    }
    const scrapes: Record<string, ScrapeCost> = {};
    const idleRssMb = ONLY ? {} : await runLoad();

    const coldTargets: ColdTarget[] = [
      ['hello', {}, path.join(projectRoot, 'dist', 'bench', 'hello.js')],
      ['pingpong', dbEnv],
      ['log-output', { ...logOutputEnv, PINGPONG_URL: pingpongs[0]!.url }],
      ['image-proxy', pixabay.env],
    ];
    // The image's Node as the image runs it, with the compile cache its build fills, and without it.
    const imageLabel = `Node ${image.version.slice(1)}`;
    const nodes: NodeRun[] = [
      ...(own !== image.major ? [{ label: `Node ${process.versions.node}`, path: process.execPath }] : []),
      { label: `${imageLabel}, no compile cache`, path: image.path },
      { label: `${imageLabel} as in the image`, path: image.path, compileCache: await fillCompileCache(image.path, coldTargets.slice(1)) },
    ];
    console.error(`Cold starts: spawn to first 200 on /healthz, ${COLD_START_TRIALS} of each, interleaved.`);
    const coldStarts = await measureColdStarts(nodes, coldTargets);

    const peakRssMb = Object.fromEntries(servers.map((server) => [server.name, server.peakRssMb]));
    const report = summarise(medianRounds(rows), coldStarts, idleRssMb, peakRssMb, scrapes);
    console.log(report.text);
    writeFileSync(path.join(projectRoot, 'bench', 'results.json'), JSON.stringify({ machine: machine(), seconds: SECONDS, rows: medianRounds(rows), allRounds: rows, coldStartTrials: COLD_START_TRIALS, coldStarts, idleRssMb, peakRssMb, scrapes, targets: report.targets }, null, 2) + '\n');
    console.error('Wrote bench/results.json');
  } finally {
    for (const server of servers) server.child.kill('SIGKILL');
    await pixabay?.close();
    await sql.end({ timeout: 1 });
    await db.stop();
    rmSync(dataDir, { recursive: true, force: true });
    for (const cleanup of cleanups) cleanup();
  }
}

/** Starts a function through functions-framework and waits for its first 200. */
async function start(target: string, env: NodeJS.ProcessEnv, source?: string): Promise<Server> {
  const port = nextPort++;
  const child = spawnFunction(target, port, env, { source });
  child.stderr!.on('data', () => undefined);
  child.stdout!.on('data', () => undefined);
  const server = { name: serverName(target), url: `http://127.0.0.1:${port}`, child, peakRssMb: 0 };
  servers.push(server);
  await firstOk(`${server.url}/healthz`, 15_000);
  return server;
}

async function startBare(): Promise<Server> {
  const port = nextPort++;
  const child = spawn(process.execPath, [path.join(projectRoot, 'dist', 'bench', 'bare-http.js')], { env: { ...process.env, PORT: String(port) }, stdio: 'ignore' });
  const server = { name: 'bare node:http', url: `http://127.0.0.1:${port}`, child, peakRssMb: 0 };
  servers.push(server);
  await firstOk(server.url, 15_000);
  return server;
}

function serverName(target: string): string {
  const same = servers.filter((server) => server.name.startsWith(target)).length;
  return same ? `${target} #${same + 1}` : target;
}

/** Polls every 5 ms until `url` answers 200; resolves with the milliseconds it took. */
async function firstOk(url: string, ms: number): Promise<number> {
  const started = performance.now();
  while (performance.now() - started < ms) {
    const status = await fetch(url).then((r) => r.status, () => 0);
    if (status === 200) return performance.now() - started;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error(`${url} did not answer 200 within ${ms} ms`);
}

/** A Node binary and how the functions run under it. */
interface NodeRun {
  label: string;
  path: string;
  /** A NODE_COMPILE_CACHE filled as the image's build fills it (not for hello: the quickstart has none). */
  compileCache?: string;
}

/** A function to start cold: its target, its env, its source (our compiled entry unless said). */
type ColdTarget = [string, NodeJS.ProcessEnv, string?];

interface ColdStart {
  node: string;
  /** The Node binary: a function is compared with the hello started by the same one. */
  binary: string;
  target: string;
  /** Medians over the trials: spawn to the first 200 on /healthz, the CPU the process used until then, its RSS then and 1 s later. */
  ms: number;
  cpuMs: number;
  rssMb: number;
  idleRssMb: number;
}

/**
 * Every target under every Node, COLD_START_TRIALS times, interleaved (each trial starts each once, in
 * an order rotated every trial), so that a busy spell on the shared machine falls on all of them alike.
 */
async function measureColdStarts(nodes: NodeRun[], targets: ColdTarget[]): Promise<ColdStart[]> {
  type Sample = Omit<ColdStart, 'node' | 'binary' | 'target'>;
  const runs = nodes.flatMap((node) =>
    targets
      .filter(([target]) => !(node.compileCache && target === 'hello'))
      .map(([target, env, source]) => ({ node, target, source, env: node.compileCache ? { ...env, NODE_COMPILE_CACHE: node.compileCache } : env, samples: [] as Sample[] })),
  );
  for (let trial = 0; trial < COLD_START_TRIALS; trial++) {
    for (let i = 0; i < runs.length; i++) {
      const run = runs[(i + trial) % runs.length]!;
      run.samples.push(await coldStart(run.target, run.env, { source: run.source, node: run.node.path }));
    }
  }
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
  return runs.map(({ node, target, samples }) => {
    const medians = Object.fromEntries((['ms', 'cpuMs', 'rssMb', 'idleRssMb'] as const).map((key) => [key, median(samples.map((sample) => sample[key]))])) as Sample;
    const result: ColdStart = { node: node.label, binary: node.path, target, ...medians };
    console.error(`  ${node.label} ${target}: ${Math.round(result.ms)} ms, ${Math.round(result.cpuMs)} ms CPU, ${result.rssMb} MB then, ${result.idleRssMb} MB idle`);
    return result;
  });
}

/**
 * One start: spawn, poll /healthz every 5 ms until a 200, read the process's CPU and RSS; then scrape
 * /metrics once, as Prometheus soon would (the process metrics start then), wait 1 s, read RSS again; kill.
 */
async function coldStart(target: string, env: NodeJS.ProcessEnv, options: SpawnOptions): Promise<Omit<ColdStart, 'node' | 'binary' | 'target'>> {
  const port = nextPort++;
  const started = performance.now();
  const child = spawnFunction(target, port, env, options);
  child.stdout!.on('data', () => undefined);
  child.stderr!.on('data', () => undefined);
  const exited = new Promise((resolve) => child.once('exit', resolve));
  try {
    await firstOk(`http://127.0.0.1:${port}/healthz`, 15_000);
    const ms = performance.now() - started;
    const cpu = preciseCpuMs(child.pid!);
    const rss = rssMb(child.pid!);
    await fetch(`http://127.0.0.1:${port}/metrics`).then((response) => response.arrayBuffer());
    await new Promise((resolve) => setTimeout(resolve, 1000));
    return { ms, cpuMs: cpu, rssMb: rss, idleRssMb: rssMb(child.pid!) };
  } finally {
    child.kill('SIGKILL');
    await exited;
  }
}

/**
 * A compile cache as the Dockerfile fills it: each function started as CMD starts it, stopped (SIGTERM)
 * after it listens, before any request, when Node writes the cache. Resolves with the folder.
 */
async function fillCompileCache(node: string, targets: ColdTarget[]): Promise<string> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-compile-cache-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  for (const [target, env, source] of targets) {
    const port = nextPort++;
    const child = spawnFunction(target, port, { ...env, NODE_COMPILE_CACHE: dir }, { source, node });
    child.stdout!.on('data', () => undefined);
    child.stderr!.on('data', () => undefined);
    const exited = new Promise((resolve) => child.once('exit', resolve));
    await listening(port, 15_000);
    // The framework takes over SIGTERM (and exits, writing the cache) only once its listen callback has run.
    await new Promise((resolve) => setTimeout(resolve, 300));
    child.kill('SIGTERM');
    await exited;
  }
  const entries = readdirSync(dir, { recursive: true }).length;
  if (entries < 10) throw new Error(`the compile cache in ${dir} holds ${entries} entries: did ${node} not write it?`);
  return dir;
}

/** Resolves once something accepts TCP connections on `port` (no request is made). */
async function listening(port: number, ms: number): Promise<void> {
  const giveUpAt = performance.now() + ms;
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = createConnection(port, '127.0.0.1', () => resolve(true)).on('error', () => resolve(false));
      socket.setTimeout(1000, () => socket.destroy());
      socket.once('connect', () => socket.end());
    });
    if (open) return;
    if (performance.now() > giveUpAt) throw new Error(`nothing listened on port ${port} within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** CPU time of a process so far in ms, to the microsecond: the sum over its threads of /proc's schedstat (run time in ns). */
function preciseCpuMs(pid: number): number {
  const threads = readdirSync(`/proc/${pid}/task`);
  return threads.reduce((sum, tid) => sum + Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]) / 1e6, 0);
}

interface ScrapeCost {
  /** CPU time the function's process spent per scrape (user + system). */
  cpuUsPerScrape: number;
  /** Wall time of one scrape, the median. */
  p50Ms: number;
  bytes: number;
  samples: number;
}

/** `SCRAPES` scrapes of the function, one after another: its CPU time over them, divided by their number. */
async function scrapeCost(server: Server): Promise<ScrapeCost> {
  const cpuBefore = cpuMs(server.child.pid!);
  const times: number[] = [];
  let text = '';
  for (let i = 0; i < SCRAPES; i++) {
    const started = performance.now();
    text = await (await fetch(`${server.url}/metrics`)).text();
    times.push(performance.now() - started);
  }
  const cpuUsPerScrape = ((cpuMs(server.child.pid!) - cpuBefore) * 1000) / SCRAPES;
  const samples = text.split('\n').filter((line) => line && !line.startsWith('#')).length;
  const cost = { cpuUsPerScrape, p50Ms: times.sort((a, b) => a - b)[Math.floor(times.length / 2)]!, bytes: Buffer.byteLength(text), samples };
  console.error(`  ${server.name}: ${Math.round(cpuUsPerScrape)} µs CPU per scrape, ${cost.bytes} bytes, ${samples} samples`);
  return cost;
}

/** User + system CPU time of a process so far, in ms (from /proc, in clock ticks of 10 ms). */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

function rssMb(pid: number): number {
  const kb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
  return Math.round(kb / 1024);
}

function sampleRss(targets: Server[]): NodeJS.Timeout {
  return setInterval(() => {
    for (const server of targets) server.peakRssMb = Math.max(server.peakRssMb, rssMb(server.child.pid!));
  }, 100);
}

/**
 * After wrk: the numbers it received are distinct and within the count's move; the ones it did not
 * read are at most its connections (wrk drops the answers in flight when its time is up). Then an
 * exact check that reads every answer: `burst` must hand out exactly the numbers the count moved by.
 */
function checkPongs(result: LoadResult, before: number, after: number, connections: number, burst: string): string {
  const pongs = result.pongs!;
  const repeated = pongs.length - new Set(pongs).size;
  const outside = pongs.filter((n) => n < before || n >= after).length;
  const unread = after - before - pongs.length;
  const problems = [
    repeated && `${repeated} repeated`,
    outside && `${outside} outside [${before}, ${after})`,
    (unread < 0 || unread > connections) && `${unread} unread of ${connections} connections`,
    result.failures && `${result.failures} failures`,
    burst !== 'exact' && burst,
  ].filter(Boolean);
  return problems.length ? `FAILED: ${problems.join(', ')}` : `ok: ${pongs.length} distinct, 0 lost, 0 repeated`;
}

/** Sends 2000 pings at `connections` concurrency, reads every answer, compares with the count. */
async function exactBurst(urls: string[], connections: number, count: () => Promise<number>): Promise<string> {
  const before = await count();
  const total = 2000;
  const numbers: number[] = [];
  let sent = 0;
  await Promise.all(
    Array.from({ length: connections }, async (_, worker) => {
      while (sent < total) {
        sent++;
        const body = await (await fetch(urls[worker % urls.length]!)).text();
        numbers.push(Number(/^pong (\d+)$/.exec(body)?.[1] ?? NaN));
      }
    }),
  );
  const after = await count();
  const sorted = numbers.sort((a, b) => a - b);
  const exact = after - before === total && sorted.every((n, i) => n === before + i);
  return exact ? 'exact' : `burst of ${total}: count moved ${after - before}, numbers not exactly [${before}, ${before + total})`;
}

/** One row per run: the round with the median req/s, and a failed check from any round. */
function medianRounds(rows: Row[]): Row[] {
  const runs = new Map<string, Row[]>();
  for (const row of rows) {
    const key = `${row.name}|${row.connections}|${row.processes}`;
    runs.set(key, [...(runs.get(key) ?? []), row]);
  }
  return [...runs.values()].map((rounds) => {
    const median = [...rounds].sort((a, b) => a.requestsPerSecond - b.requestsPerSecond)[Math.floor(rounds.length / 2)]!;
    const failed = rounds.find((row) => row.check?.startsWith('FAILED'));
    return { ...median, check: failed?.check ?? median.check };
  });
}

interface Target {
  what: string;
  ratio: number;
  goal: string;
  met: boolean;
}

function summarise(rows: Row[], coldStarts: ColdStart[], idleRssMb: Record<string, number>, peakRssMb: Record<string, number>, scrapes: Record<string, ScrapeCost>) {
  const rps = (name: string, connections: number, processes = 1) =>
    rows.find((r) => r.name === name && r.connections === connections && r.processes === processes)!.requestsPerSecond;
  const targets: Target[] = [];
  if (rows.length) {
    const hello128 = rps('framework hello', 128);
    targets.push(
      { what: 'pingpong x1 @128 / framework hello @128', ratio: rps('pingpong /pingpong', 128) / hello128, goal: '>= 0.9', met: false },
      { what: 'pingpong x3 @128 / framework hello @128', ratio: rps('pingpong /pingpong', 128, 3) / hello128, goal: '>= 0.9', met: false },
      { what: 'pingpong x1 @128 / naive peer @128', ratio: rps('pingpong /pingpong', 128) / rps('naive peer', 128), goal: '>= 2', met: false },
      { what: 'log-output / @128 / framework hello @128', ratio: rps('log-output /', 128) / hello128, goal: '>= 0.4', met: false },
      { what: 'image-proxy cached /api/images @128 / framework hello @128', ratio: rps('image-proxy /api/images (cached)', 128) / hello128, goal: '>= 0.8', met: false },
    );
  }
  const hello = (binary: string) => coldStarts.find((c) => c.binary === binary && c.target === 'hello')!;
  for (const start of coldStarts.filter((c) => c.target !== 'hello')) {
    const goal = `<= ${COLD_START_GOALS[start.target]}`;
    targets.push(
      { what: `cold start ${start.target} / framework hello, ${start.node}: time`, ratio: start.ms / hello(start.binary).ms, goal, met: false },
      { what: `cold start ${start.target} / framework hello, ${start.node}: CPU`, ratio: start.cpuMs / hello(start.binary).cpuMs, goal, met: false },
    );
  }
  for (const target of targets) {
    const [op, value] = target.goal.split(' ') as ['>=' | '<=', string];
    target.met = op === '>=' ? target.ratio >= Number(value) : target.ratio <= Number(value);
  }
  const rssGoals = coldStarts
    .filter((c) => c.target !== 'hello')
    .map((c) => ({ what: `idle RSS ${c.target}, ${c.node}`, mb: c.idleRssMb, met: c.idleRssMb <= IDLE_RSS_GOAL_MB }));
  const fmt = (n: number | null | undefined, digits = 1) => (n === null || n === undefined ? '-' : n.toFixed(digits));
  const lines = [
    ...(rows.length
      ? [
          '| run | conns | procs | req/s | p50 ms | p99 ms | CPU µs/req | check |',
          '| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
          ...rows.map((r) => `| ${r.name} | ${r.connections} | ${r.processes} | ${Math.round(r.requestsPerSecond)} | ${r.meanMs !== undefined ? `${fmt(r.meanMs)} (mean)` : fmt(r.p50Ms)} | ${fmt(r.p99Ms)} | ${r.cpuUsPerRequest === undefined ? '-' : Math.round(r.cpuUsPerRequest)} | ${r.check ?? ''} |`),
          '',
        ]
      : []),
    `| cold start (median of ${COLD_START_TRIALS}) | Node | ms to first 200 | CPU ms until then | RSS MB then | idle RSS MB (1 s later) |`,
    '| --- | --- | ---: | ---: | ---: | ---: |',
    ...coldStarts.map((c) => `| ${c.target} | ${c.node} | ${Math.round(c.ms)} | ${Math.round(c.cpuMs)} | ${c.rssMb} | ${c.idleRssMb} |`),
    '',
    ...(rows.length
      ? [
          '| scrape (GET /metrics, after the load) | CPU µs per scrape | p50 ms | bytes | samples |',
          '| --- | ---: | ---: | ---: | ---: |',
          ...Object.entries(scrapes).map(([name, cost]) => `| ${name} | ${Math.round(cost.cpuUsPerScrape)} | ${fmt(cost.p50Ms)} | ${cost.bytes} | ${cost.samples} |`),
          '',
          '| memory | idle RSS MB (after a first scrape) | peak RSS under load MB |',
          '| --- | ---: | ---: |',
          ...Object.keys(idleRssMb).map((name) => `| ${name} | ${idleRssMb[name]} | ${peakRssMb[name] || '-'} |`),
          '',
        ]
      : []),
    '| target | ratio | goal | met |',
    '| --- | ---: | --- | --- |',
    ...targets.map((t) => `| ${t.what} | ${t.ratio.toFixed(2)} | ${t.goal} | ${t.met ? 'yes' : 'NO'} |`),
    ...rssGoals.map((g) => `| ${g.what} | ${g.mb} MB | <= ${IDLE_RSS_GOAL_MB} MB | ${g.met ? 'yes' : 'NO'} |`),
  ];
  return { text: lines.join('\n'), targets: [...targets, ...rssGoals.map((g) => ({ what: g.what, ratio: g.mb, goal: `<= ${IDLE_RSS_GOAL_MB} MB`, met: g.met }))] };
}

function machine() {
  return { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, memoryGb: Math.round(os.totalmem() / 2 ** 30), node: process.version, os: `${os.type()} ${os.release()}`, date: new Date().toISOString() };
}

main().catch((error) => {
  console.error(`bench failed: ${(error as Error).message}`);
  for (const server of servers) server.child.kill('SIGKILL');
  process.exit(1);
});
