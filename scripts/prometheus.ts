/**
 * A Prometheus on this machine (Debian's `prometheus` package), for `npm run monitor` and the tests: the
 * one writer of its configuration, with the alert rules the cluster gets. Those live in the PrometheusRule
 * monitoring/alert-rules.yaml, whose `spec` is a plain rules file once taken out of it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { projectRoot } from '../functions/shared/config';

export const ALERT_RULES = path.join(projectRoot, 'monitoring', 'alert-rules.yaml');
/** The file name the rules get beside the configuration (and beside the promtool tests, which name it). */
export const RULES_FILE_NAME = 'alert-rules.yaml';
export const HOW_TO_INSTALL_PROMETHEUS =
  'apt-get install prometheus (Debian, Ubuntu), or put prometheus from https://prometheus.io/download/ on the PATH';

export interface ScrapeTarget {
  /** `host:port`; Prometheus asks for /metrics there. */
  address: string;
  labels: Record<string, string>;
}

export interface ScrapeJob {
  name: string;
  targets: ScrapeTarget[];
}

/** The functions at `host`, each labelled `service` with its name, as the PodMonitor labels their pods in the cluster. */
export function functionsJob(ports: Record<string, number>, host = 'localhost'): ScrapeJob {
  return {
    name: 'functions',
    targets: Object.entries(ports).map(([service, port]) => ({ address: `${host}:${port}`, labels: { service } })),
  };
}

/** The PrometheusRule's rule groups, as the plain rules file that Prometheus and promtool read. */
export function alertRulesText(file = ALERT_RULES): string {
  const { spec } = parse(readFileSync(file, 'utf8')) as { spec: { groups: unknown[] } };
  return stringify({ groups: spec.groups });
}

/**
 * Writes prometheus.yml into `dir`, scraping `jobs` and evaluating the rules every `interval`, with the
 * rules beside it; returns the configuration's path.
 */
export function writePrometheusConfig(dir: string, jobs: ScrapeJob[], interval: string): string {
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, RULES_FILE_NAME), alertRulesText());
  const config = {
    global: { scrape_interval: interval, evaluation_interval: interval },
    rule_files: [RULES_FILE_NAME],
    scrape_configs: jobs.map((job) => ({
      job_name: job.name,
      static_configs: job.targets.map(({ address, labels }) => ({ targets: [address], labels })),
    })),
  };
  const file = path.join(dir, 'prometheus.yml');
  writeFileSync(file, stringify(config));
  return file;
}

export function prometheusInstalled(): boolean {
  return !spawnSync('prometheus', ['--version']).error;
}

export interface RunningPrometheus {
  url: string;
  child: ChildProcess;
  /** What it has logged so far (warnings and errors only). */
  output(): string;
  /** SIGTERM, then wait for it to exit. */
  stop(): Promise<void>;
}

/** Starts Prometheus on 127.0.0.1:`port` and resolves once it is ready: configuration read, rules loaded. */
export async function startPrometheus(configFile: string, dataDir: string, port: number): Promise<RunningPrometheus> {
  const child = spawn(
    'prometheus',
    [`--config.file=${configFile}`, `--storage.tsdb.path=${dataDir}`, `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let text = '';
  for (const stream of [child.stdout, child.stderr]) stream.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const running = () => child.exitCode === null && child.signalCode === null;
  const stop = async () => {
    if (running()) child.kill('SIGTERM');
    await exited;
  };
  const url = `http://127.0.0.1:${port}`;
  for (const giveUpAt = Date.now() + 30_000; ; ) {
    if (!running()) throw new Error(`prometheus exited before it was ready; it said:\n${text}`);
    if (await fetch(`${url}/-/ready`).then((response) => response.ok, () => false)) break;
    if (Date.now() > giveUpAt) {
      await stop();
      throw new Error(`prometheus was not ready within 30 s; it said:\n${text}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return { url, child, output: () => text, stop };
}
