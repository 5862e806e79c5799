/** A function served by functions-framework from the compiled code, on a free port, in its own process. */
import type { ExecutionContext } from 'ava';
import { spawnFunction, waitForHttp } from '../../scripts/functions';
import { freePort } from './ports';

export interface RunningFunction {
  url: string;
  port: number;
  /** Everything the process has printed so far, stdout and stderr. */
  output(): string;
  /** The process id of the current process (a restart gives a new one). */
  pid(): number;
  /** Whether the current process has not exited. */
  running(): boolean;
  /** SIGTERM, then wait for exit; resolves with the exit code. */
  stop(): Promise<number | null>;
  /** Start again on the same port with the same environment. */
  restart(): Promise<void>;
}

export async function startFunction(
  t: ExecutionContext,
  target: string,
  env: NodeJS.ProcessEnv,
  { waitPath = '/healthz', port: fixedPort }: { waitPath?: string; port?: number } = {},
): Promise<RunningFunction> {
  const port = fixedPort ?? (await freePort());
  let text = '';
  let child = spawnFunction(target, port, env);
  let exited: Promise<number | null>;

  const launch = async () => {
    child = spawnFunction(target, port, env);
    watch();
    await waitForHttp(`http://127.0.0.1:${port}${waitPath}`, 30_000);
  };
  const watch = () => {
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
    exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  };
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    return exited;
  };

  watch();
  t.teardown(() => stop().then(() => undefined));
  try {
    await waitForHttp(`http://127.0.0.1:${port}${waitPath}`, 30_000);
  } catch (error) {
    await stop();
    throw new Error(`${target} did not start; it printed:\n${text}`, { cause: error });
  }
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    output: () => text,
    pid: () => child.pid!,
    running: () => child.exitCode === null && child.signalCode === null,
    stop,
    restart: launch,
  };
}
