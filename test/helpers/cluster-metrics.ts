/**
 * The metrics that exporters other than our functions provide in the cluster, as Prometheus names them:
 * Knative Serving's own above all, then kube-state-metrics' and cAdvisor's few that we read. With the
 * functions' own `/metrics`, these are every name a query we ship may use (test/integration/metric-names.test.ts);
 * the PodMonitors' filters and the Knative stand-in (test/helpers/fake-knative.ts) read the same list.
 */

export type KnativeComponent = 'queue-proxy' | 'activator' | 'autoscaler';

/** Knative Serving's own namespace, which its install makes: monitoring/knative watches its control plane there. */
export const KNATIVE_NAMESPACE = 'knative-serving';

export interface ExportedMetric {
  /** As Prometheus stores it; a histogram's `_bucket`, `_sum` and `_count` follow from its type. */
  name: string;
  type: 'counter' | 'gauge' | 'histogram';
  /** The labels its series carry, besides those Prometheus's target adds. */
  labels: string[];
  /** Where the name is declared, for whoever updates this list. */
  source: string;
}

export interface KnativeMetric extends ExportedMetric {
  component: KnativeComponent;
  /** The OpenTelemetry instrument's name and unit as Knative declares them. */
  otel: string;
}

/** The labels the OpenTelemetry Prometheus exporter adds to every series: the instrumentation scope. */
const SCOPE = ['otel_scope_name', 'otel_scope_version', 'otel_scope_schema_url'];
const REVISION = ['k8s_namespace_name', 'kn_revision_name'];
const SERVICE_REVISION = [...REVISION, 'kn_service_name', 'kn_configuration_name'];
/** OpenTelemetry's HTTP server attributes, as otelhttp sets them (vendor/.../otelhttp/internal/semconv/server.go). */
const HTTP_SERVER = ['http_request_method', 'http_response_status_code', 'url_scheme', 'server_address', 'server_port', 'network_protocol_name', 'network_protocol_version'];

const at = (file: string) => `knative/serving knative-v1.23.0 ${file}`;

/**
 * Knative Serving's metrics since v1.19, when OpenTelemetry replaced OpenCensus and every name changed (the
 * old ones, such as `revision_app_request_count` or `revision_request_latencies`, are gone); checked facts in
 * ../shared/knative-observability.md. Each OpenTelemetry name and unit as declared in the file named, turned
 * into Prometheus's by the rules of Knative's exporter (knative.dev/pkg observability/metrics, with
 * otlptranslator's UnderscoreEscapingWithSuffixes, the same as Prometheus's own OTLP receiver): dots become
 * underscores, a unit becomes a suffix (`s`: `_seconds`, `/s`: `_per_second`, `{request}` and the like: none),
 * a monotonic counter ends in `_total`; an up-down counter is a gauge.
 *
 * queue-proxy's series carry no revision label of their own: the revision is a resource attribute there,
 * which the exporter leaves in `target_info`. Our PodMonitor adds `service` and `revision` (monitoring/).
 */
export const KNATIVE_METRICS: readonly KnativeMetric[] = [
  // queue-proxy, in every function's pod, on port 9091 (http-usermetric) with request-metrics-protocol: prometheus.
  { component: 'queue-proxy', otel: 'kn.serving.invocation.duration (s)', name: 'kn_serving_invocation_duration_seconds', type: 'histogram', labels: ['http_response_status_code', ...SCOPE], source: at('pkg/queue/request_metric.go') },
  { component: 'queue-proxy', otel: 'kn.serving.queue.depth ({request})', name: 'kn_serving_queue_depth', type: 'gauge', labels: SCOPE, source: at('pkg/queue/request_metric.go') },
  // The activator, on port 9090 (metrics) with metrics-protocol: prometheus.
  { component: 'activator', otel: 'kn.revision.request.concurrency ({request})', name: 'kn_revision_request_concurrency', type: 'gauge', labels: [...SERVICE_REVISION, ...SCOPE], source: at('pkg/activator/handler/metrics.go') },
  { component: 'activator', otel: 'kn.revision.request.queued ({request}, up-down counter)', name: 'kn_revision_request_queued', type: 'gauge', labels: [...REVISION, ...SCOPE], source: at('pkg/activator/handler/metrics.go') },
  { component: 'activator', otel: 'kn.revision.request.active ({request}, up-down counter)', name: 'kn_revision_request_active', type: 'gauge', labels: [...REVISION, ...SCOPE], source: at('pkg/activator/handler/metrics.go') },
  { component: 'activator', otel: 'kn.activator.stats.conn.reachable ({reachable})', name: 'kn_activator_stats_conn_reachable', type: 'gauge', labels: ['peer', ...SCOPE], source: at('pkg/activator/metrics.go') },
  { component: 'activator', otel: 'kn.activator.stats.conn.errors ({error})', name: 'kn_activator_stats_conn_errors_total', type: 'counter', labels: ['peer', ...SCOPE], source: at('pkg/activator/metrics.go') },
  // otelhttp around the activator's whole handler: each request's time through the activator, its wait for a
  // pod included, labelled with its revision. The same name as our functions' histogram, without their service label.
  { component: 'activator', otel: 'http.server.request.duration (s), otelhttp', name: 'http_server_request_duration_seconds', type: 'histogram', labels: [...SERVICE_REVISION, ...HTTP_SERVER, ...SCOPE], source: at('cmd/activator/main.go, pkg/activator/handler/metric_handler.go') },
  // The autoscaler, on port 9090 (metrics) with metrics-protocol: prometheus.
  { component: 'autoscaler', otel: 'kn.revision.pods.desired ({item})', name: 'kn_revision_pods_desired', type: 'gauge', labels: [...SERVICE_REVISION, ...SCOPE], source: at('pkg/autoscaler/scaling/metrics.go') },
  { component: 'autoscaler', otel: 'kn.revision.capacity.excess ({concurrency})', name: 'kn_revision_capacity_excess', type: 'gauge', labels: [...SERVICE_REVISION, ...SCOPE], source: at('pkg/autoscaler/scaling/metrics.go') },
  { component: 'autoscaler', otel: 'kn.revision.panic.mode', name: 'kn_revision_panic_mode', type: 'gauge', labels: [...SERVICE_REVISION, ...SCOPE], source: at('pkg/autoscaler/scaling/metrics.go') },
  { component: 'autoscaler', otel: 'kn.revision.concurrency.stable ({concurrency})', name: 'kn_revision_concurrency_stable', type: 'gauge', labels: [...SERVICE_REVISION, ...SCOPE], source: at('pkg/autoscaler/scaling/metrics.go') },
  { component: 'autoscaler', otel: 'kn.revision.concurrency.panic ({concurrency})', name: 'kn_revision_concurrency_panic', type: 'gauge', labels: [...SERVICE_REVISION, ...SCOPE], source: at('pkg/autoscaler/scaling/metrics.go') },
  { component: 'autoscaler', otel: 'kn.revision.concurrency.target ({concurrency})', name: 'kn_revision_concurrency_target', type: 'gauge', labels: [...SERVICE_REVISION, ...SCOPE], source: at('pkg/autoscaler/scaling/metrics.go') },
  // Instead of the three concurrency ones, for a revision that scales on requests per second.
  { component: 'autoscaler', otel: 'kn.revision.rps.stable ({request}/s)', name: 'kn_revision_rps_stable_per_second', type: 'gauge', labels: [...SERVICE_REVISION, ...SCOPE], source: at('pkg/autoscaler/scaling/metrics.go') },
  { component: 'autoscaler', otel: 'kn.revision.rps.panic ({request}/s)', name: 'kn_revision_rps_panic_per_second', type: 'gauge', labels: [...SERVICE_REVISION, ...SCOPE], source: at('pkg/autoscaler/scaling/metrics.go') },
  { component: 'autoscaler', otel: 'kn.revision.rps.target ({request}/s)', name: 'kn_revision_rps_target_per_second', type: 'gauge', labels: [...SERVICE_REVISION, ...SCOPE], source: at('pkg/autoscaler/scaling/metrics.go') },
  // Pods as the autoscaler's reconciler counts them; `count` is the ready ones.
  { component: 'autoscaler', otel: 'kn.revision.pods.requested ({pod})', name: 'kn_revision_pods_requested', type: 'gauge', labels: [...SERVICE_REVISION, ...SCOPE], source: at('pkg/reconciler/autoscaling/kpa/metrics.go') },
  { component: 'autoscaler', otel: 'kn.revision.pods.count ({pod})', name: 'kn_revision_pods_count', type: 'gauge', labels: [...SERVICE_REVISION, ...SCOPE], source: at('pkg/reconciler/autoscaling/kpa/metrics.go') },
  { component: 'autoscaler', otel: 'kn.revision.pods.not_ready.count ({pod})', name: 'kn_revision_pods_not_ready_count', type: 'gauge', labels: [...SERVICE_REVISION, ...SCOPE], source: at('pkg/reconciler/autoscaling/kpa/metrics.go') },
  { component: 'autoscaler', otel: 'kn.revision.pods.pending.count ({pod})', name: 'kn_revision_pods_pending_count', type: 'gauge', labels: [...SERVICE_REVISION, ...SCOPE], source: at('pkg/reconciler/autoscaling/kpa/metrics.go') },
  { component: 'autoscaler', otel: 'kn.revision.pods.terminating.count ({pod})', name: 'kn_revision_pods_terminating_count', type: 'gauge', labels: [...SERVICE_REVISION, ...SCOPE], source: at('pkg/reconciler/autoscaling/kpa/metrics.go') },
  { component: 'autoscaler', otel: 'kn.autoscaler.scrape.duration (s)', name: 'kn_autoscaler_scrape_duration_seconds', type: 'histogram', labels: ['k8s_namespace_name', 'kn_service_name', 'kn_configuration_name', ...SCOPE], source: at('pkg/autoscaler/metrics/stats_scraper.go') },
];

/** The few series of other exporters that our queries read. */
export const OTHER_EXPORTERS_METRICS: readonly ExportedMetric[] = [
  // The backup alert (monitoring/alert-rules.yaml) and the dashboard's backup panel.
  { name: 'kube_cronjob_created', type: 'gauge', labels: ['namespace', 'cronjob'], source: 'kube-state-metrics internal/store/cronjob.go' },
  { name: 'kube_cronjob_status_last_successful_time', type: 'gauge', labels: ['namespace', 'cronjob'], source: 'kube-state-metrics internal/store/cronjob.go' },
  // The kubelet's cAdvisor, which kube-prometheus-stack scrapes: CPU by container (the course's canary query).
  { name: 'container_cpu_usage_seconds_total', type: 'counter', labels: ['namespace', 'pod', 'container'], source: 'google/cadvisor metrics/prometheus.go' },
  // Prometheus's own series for every target it scrapes, with the target's labels: the canary's CPU template
  // takes each pod's revision from our scrapes' `up`.
  { name: 'up', type: 'gauge', labels: ['job', 'instance'], source: 'Prometheus, scrape/scrape.go (the synthetic series of every scrape)' },
  // CloudNativePG's exporter in every instance of the Cluster (db/cloudnativepg/): its alert rules. The
  // pg_replication ones come from the default monitoring query of that name, one series per column.
  { name: 'cnpg_pg_replication_lag', type: 'gauge', labels: [], source: 'cloudnative-pg v1.30.0 config/manager/default-monitoring.yaml (pg_replication)' },
  { name: 'cnpg_pg_replication_in_recovery', type: 'gauge', labels: [], source: 'cloudnative-pg v1.30.0 config/manager/default-monitoring.yaml (pg_replication)' },
  { name: 'cnpg_pg_replication_streaming_replicas', type: 'gauge', labels: [], source: 'cloudnative-pg v1.30.0 config/manager/default-monitoring.yaml (pg_replication)' },
  { name: 'cnpg_collector_sync_replicas', type: 'gauge', labels: ['value'], source: 'cloudnative-pg v1.30.0 pkg/management/postgres/webserver/metricserver/pg_collector.go' },
];

/** The names a metric's samples have: a histogram's three series, anything else its own name. */
export function sampleNames({ name, type }: Pick<ExportedMetric, 'name' | 'type'>): string[] {
  return type === 'histogram' ? [`${name}_bucket`, `${name}_sum`, `${name}_count`] : [name];
}

/** Every sample name the cluster's other exporters provide, Knative's first. */
export function clusterMetricNames(): Set<string> {
  return new Set([...KNATIVE_METRICS, ...OTHER_EXPORTERS_METRICS].flatMap(sampleNames));
}

/**
 * Knative's control-plane pods as its release makes them (config/core/deployments/*.yaml and
 * config/hpa-autoscaling/controller.yaml at knative-v1.23.0): their labels, and the port that serves
 * /metrics with metrics-protocol: prometheus (9090, named `metrics`).
 */
export const KNATIVE_CONTROL_PLANE_PODS: Record<string, { labels: Record<string, string>; ports: Record<string, number> }> = {
  activator: { labels: { app: 'activator', role: 'activator', 'app.kubernetes.io/component': 'activator', 'app.kubernetes.io/name': 'knative-serving' }, ports: { metrics: 9090, profiling: 8008, http1: 8012, h2c: 8013 } },
  autoscaler: { labels: { app: 'autoscaler', 'app.kubernetes.io/component': 'autoscaler', 'app.kubernetes.io/name': 'knative-serving' }, ports: { metrics: 9090, profiling: 8008, websocket: 8080 } },
  controller: { labels: { app: 'controller', 'app.kubernetes.io/component': 'controller', 'app.kubernetes.io/name': 'knative-serving' }, ports: { metrics: 9090, profiling: 8008 } },
  webhook: { labels: { app: 'webhook', role: 'webhook', 'app.kubernetes.io/component': 'webhook' }, ports: { metrics: 9090, profiling: 8008 } },
  'autoscaler-hpa': { labels: { app: 'autoscaler-hpa', 'app.kubernetes.io/component': 'autoscaler-hpa', 'app.kubernetes.io/name': 'knative-serving' }, ports: { metrics: 9090, profiling: 8008 } },
};

/**
 * queue-proxy's ports in every pod Knative makes (pkg/reconciler/revision/resources/queue.go): 9090 is the
 * autoscaler's own feed of request counts, never Prometheus's; 9091 serves the request metrics.
 */
export const QUEUE_PROXY_PORTS: Record<string, number> = { 'http-autometric': 9090, 'http-usermetric': 9091, 'queue-port': 8012, 'https-port': 8112 };
