import { readFileSync } from 'node:fs';
import { parseEnv } from 'node:util';
import { ConfigError, readHttpUrl, readInt, type Env } from '../shared/config';

export interface LogOutputConfig {
  /** The first line of `GET /`; undefined leaves the line out. */
  message: string | undefined;
  /** Where pingpong answers `GET /pongs`. */
  pingpongUrl: string;
  /** How long a request waits for pingpong before answering 503. */
  pingpongTimeoutMs: number;
}

/** `MESSAGE` comes from the dotenv file at `ENV_FILE` (a ConfigMap in the cluster); a `MESSAGE` variable overrides it. */
export function readLogOutputConfig(env: Env): LogOutputConfig {
  const fromFile = env.ENV_FILE ? readDotenv(env.ENV_FILE) : {};
  return {
    message: env.MESSAGE ?? fromFile.MESSAGE,
    pingpongUrl: readHttpUrl(env, 'PINGPONG_URL', 'http://localhost:8081'),
    // Short by default (locally pingpong is up or down, never waking); the cluster sets longer, for its cold start.
    pingpongTimeoutMs: readInt(env, 'PINGPONG_TIMEOUT_MS', 2000, 1, 60_000),
  };
}

/** A missing file means no settings; one that is not a dotenv file stops start-up. */
export function readDotenv(file: string): Record<string, string | undefined> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new ConfigError(`ENV_FILE ${file} cannot be read: ${(error as Error).message}`);
  }
  // parseEnv skips what it cannot read without a word, so check each line's shape first.
  text.split(/\r?\n/).forEach((line, i) => {
    if (line.trim() !== '' && !line.trimStart().startsWith('#') && !DOTENV_LINE.test(line)) {
      throw new ConfigError(`ENV_FILE ${file} line ${i + 1} is not KEY=VALUE: "${line.slice(0, 60)}"`);
    }
  });
  return parseEnv(text);
}

// A key, `=`, and anything (quoted values that span lines are not supported: one line, one setting).
const DOTENV_LINE = /^\s*(export\s+)?[A-Za-z_][A-Za-z0-9_]*\s*=/;
