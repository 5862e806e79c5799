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

/** The compiled entry that loads only the target's module. */
export const functionsEntry = path.join(projectRoot, 'dist', 'functions', 'index.js');

export function spawnFunction(target: string, port: number, env: NodeJS.ProcessEnv, source = functionsEntry): ChildProcess {
  return spawn(process.execPath, [frameworkMain, `--source=${source}`, `--target=${target}`], {
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
