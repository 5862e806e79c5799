/**
 * The entry functions-framework loads (`--source=dist/functions/index.cjs`). One process serves one
 * function (`FUNCTION_TARGET`), so only that function's module is loaded: a cold start pays for one
 * function, not three. A `.cts` file, compiled to `.cjs`: the extension tells the framework it is
 * CommonJS, so it does not load read-package-up to find out (40-60 ms of CPU; docs/cold-start.md).
 */
const functions: Record<string, () => unknown> = {
  pingpong: () => require('./pingpong'),
  'log-output': () => require('./log-output'),
  'image-proxy': () => require('./image-proxy'),
};

const target = process.env.FUNCTION_TARGET;
const load = target ? functions[target] : undefined;
try {
  if (!load) throw new Error(`FUNCTION_TARGET must be one of ${Object.keys(functions).join(', ')}, got "${target ?? ''}"`);
  load();
} catch (error) {
  // Said as one log line: functions-framework would print free text asking whether there is a syntax
  // error, and a stack, for a setting that is wrong. A wrong setting needs no stack; anything else does.
  const { log }: typeof import('./shared/log') = require('./shared/log');
  const { ConfigError }: typeof import('./shared/config') = require('./shared/config');
  const settingWrong = !load || error instanceof ConfigError;
  log.critical(`could not start: ${(error as Error)?.message ?? String(error)}`, { event: 'start_failed' }, settingWrong ? undefined : (error as Error)?.stack);
  process.exit(1);
}
