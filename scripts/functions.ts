/** Runs one function the way the cluster does: functions-framework in its own process, compiled JS, `FUNCTION_TARGET` and `PORT`. */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { projectRoot, readInt, type Env } from '../functions/shared/config';

/** The ports `npm start` serves the functions on (and `npm run monitor` scrapes): 8080, 8081, 8082 unless set. */
export function readFunctionPorts(env: Env): { 'log-output': number; pingpong: number; 'image-proxy': number } {
  return {
    'log-output': readInt(env, 'LOG_OUTPUT_PORT', 8080, 1, 65535),
    pingpong: readInt(env, 'PINGPONG_PORT', 8081, 1, 65535),
    'image-proxy': readInt(env, 'IMAGE_PROXY_PORT', 8082, 1, 65535),
  };
}

/** functions-framework's own entry, run with `node` directly so signals reach it. */
export const frameworkMain = path.join(path.dirname(require.resolve('@google-cloud/functions-framework')), 'main.js');

/** The compiled entry (functions/index.cts) that loads only the target's module. */
export const functionsEntry = path.join(projectRoot, 'dist', 'functions', 'index.cjs');

export interface SpawnOptions {
  /** The module holding the function; our compiled entry unless said. */
  source?: string;
  /** The `node` binary; this process's own unless said (the bench also runs the image's Node). */
  node?: string;
}

export function spawnFunction(target: string, port: number, env: NodeJS.ProcessEnv, { source = functionsEntry, node = process.execPath }: SpawnOptions = {}): ChildProcess {
  return spawn(node, [frameworkMain, `--source=${source}`, `--target=${target}`], {
    env: { ...process.env, NODE_ENV: 'production', ...env, FUNCTION_TARGET: target, PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** Resolves once `url` answers HTTP at all (any status), polling every 25 ms; rejects after `ms`. */
export async function waitForHttp(url: string, ms: number): Promise<void> {
  const giveUpAt = Date.now() + ms;
  for (;;) {
    try {
      await fetch(url, { signal: AbortSignal.timeout(5000) });
      return;
    } catch (error) {
      if (Date.now() > giveUpAt) throw new Error(`${url} did not answer within ${ms} ms`, { cause: error });
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }
}

/**
 * A function's log line as a person reads it in npm start's output: a JSON line (functions/shared/log.ts)
 * becomes its message, after its severity unless that is INFO, with its stack on the lines after; any
 * other line (log-output's `<timestamp>: <uuid>.`) stays as it is.
 */
export function readableLogLine(line: string): string[] {
  if (!line.startsWith('{')) return [line];
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return [line];
  }
  const { severity, message, stack_trace: stack } = entry ?? {};
  if (typeof severity !== 'string' || typeof message !== 'string') return [line];
  const head = severity === 'INFO' ? message : `${severity} ${message}`;
  // A stack's first line repeats the message.
  return typeof stack === 'string' ? [head, ...stack.split('\n').slice(1)] : [head];
}
