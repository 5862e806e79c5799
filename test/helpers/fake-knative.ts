/**
 * A stand-in for Knative's metrics endpoints, which need a cluster: real HTTP on a free port serving, for one
 * component (queue-proxy, the activator or the autoscaler), every metric test/helpers/cluster-metrics.ts
 * lists for it, named and labelled as Knative's OpenTelemetry exporter writes them, for the revisions given.
 * Counters and histograms grow with time, so rates and quantiles over them have something to show.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ExecutionContext } from 'ava';
import { KNATIVE_METRICS, type KnativeComponent, type KnativeMetric } from './cluster-metrics';

export interface Revision {
  service: string;
  /** Knative's name for it: `<service>-<generation, 5 digits>`. */
  revision: string;
  namespace: string;
}

/** Requests per second the stand-in pretends each revision serves, all within 0.1 s. */
const REQUESTS_PER_SECOND = 5;
const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];

/** Starts the stand-in for `component`; resolves with its `host:port`. Stopped when the test ends. */
export async function fakeKnative(t: ExecutionContext, component: KnativeComponent, revisions: Revision[]): Promise<string> {
  const startedAt = Date.now();
  const metrics = KNATIVE_METRICS.filter((metric) => metric.component === component);
  const server = createServer((req, res) => {
    if (req.url !== '/metrics') return void res.writeHead(404).end();
    const seconds = (Date.now() - startedAt) / 1000;
    const text = metrics.flatMap((metric) => exposition(metric, component === 'queue-proxy' ? [undefined] : revisions, seconds)).join('\n');
    res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8' }).end(`${text}\n`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/**
 * One metric's lines. queue-proxy's series name no revision (each pod's queue-proxy serves its own; the
 * PodMonitor labels the target), so it is asked for with `undefined`.
 */
function exposition(metric: KnativeMetric, revisions: (Revision | undefined)[], seconds: number): string[] {
  const lines = [`# HELP ${metric.name} ${metric.otel}`, `# TYPE ${metric.name} ${metric.type}`];
  const count = Math.floor(seconds * REQUESTS_PER_SECOND);
  for (const revision of revisions) {
    const labels = labelValues(metric, revision);
    if (metric.type === 'histogram') {
      // Every request took 0.05 s, so every bucket from 0.05 up holds all of them.
      for (const le of BUCKETS) lines.push(`${metric.name}_bucket${render({ ...labels, le: String(le) })} ${le >= 0.05 ? count : 0}`);
      lines.push(`${metric.name}_bucket${render({ ...labels, le: '+Inf' })} ${count}`, `${metric.name}_sum${render(labels)} ${count * 0.05}`, `${metric.name}_count${render(labels)} ${count}`);
    } else {
      // Gauges: one pod, one request waiting, a few in flight; counters grow.
      lines.push(`${metric.name}${render(labels)} ${metric.type === 'counter' ? count : 1}`);
    }
  }
  return lines;
}

function labelValues(metric: KnativeMetric, revision: Revision | undefined): Record<string, string> {
  const values: Record<string, string> = {
    otel_scope_name: `knative.dev/serving/pkg/${metric.component === 'queue-proxy' ? 'queue' : metric.component}`,
    otel_scope_version: '',
    otel_scope_schema_url: '',
    http_response_status_code: '200',
    http_request_method: 'GET',
    url_scheme: 'http',
    network_protocol_name: 'http',
    network_protocol_version: '1.1',
    peer: 'autoscaler',
    ...(revision && {
      k8s_namespace_name: revision.namespace,
      kn_service_name: revision.service,
      kn_configuration_name: revision.service,
      kn_revision_name: revision.revision,
      server_address: `${revision.service}.${revision.namespace}.svc.cluster.local`,
      server_port: '80',
    }),
  };
  return Object.fromEntries(metric.labels.map((label) => [label, values[label] ?? '']));
}

function render(labels: Record<string, string>): string {
  const pairs = Object.entries(labels).map(([name, value]) => `${name}="${value.replace(/[\\"]/g, '\\$&')}"`);
  return pairs.length ? `{${pairs.join(',')}}` : '';
}
