/**
 * The entry functions-framework loads, bundled with the functions and their dependencies into
 * `dist/functions.cjs` (`npm run build`). One process serves one function (`FUNCTION_TARGET`), so only
 * that function's module runs: a cold start pays for one function, not three.
 */
const functions: Record<string, () => unknown> = {
  pingpong: () => require('./pingpong'),
  'log-output': () => require('./log-output'),
  'image-proxy': () => require('./image-proxy'),
};

const target = process.env.FUNCTION_TARGET;
const load = target ? functions[target] : undefined;
if (!load) {
  throw new Error(`FUNCTION_TARGET must be one of ${Object.keys(functions).join(', ')}, got "${target ?? ''}"`);
}
load();
