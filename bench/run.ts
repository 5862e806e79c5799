/**
 * `npm run bench`: the system's throughput, latency, cold start, memory and the CPU a metrics scrape
 * costs, each beside the ceilings measured in the same run (the framework's "hello", bare node:http, the
 * database itself, and a naive peer), so the targets are ratios that mean something on a noisy shared
 * machine. Not a test.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { projectRoot, readInt } from '../functions/shared/config';
import { connect, migrate, readDatabaseConfig } from '../functions/shared/db';
import { spawnFunction } from '../scripts/functions';
import { startLocalPostgres } from '../scripts/local-postgres';
import { startFakePixabay } from '../test/helpers/pixabay';
import { databaseCeiling, have, wrk, type LoadResult } from './load';

const SECONDS = readInt(process.env, 'BENCH_SECONDS', 5, 1, 120);
const COLD_START_TRIALS = readInt(process.env, 'BENCH_COLD_STARTS', 5, 1, 50);
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
let pixabay: Awaited<ReturnType<typeof startFakePixabay>> | undefined;
let nextPort = 19_100;

async function main(): Promise<void> {
  if (!(await have('wrk'))) throw new Error('wrk is not installed: apt-get install -y wrk (see docs/performance.md)');

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

    const hello = await start('hello', dbEnv, path.join(projectRoot, 'dist', 'bench', 'hello.js'));
    const bare = await startBare();
    const pingpongs = [await start('pingpong', dbEnv), await start('pingpong', dbEnv), await start('pingpong', dbEnv)];
    const naive = await start('naive-pingpong', dbEnv, path.join(projectRoot, 'dist', 'bench', 'naive-pingpong.js'));
    const logOutput = await start('log-output', { PINGPONG_URL: pingpongs[0]!.url, ENV_FILE: path.join(projectRoot, 'knative', 'log-output.env') });
    pixabay = await startFakePixabay();
    const imageProxy = await start('image-proxy', pixabay.env);
    const functions = [...pingpongs, logOutput, imageProxy];
    // As Prometheus would: the first scrape starts the process metrics, which then count in memory and CPU.
    for (const server of functions) await fetch(`${server.url}/metrics`);
    const idleRssMb = Object.fromEntries(servers.map((server) => [server.name, rssMb(server.child.pid!)]));

    const rows: Row[] = [];
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
      const upstreamBefore = pixabay.calls.api;
      await measure('image-proxy /api/images (cached)', imageProxy, '/api/images?q=red+sky', 128, async (result) =>
        `${pixabay!.calls.api - upstreamBefore} upstream requests for ${result.requests} answers`);
    }

    console.error(`Scrapes: ${SCRAPES} GET /metrics one after another, after the load above.`);
    const scrapes: Record<string, ScrapeCost> = {};
    for (const server of [pingpongs[0]!, logOutput, imageProxy]) scrapes[server.name] = await scrapeCost(server);

    console.error('Cold starts: spawn to first 200 on /healthz.');
    const coldStarts: Record<string, number> = {};
    const coldTargets: [string, NodeJS.ProcessEnv, string?][] = [
      ['hello', {}, path.join(projectRoot, 'dist', 'bench', 'hello.js')],
      ['pingpong', dbEnv],
      ['log-output', { PINGPONG_URL: pingpongs[0]!.url }],
      ['image-proxy', pixabay.env],
    ];
    for (const [name, env, source] of coldTargets) coldStarts[name] = await coldStart(name, env, source);

    const peakRssMb = Object.fromEntries(servers.map((server) => [server.name, server.peakRssMb]));
    const report = summarise(medianRounds(rows), coldStarts, idleRssMb, peakRssMb, scrapes);
    console.log(report.text);
    writeFileSync(path.join(projectRoot, 'bench', 'results.json'), JSON.stringify({ machine: machine(), seconds: SECONDS, rows: medianRounds(rows), allRounds: rows, coldStartsMs: coldStarts, idleRssMb, peakRssMb, scrapes, targets: report.targets }, null, 2) + '\n');
    console.error('Wrote bench/results.json');
  } finally {
    for (const server of servers) server.child.kill('SIGKILL');
    await pixabay?.close();
    await sql.end({ timeout: 1 });
    await db.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** Starts a function through functions-framework and waits for its first 200. */
async function start(target: string, env: NodeJS.ProcessEnv, source?: string): Promise<Server> {
  const port = nextPort++;
  const child = spawnFunction(target, port, env, source);
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

/** Median over trials of spawn to first 200 on /healthz. */
async function coldStart(target: string, env: NodeJS.ProcessEnv, source?: string): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < COLD_START_TRIALS; i++) {
    const port = nextPort++;
    const started = performance.now();
    const child = spawnFunction(target, port, env, source);
    child.stdout!.on('data', () => undefined);
    child.stderr!.on('data', () => undefined);
    await firstOk(`http://127.0.0.1:${port}/healthz`, 15_000);
    times.push(performance.now() - started);
    await new Promise((resolve) => child.once('exit', resolve).kill('SIGKILL'));
  }
  const median = times.sort((a, b) => a - b)[Math.floor(times.length / 2)]!;
  console.error(`  ${target}: ${Math.round(median)} ms`);
  return median;
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

function summarise(rows: Row[], coldStarts: Record<string, number>, idleRssMb: Record<string, number>, peakRssMb: Record<string, number>, scrapes: Record<string, ScrapeCost>) {
  const rps = (name: string, connections: number, processes = 1) =>
    rows.find((r) => r.name === name && r.connections === connections && r.processes === processes)!.requestsPerSecond;
  const hello128 = rps('framework hello', 128);
  const targets: Target[] = [
    { what: 'pingpong x1 @128 / framework hello @128', ratio: rps('pingpong /pingpong', 128) / hello128, goal: '>= 0.9', met: false },
    { what: 'pingpong x3 @128 / framework hello @128', ratio: rps('pingpong /pingpong', 128, 3) / hello128, goal: '>= 0.9', met: false },
    { what: 'pingpong x1 @128 / naive peer @128', ratio: rps('pingpong /pingpong', 128) / rps('naive peer', 128), goal: '>= 2', met: false },
    { what: 'log-output / @128 / framework hello @128', ratio: rps('log-output /', 128) / hello128, goal: '>= 0.4', met: false },
    { what: 'image-proxy cached /api/images @128 / framework hello @128', ratio: rps('image-proxy /api/images (cached)', 128) / hello128, goal: '>= 0.8', met: false },
    ...Object.entries(coldStarts)
      .filter(([name]) => name !== 'hello')
      .map(([name, ms]) => ({ what: `cold start ${name} / framework hello`, ratio: ms / coldStarts.hello!, goal: '<= 1.2', met: false })),
  ];
  for (const target of targets) {
    const [op, value] = target.goal.split(' ') as ['>=' | '<=', string];
    target.met = op === '>=' ? target.ratio >= Number(value) : target.ratio <= Number(value);
  }
  const fmt = (n: number | null | undefined, digits = 1) => (n === null || n === undefined ? '-' : n.toFixed(digits));
  const lines = [
    '| run | conns | procs | req/s | p50 ms | p99 ms | CPU µs/req | check |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
    ...rows.map((r) => `| ${r.name} | ${r.connections} | ${r.processes} | ${Math.round(r.requestsPerSecond)} | ${r.meanMs !== undefined ? `${fmt(r.meanMs)} (mean)` : fmt(r.p50Ms)} | ${fmt(r.p99Ms)} | ${r.cpuUsPerRequest === undefined ? '-' : Math.round(r.cpuUsPerRequest)} | ${r.check ?? ''} |`),
    '',
    '| cold start (median, spawn to first 200 on /healthz) | ms |',
    '| --- | ---: |',
    ...Object.entries(coldStarts).map(([name, ms]) => `| ${name} | ${Math.round(ms)} |`),
    '',
    '| scrape (GET /metrics, after the load) | CPU µs per scrape | p50 ms | bytes | samples |',
    '| --- | ---: | ---: | ---: | ---: |',
    ...Object.entries(scrapes).map(([name, cost]) => `| ${name} | ${Math.round(cost.cpuUsPerScrape)} | ${fmt(cost.p50Ms)} | ${cost.bytes} | ${cost.samples} |`),
    '',
    '| memory | idle RSS MB | peak RSS under load MB |',
    '| --- | ---: | ---: |',
    ...Object.keys(idleRssMb).map((name) => `| ${name} | ${idleRssMb[name]} | ${peakRssMb[name] || '-'} |`),
    '',
    '| target | ratio | goal | met |',
    '| --- | ---: | --- | --- |',
    ...targets.map((t) => `| ${t.what} | ${t.ratio.toFixed(2)} | ${t.goal} | ${t.met ? 'yes' : 'NO'} |`),
    ...Object.entries(idleRssMb)
      .filter(([name]) => !/hello|bare|naive/.test(name))
      .map(([name, mb]) => `| idle RSS ${name} | ${mb} MB | <= 80 MB | ${mb <= 80 ? 'yes' : 'NO'} |`),
  ];
  return { text: lines.join('\n'), targets };
}

function machine() {
  return { cpus: os.cpus().length, cpu: os.cpus()[0]?.model, memoryGb: Math.round(os.totalmem() / 2 ** 30), node: process.version, os: `${os.type()} ${os.release()}`, date: new Date().toISOString() };
}

main().catch((error) => {
  console.error(`bench failed: ${(error as Error).message}`);
  for (const server of servers) server.child.kill('SIGKILL');
  process.exit(1);
});
