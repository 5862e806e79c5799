/** A function served by functions-framework from the compiled code, on a free port, in its own process. */
import type { ChildProcess } from 'node:child_process';
import type { ExecutionContext } from 'ava';
import { spawnFunction, waitForHttp } from '../../scripts/functions';
import { freePort, listensOn } from './ports';

export interface RunningFunction {
  url: string;
  port: number;
  /** The process id of the function as it runs now (for reading its /proc/<pid>/status). */
  pid(): number;
  /** Everything the process has printed so far, stdout and stderr. */
  output(): string;
  /** SIGTERM, then wait for exit; resolves with the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL, as an OOM kill or a node failure would (nothing runs after it), then wait for exit. */
  kill(): Promise<void>;
  /** Whether the process started last is still running: false once it exited, by itself or killed. */
  running(): boolean;
  /** Start again on the same port with the same environment. */
  restart(): Promise<void>;
}

export async function startFunction(
  t: ExecutionContext,
  target: string,
  env: NodeJS.ProcessEnv,
  {
    waitPath = '/healthz',
    port: fixedPort,
    spawn = spawnFunction,
  }: {
    waitPath?: string;
    port?: number;
    /** How to start the process; the local runner's way unless said (the image rehearsal runs the image's command). */
    spawn?: (target: string, port: number, env: NodeJS.ProcessEnv) => ChildProcess;
  } = {},
): Promise<RunningFunction> {
  let port = fixedPort ?? (await freePort());
  let text = '';
  let child!: ChildProcess;
  let exited!: Promise<number | null>;

  const launch = async () => {
    begin();
    await answering();
  };
  const begin = () => {
    child = spawn(target, port, env);
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
    // 'close', not 'exit': by then everything it printed has been read.
    exited = new Promise((resolve) => child.once('close', (code) => resolve(code)));
  };
  // A process that exits while starting will never answer: say so at once rather than after the 30 s.
  const answering = async () => {
    await Promise.race([
      waitForHttp(`http://127.0.0.1:${port}${waitPath}`, 30_000),
      exited.then((code) => Promise.reject(new Error(`it exited (code ${code}) before answering`))),
    ]);
    if (!listensOn(child.pid!, port)) throw new PortTaken(`port ${port} was taken by another process before it could listen`);
  };
  const running = () => child.exitCode === null && child.signalCode === null;
  const stop = async () => {
    if (running()) child.kill('SIGTERM');
    return exited;
  };
  const kill = async () => {
    if (running()) child.kill('SIGKILL');
    await exited;
  };

  begin();
  t.teardown(() => stop().then(() => undefined));
  for (let attempt = 1; ; attempt++) {
    try {
      await answering();
      break;
    } catch (error) {
      await stop();
      const portLost = error instanceof PortTaken || text.includes('EADDRINUSE');
      if (portLost && fixedPort === undefined && attempt < 3) {
        port = await freePort();
        text = '';
        begin();
        continue;
      }
      throw new Error(`${target} did not start; it printed:\n${text}`, { cause: error });
    }
  }
  return { url: `http://127.0.0.1:${port}`, port, pid: () => child.pid!, output: () => text, stop, kill, running, restart: launch };
}

/** Another process got the port between it being found free and the function binding it (so the function
 * either exits with EADDRINUSE or, worse, the other process answers for it): try another. */
class PortTaken extends Error {}
