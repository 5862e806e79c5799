/** `npm start`'s runner (scripts/start.ts), run as a user runs it (compiled), with its data and ports moved aside. */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, cpSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import { projectRoot } from '../../functions/shared/config';
import { freePort } from './ports';
import { tempDir } from './temp';

export interface Runner {
  child: ChildProcess;
  /** Resolves once the runner says it is ready; rejects if it exits first. */
  ready: Promise<void>;
  exited: Promise<number | null>;
  /** Everything it has printed so far, stdout and stderr. */
  output(): string;
}

/** The runner's environment on free ports, with an embedded Postgres in a folder removed after the test. */
export async function runnerEnv(t: ExecutionContext): Promise<Record<string, string>> {
  const dir = tempDir(t, 'start-test-');
  chmodSync(dir, 0o755); // as root the embedded server runs as the postgres user
  return {
    EMBEDDED_PG_DIR: path.join(dir, 'data'),
    EMBEDDED_PG_PORT: String(await freePort()),
    LOG_OUTPUT_PORT: String(await freePort()),
    PINGPONG_PORT: String(await freePort()),
    IMAGE_PROXY_PORT: String(await freePort()),
    API_KEY: '',
  };
}

/**
 * The compiled runner itself (with `args`), or through npm exactly as a user types it (`npmScript`:
 * `start` or `demo`, build included). Signals in a test go to that one process, as a terminal's would
 * reach npm; after the test whatever is left of its process group is killed.
 */
export function runStart(t: ExecutionContext, env: NodeJS.ProcessEnv, { npmScript, args = [] }: { npmScript?: 'start' | 'demo'; args?: string[] } = {}): Runner {
  const [command, commandArgs, cwd] = npmScript
    ? ['npm', ['run', npmScript], projectCopy(t)]
    : [process.execPath, [path.join(projectRoot, 'dist', 'scripts', 'start.js'), ...args], projectRoot];
  const child = spawn(command, commandArgs, {
    cwd,
    env: { ...process.env, DATABASE_URL: '', PGHOST: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true, // its own process group, so that nothing it started can outlive the test
  });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  t.teardown(() => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // nothing left to kill
    }
  });
  const ready = new Promise<void>((resolve, reject) => {
    const check = () => (output.includes('Ctrl-C stops everything') ? resolve() : undefined);
    child.stdout.on('data', check);
    void exited.then(() => reject(new Error(`npm start exited early:\n${output}`)));
  });
  ready.catch(() => undefined); // awaited only by the tests that expect a start
  return { child, ready, exited, output: () => output };
}

/**
 * The project as a user has it, in a folder of its own: its files, and node_modules linked. `npm start`
 * builds before it starts, and a build here rewrites every file of dist/ while the other test files
 * start functions from it: one read a half-written module and died ("Function 'log-output' is not
 * defined in the provided module").
 */
function projectCopy(t: ExecutionContext): string {
  const dir = tempDir(t, 'project-copy-');
  chmodSync(dir, 0o755); // as root the embedded server runs as the postgres user, who starts from here
  const leftOut = new Set(['node_modules', 'dist', '.git', 'backups'].map((name) => path.join(projectRoot, name)));
  cpSync(projectRoot, dir, { recursive: true, filter: (source) => !leftOut.has(source) });
  symlinkSync(path.join(projectRoot, 'node_modules'), path.join(dir, 'node_modules'));
  return dir;
}
