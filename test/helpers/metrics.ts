/** Reading a function's `GET /metrics`: its samples, its series, and what promtool says of it. */
import { spawnSync } from 'node:child_process';

export interface Sample {
  /** The sample's name as exposed: a histogram's `_bucket`, `_sum` and `_count` each have their own. */
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The function's metrics as text; fails on anything but a 200 in Prometheus's text format. */
export async function scrape(functionUrl: string): Promise<string> {
  const response = await fetch(`${functionUrl}/metrics`);
  const text = await response.text();
  if (response.status !== 200) throw new Error(`GET /metrics answered ${response.status}: ${text}`);
  const type = response.headers.get('content-type') ?? '';
  if (!type.startsWith('text/plain; version=0.0.4')) throw new Error(`GET /metrics answered ${type}`);
  return text;
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** Every sample in `text` (Prometheus's text format, as prom-client writes it: no timestamps). */
export function parseSamples(text: string): Sample[] {
  return text
    .split('\n')
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => {
      const match = SAMPLE.exec(line);
      if (!match) throw new Error(`not a sample line: ${line}`);
      const labels = Object.fromEntries([...(match[2] ?? '').matchAll(LABEL)].map(([, name, value]) => [name!, value!.replace(/\\(.)/g, '$1')]));
      return { name: match[1]!, labels, value: Number(match[3]) };
    });
}

/** The scraped metrics of a function, read. */
export interface Metrics {
  text: string;
  samples: Sample[];
  /** The value of the one sample named `name` whose labels include `labels`; 0 when there is none. */
  value(name: string, labels?: Record<string, string>): number;
  /** The sum over every sample named `name` whose labels include `labels`. */
  sum(name: string, labels?: Record<string, string>): number;
  /** The samples named `name` whose labels include `labels`. */
  find(name: string, labels?: Record<string, string>): Sample[];
}

export async function readMetrics(functionUrl: string): Promise<Metrics> {
  const text = await scrape(functionUrl);
  const samples = parseSamples(text);
  const find = (name: string, labels: Record<string, string> = {}) =>
    samples.filter((sample) => sample.name === name && Object.entries(labels).every(([key, value]) => sample.labels[key] === value));
  return {
    text,
    samples,
    find,
    value(name, labels) {
      const found = find(name, labels);
      if (found.length > 1) throw new Error(`${found.length} samples match ${name} ${JSON.stringify(labels)}`);
      return found[0]?.value ?? 0;
    },
    sum: (name, labels) => find(name, labels).reduce((total, sample) => total + sample.value, 0),
  };
}

/** What `promtool check metrics` finds in `text`: an empty list when it is clean. */
export function promtoolFindings(text: string): string[] {
  const result = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  if (result.error) throw result.error;
  const findings = `${result.stdout}${result.stderr}`.split('\n').filter(Boolean);
  if (result.status !== 0 && findings.length === 0) findings.push(`promtool exited ${result.status}`);
  return findings;
}

/** The request-duration series: one per method, route and status code (each histogram series has its buckets, sum and count). */
export function requestSeries(samples: Sample[]): Sample[] {
  return samples.filter((sample) => sample.name === 'http_server_request_duration_seconds_count');
}
