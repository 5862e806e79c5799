/**
 * `npm run monitor`: a Prometheus on this machine that scrapes the functions `npm start` runs, every 5 s,
 * and evaluates the cluster's alert rules, with its data in .data/prometheus. Ctrl-C stops it.
 */
import path from 'node:path';
import { projectRoot, readInt } from '../functions/shared/config';
import { readFunctionPorts } from './functions';
import { functionsJob, HOW_TO_INSTALL_PROMETHEUS, prometheusInstalled, startPrometheus, writePrometheusConfig } from './prometheus';

const port = readInt(process.env, 'PROMETHEUS_PORT', 9090, 1, 65535);
const job = functionsJob(readFunctionPorts(process.env));
const dir = path.join(projectRoot, '.data', 'prometheus');
const PING_RATE = 'sum(rate(pingpong_pings_total[1m]))';

async function main(): Promise<void> {
  if (!prometheusInstalled()) {
    console.error(`npm run monitor needs Prometheus: ${HOW_TO_INSTALL_PROMETHEUS}`);
    process.exit(1);
  }
  const config = writePrometheusConfig(dir, [job], '5s');
  const prometheus = await startPrometheus(config, path.join(dir, 'data'), port).catch((error: Error) => {
    if (!/address already in use/.test(error.message)) throw error;
    throw new Error(`port ${port} is taken (by another Prometheus?): set PROMETHEUS_PORT to a free one`);
  });
  let stopping = false;
  prometheus.child.stderr?.on('data', (chunk: string) => process.stderr.write(chunk)); // its warnings and errors
  prometheus.child.once('exit', (code, signal) => {
    if (!stopping) console.error(`prometheus exited unexpectedly (${signal ?? `code ${code}`})`);
    process.exit(stopping ? 0 : 1);
  });

  console.log(`Prometheus at ${prometheus.url}/, data in ${path.relative(projectRoot, dir)}; scraping every 5 s (start \`npm start\` for them to answer):`);
  for (const target of job.targets) console.log(`  ${target.labels.service!.padEnd(11)} http://${target.address}/metrics`);
  console.log(`the ping rate: ${prometheus.url}/graph?g0.expr=${encodeURIComponent(PING_RATE)}&g0.tab=0&g0.range_input=15m`);
  console.log(`the alerts:    ${prometheus.url}/alerts`);
  console.log('Ctrl-C stops it');

  const stop = () => {
    stopping = true;
    void prometheus.stop();
  };
  process.on('SIGINT', stop).on('SIGTERM', stop);
}

main().catch((error: Error) => {
  console.error(`npm run monitor failed: ${error.message}`);
  process.exit(1);
});
