/**
 * Where a cold start's time goes, for working on it (docs/cold-start.md). Loaded before the framework
 * with `node -r ./dist/bench/startup-phases.js node_modules/@google-cloud/functions-framework/build/src/main.js ...`,
 * it prints one line to stderr when the first answer has gone out: the milliseconds since the process
 * began and the process's CPU (all threads) at Node's own start-up done, listening, first request, first
 * answer; then how long the modules each package loaded took (inclusive, so nested packages count twice).
 */
import { Server } from 'node:http';
import Module from 'node:module';

const marks: string[] = [];
const mark = (phase: string) => {
  const { user, system } = process.cpuUsage();
  marks.push(`${phase} ${performance.now().toFixed(0)} ms (CPU ${((user + system) / 1000).toFixed(0)} ms)`);
};
mark('node started');

// Inclusive time of every require of a package or of a file by its full path (the framework's entry, ours);
// a package's own relative requires count in its time.
const loading = new Map<string, number>();
const moduleInternals = Module as unknown as { _load(request: string, parent: unknown, isMain: boolean): unknown };
const load = moduleInternals._load;
moduleInternals._load = function (request, parent, isMain) {
  const started = performance.now();
  try {
    return load.call(this, request, parent, isMain);
  } finally {
    if (!request.startsWith('.')) {
      const name = request.startsWith('/') ? request.split('/').slice(-2).join('/') : request.split('/').slice(0, request.startsWith('@') ? 2 : 1).join('/');
      loading.set(name, (loading.get(name) ?? 0) + performance.now() - started);
    }
  }
};

const listen = Server.prototype.listen;
Server.prototype.listen = function (this: Server, ...args: unknown[]) {
  this.once('listening', () => mark('listening'));
  this.once('request', (_req, res) => {
    mark('first request');
    res.once('finish', () => {
      mark('first answer');
      const slowest = [...loading].sort((a, b) => b[1] - a[1]).slice(0, 15);
      console.error(`startup phases: ${marks.join(' | ')}\nloading, inclusive: ${slowest.map(([name, ms]) => `${name} ${ms.toFixed(1)}`).join(', ')}`);
    });
  });
  return listen.apply(this, args as Parameters<typeof listen>);
} as typeof listen;
