/**
 * Knative revisions and the kubelet's cAdvisor as a real Prometheus sees them in the cluster, without a
 * cluster: each revision is the real compiled function in its own process, scraped under the labels the
 * PodMonitor gives a pod of that revision (Prometheus relabels them itself, from the labels Kubernetes's
 * service discovery would hand it), and a stand-in kubelet serves cAdvisor's CPU counter for each of those
 * containers, read from the process's own /proc.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ExecutionContext } from 'ava';
import { knativePodLabels } from './monitoring';
import { statFields } from './processes';
import type { Obj } from './manifests';

/** One pod of a revision, as the tests run it. */
export interface RevisionPod {
  /** The Knative Service, rendered. */
  service: Obj;
  revision: string;
  /** The pod's name as Knative's Deployment makes it: `<revision>-deployment-<replicaset>-<pod>`. */
  pod: string;
  /** `host:port` where the function answers. */
  address: string;
  /** The function's process, whose CPU the stand-in kubelet reports. */
  pid(): number;
}

/** The name a pod of `revision` gets (Knative names the Deployment `<revision>-deployment`, names.go). */
export function podName(revision: string): string {
  return `${revision}-deployment-5d8f7c9b4-x7k2p`;
}

/**
 * The scrape job prometheus-operator makes of the PodMonitor's endpoint (pkg/prometheus/promcfg.go,
 * generatePodMonitorConfig): the pod's namespace, container and name as labels, `job` and `endpoint`, then
 * the PodMonitor's own relabelings, here applied by Prometheus to static targets that carry the labels
 * Kubernetes's service discovery gives a pod (`__meta_kubernetes_*`, dropped after relabeling).
 */
export function podMonitorJob(podMonitor: Obj, pods: RevisionPod[], scrapeInterval: string): Obj {
  const endpoint = podMonitor.spec.podMetricsEndpoints[0] as Obj;
  return {
    job_name: `podMonitor/${podMonitor.metadata.namespace}/${podMonitor.metadata.name}/0`,
    scrape_interval: scrapeInterval,
    metrics_path: endpoint.path ?? '/metrics',
    static_configs: pods.map((p) => ({ targets: [p.address], labels: discoveredLabels(p) })),
    relabel_configs: [
      { source_labels: ['__meta_kubernetes_namespace'], target_label: 'namespace' },
      { source_labels: ['__meta_kubernetes_pod_container_name'], target_label: 'container' },
      { source_labels: ['__meta_kubernetes_pod_name'], target_label: 'pod' },
      { target_label: 'job', replacement: `${podMonitor.metadata.namespace}/${podMonitor.metadata.name}` },
      { target_label: 'endpoint', replacement: endpoint.port },
      ...((endpoint.relabelings ?? []) as Obj[]).map(asPrometheusRelabeling),
    ],
  };
}

/** What Kubernetes's pod discovery labels a target of this pod with: its namespace, name, container and Knative's pod labels. */
function discoveredLabels(pod: RevisionPod): Record<string, string> {
  const labels: Record<string, string> = {
    __meta_kubernetes_namespace: pod.service.metadata.namespace,
    __meta_kubernetes_pod_name: pod.pod,
    __meta_kubernetes_pod_container_name: pod.service.spec.template.spec.containers[0].name,
  };
  const generation = Number(/-(\d+)$/.exec(pod.revision)?.[1] ?? 1);
  for (const [key, value] of Object.entries(knativePodLabels(pod.service, generation))) {
    labels[`__meta_kubernetes_pod_label_${key.replace(/[^a-zA-Z0-9_]/g, '_')}`] = value;
  }
  return labels;
}

/** A prometheus-operator relabeling (camelCase) as Prometheus's relabel_config (snake_case, lower-case action). */
function asPrometheusRelabeling(relabeling: Obj): Obj {
  return Object.fromEntries(
    Object.entries(relabeling).map(([key, value]) => [key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`), key === 'action' ? String(value).toLowerCase() : value]),
  );
}

/**
 * A stand-in for the kubelet's cAdvisor endpoint, which kube-prometheus-stack scrapes as job `kubelet`
 * with honor_labels: `container_cpu_usage_seconds_total` for every pod's function container, its CPU
 * seconds read from the process's /proc/<pid>/stat (user and system time of all its threads). Beside
 * it, as cAdvisor has them, the pod's queue-proxy and the pod as a whole (container ""); queue-proxy cannot
 * run here, so its counter is made up, steep on purpose: a query that counted it would judge Knative's
 * sidecar, not our function, and fail every revision.
 */
export async function fakeKubelet(t: ExecutionContext, pods: () => RevisionPod[]): Promise<{ address: string }> {
  const startedAt = Date.now();
  const server = createServer((req, res) => {
    if (req.url !== '/metrics/cadvisor') return void res.writeHead(404).end();
    const queueProxySeconds = ((Date.now() - startedAt) / 1000) * 3;
    const lines = ['# HELP container_cpu_usage_seconds_total Cumulative cpu time consumed in seconds.', '# TYPE container_cpu_usage_seconds_total counter'];
    for (const pod of pods()) {
      const labels = (container: string) => `{container="${container}",namespace="${pod.service.metadata.namespace}",pod="${pod.pod}"}`;
      const functionSeconds = cpuSeconds(pod.pid());
      lines.push(
        `container_cpu_usage_seconds_total${labels(pod.service.spec.template.spec.containers[0].name)} ${functionSeconds}`,
        `container_cpu_usage_seconds_total${labels('queue-proxy')} ${queueProxySeconds}`,
        `container_cpu_usage_seconds_total${labels('')} ${functionSeconds + queueProxySeconds}`,
      );
    }
    res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4' }).end(`${lines.join('\n')}\n`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  return { address: `127.0.0.1:${(server.address() as AddressInfo).port}` };
}

/** The scrape job kube-prometheus-stack makes for the kubelet's cAdvisor endpoint (its kubelet ServiceMonitor, honorLabels: true). */
export function kubeletJob(address: string, scrapeInterval: string): Obj {
  return {
    job_name: 'serviceMonitor/prometheus/kube-prometheus-stack-kubelet/1',
    scrape_interval: scrapeInterval,
    metrics_path: '/metrics/cadvisor',
    honor_labels: true,
    static_configs: [
      {
        targets: [address],
        labels: { job: 'kubelet', service: 'kube-prometheus-stack-kubelet', endpoint: 'https-metrics', node: 'node-1', metrics_path: '/metrics/cadvisor' },
      },
    ],
  };
}

/** USER_HZ: the unit of /proc's CPU times, 100 on Linux. */
const CLOCK_TICKS_PER_SECOND = 100;

/** The CPU seconds a process has used so far, every thread's user and system time. */
export function cpuSeconds(pid: number): number {
  const fields = statFields(pid);
  if (!fields) throw new Error(`no process ${pid} to read the CPU time of`);
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
}
