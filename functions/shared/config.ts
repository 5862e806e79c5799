/** Reading `process.env` into typed settings: every error names the variable at fault. */

import { existsSync } from 'node:fs';
import path from 'node:path';

export type Env = Record<string, string | undefined>;

/** A setting that is missing or malformed; the process should stop with this message. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** A whole number within [min, max], or `fallback` when the variable is unset or empty. */
export function readInt(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name]?.trim();
  if (!raw) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(`${name} must be a whole number from ${min} to ${max}, got "${raw}"`);
  }
  return value;
}

/** `true` or `false`; false when the variable is unset or empty. */
export function readBoolean(env: Env, name: string): boolean {
  const raw = env[name]?.trim().toLowerCase();
  if (!raw || raw === 'false') return false;
  if (raw === 'true') return true;
  throw new ConfigError(`${name} must be true or false, got "${env[name]}"`);
}

/** An http(s) URL without a trailing slash, or `fallback` when the variable is unset or empty. */
export function readHttpUrl(env: Env, name: string, fallback: string): string {
  const raw = env[name]?.trim() || fallback;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(`${name} must be an http(s) URL, got "${raw}"`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ConfigError(`${name} must be an http(s) URL, got "${raw}"`);
  }
  return url.href.replace(/\/+$/, '');
}

/** Who writes a function's log lines: the function this process serves and, under Knative, its revision. */
export interface LogContext {
  /** `FUNCTION_TARGET`, which picks the function (functions/index.cts). */
  function: string | undefined;
  /** `K_REVISION`, which Knative sets in every revision's container (e.g. `pingpong-00002`); unset locally. */
  revision: string | undefined;
}

export function readLogContext(env: Env): LogContext {
  return { function: env.FUNCTION_TARGET?.trim() || undefined, revision: env.K_REVISION?.trim() || undefined };
}

/** The folder holding package.json: the same answer from source and from `dist/`. */
export const projectRoot = findProjectRoot(__dirname);

function findProjectRoot(from: string): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'package.json'))) return dir;
    if (dir === path.dirname(dir)) throw new Error(`no package.json above ${from}`);
  }
}
