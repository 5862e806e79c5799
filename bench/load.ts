/** Load from separate processes: wrk for HTTP, pgbench (or the postgres client) for the database. */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import postgres from 'postgres';
import { projectRoot } from '../functions/shared/config';

const run = promisify(execFile);

export interface LoadResult {
  requestsPerSecond: number;
  p50Ms: number | null;
  p99Ms: number | null;
  /** pgbench reports a mean, not percentiles. */
  meanMs?: number;
  requests: number;
  /** Answers other than 2xx, plus socket errors. */
  failures: number;
  /** The N of every `pong N` received. */
  pongs?: number[];
}

/** Is `command` on PATH? */
export async function have(command: string): Promise<boolean> {
  return run('sh', ['-c', `command -v ${command}`]).then(() => true, () => false);
}

/**
 * Drives `connections` connections for `seconds` against `urls`, split evenly, one wrk per URL running
 * at the same time, and adds the results up (latency percentiles: the worst of them). Every run reads
 * each body in Lua (to collect `pong N`), so every run costs wrk the same and the ratios stay fair.
 */
export async function wrk(urls: string[], connections: number, seconds: number): Promise<LoadResult> {
  const dir = mkdtempSync(path.join(tmpdir(), 'bench-wrk-'));
  try {
    const shares = urls.map((url, i) => ({ url, connections: Math.floor(connections / urls.length) + (i < connections % urls.length ? 1 : 0) }));
    const results = await Promise.all(
      shares
        .filter((share) => share.connections > 0)
        .map(async (share, i) => {
          const pongFile = path.join(dir, `pongs-${i}`);
          const threads = String(Math.min(2, share.connections));
          const { stdout } = await run(
            'wrk',
            ['-t', threads, '-c', String(share.connections), '-d', `${seconds}s`, '--timeout', '10s', '-s', path.join(projectRoot, 'bench', 'report.lua'), share.url],
            { env: { ...process.env, PONG_FILE: pongFile } },
          );
          const report = JSON.parse(stdout.trim().split('\n').pop()!) as Record<string, number>;
          const pongs = readFileSync(pongFile, 'utf8').split('\n').filter(Boolean).map(Number);
          return { ...report, pongs } as Record<string, number> & { pongs?: number[] };
        }),
    );
    const requests = results.reduce((sum, r) => sum + r.requests!, 0);
    return {
      requestsPerSecond: results.reduce((sum, r) => sum + r.requests! / (r.duration_us! / 1e6), 0),
      p50Ms: Math.max(...results.map((r) => r.p50_us!)) / 1000,
      p99Ms: Math.max(...results.map((r) => r.p99_us!)) / 1000,
      requests,
      failures: results.reduce((sum, r) => sum + r.non2xx! + r.socket_errors!, 0),
      pongs: results.flatMap((r) => r.pongs!),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The same single-row increment pingpong makes, driven straight at Postgres by `clients` clients. */
export async function databaseCeiling(url: string, clients: number, seconds: number, statement: string): Promise<LoadResult & { tool: string }> {
  if (await have('pgbench')) {
    const dir = mkdtempSync(path.join(tmpdir(), 'bench-pgbench-'));
    try {
      const script = path.join(dir, 'increment.sql');
      writeFileSync(script, `${statement};\n`);
      const { stdout } = await run('pgbench', ['-n', '-M', 'prepared', '-c', String(clients), '-j', String(Math.min(2, clients)), '-T', String(seconds), '-f', script, url]);
      // A run too short for 128 clients to connect processes nothing and prints no tps or latency.
      const tps = Number(/tps = ([\d.]+)/.exec(stdout)?.[1] ?? 0);
      const latency = Number(/latency average = ([\d.]+) ms/.exec(stdout)?.[1] ?? NaN);
      const processed = Number(/number of transactions actually processed: (\d+)/.exec(stdout)?.[1] ?? 0);
      const failed = Number(/number of failed transactions: (\d+)/.exec(stdout)?.[1] ?? 0);
      return { tool: 'pgbench', requestsPerSecond: tps, p50Ms: null, p99Ms: null, meanMs: latency, requests: processed, failures: failed };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  // Without pgbench: the same loop from this process through the postgres client.
  const sql = postgres(url, { max: clients, onnotice: () => undefined });
  const stopAt = Date.now() + seconds * 1000;
  let requests = 0;
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (Date.now() < stopAt) {
        await sql.unsafe(statement);
        requests++;
      }
    }),
  );
  await sql.end();
  return { tool: 'postgres.js', requestsPerSecond: requests / seconds, p50Ms: null, p99Ms: null, requests, failures: 0 };
}
