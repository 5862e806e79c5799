/**
 * Compute resources, offline: what the namespace's pods ask for at the system's worst moment, as the API
 * server would count it against the ResourceQuota after the LimitRange has filled in what a container
 * leaves out. Problems are lines as in ./manifests.ts; an empty list means everything fits.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { projectRoot } from '../../functions/shared/config';
import { instancePodSpec, instances, isCloudNativePgCluster } from './cloudnativepg';
import { isKnativeService, label, podTemplates, scaleBounds, type Manifest, type Obj } from './manifests';

/**
 * Knative's queue-proxy sidecar as a default install leaves it: config-deployment's
 * `queue-sidecar-cpu-request` defaults to 25m, and its memory request and both limits are unset ("the
 * system default is used", i.e. the LimitRange's). knative.dev/docs/serving/configuration/deployment/
 */
export const QUEUE_PROXY: Obj = { name: 'queue-proxy', resources: { requests: { cpu: '25m' } } };
/** Nodes the DaemonSet runs a pod on, for the sums: a small cluster. Each more node adds one pod. */
export const ASSUMED_NODES = 3;
/** Revisions a Knative Service runs during a rollout: the old one at max-scale while the new one scales up. */
const REVISIONS_DURING_ROLLOUT = 2;

/** What the quota can count, in whole units: millicores, bytes, pods. */
export const COUNTED = ['requests.cpu', 'requests.memory', 'limits.cpu', 'limits.memory', 'pods'] as const;
export type Counted = (typeof COUNTED)[number];
export type Amounts = Record<Counted, number>;

const SUFFIXES: Record<string, number> = {
  n: 1e-9, u: 1e-6, m: 1e-3, '': 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40,
};

/** A Kubernetes quantity (`250m`, `1`, `128Mi`, `1e3`) as a number of units. */
export function parseQuantity(quantity: string | number): number {
  const match = /^([+-]?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)(n|u|m|k|M|G|T|Ki|Mi|Gi|Ti)?$/.exec(String(quantity).trim());
  if (!match) throw new Error(`not a Kubernetes quantity: "${quantity}"`);
  return Number(match[1]) * SUFFIXES[match[2] ?? '']!;
}

/** A quantity as the quota counts this resource: millicores for CPU, bytes for memory, pods as they are. */
function units(resource: Counted, quantity: string | number): number {
  const value = parseQuantity(quantity);
  return Math.round(resource.endsWith('.cpu') ? value * 1000 : value);
}

export function formatAmount(resource: Counted, value: number): string {
  if (resource.endsWith('.cpu')) return `${value}m`;
  if (resource.endsWith('.memory')) return `${+(value / 2 ** 20).toFixed(1)}Mi`;
  return String(value);
}

interface ContainerLimits {
  defaultRequest: Obj;
  default: Obj;
  min: Obj;
  max: Obj;
}

/** The Container entry of the namespace's LimitRange, or empty defaults and bounds without one. */
export function containerLimits(manifests: Manifest[]): ContainerLimits {
  const entry: Obj =
    manifests.flatMap((m) => (m.doc.kind === 'LimitRange' ? ((m.doc.spec?.limits ?? []) as Obj[]) : [])).find((limit) => limit.type === 'Container') ?? {};
  // The API server fills in defaultRequest from default where it is missing.
  return { defaultRequest: { ...entry.default, ...entry.defaultRequest }, default: entry.default ?? {}, min: entry.min ?? {}, max: entry.max ?? {} };
}

/**
 * A container's requests and limits once admitted: a request left out becomes its limit (API defaulting),
 * then the LimitRange's defaultRequest; a limit left out becomes the LimitRange's default. Undefined where
 * nothing fills it in (a quota on that resource would then refuse the pod).
 */
export function admittedResources(container: Obj, limits: ContainerLimits): Record<'requests' | 'limits', Record<'cpu' | 'memory', string | undefined>> {
  const resources: Obj = container.resources ?? {};
  const pick = (resource: 'cpu' | 'memory') => ({
    request: resources.requests?.[resource] ?? resources.limits?.[resource] ?? limits.defaultRequest[resource],
    limit: resources.limits?.[resource] ?? limits.default[resource],
  });
  const cpu = pick('cpu');
  const memory = pick('memory');
  return { requests: { cpu: cpu.request, memory: memory.request }, limits: { cpu: cpu.limit, memory: memory.limit } };
}

export interface PodShape {
  /** What the pod is, for the table: `Service/pingpong`, `restore pod (kubectl run)`. */
  what: string;
  manifest?: Manifest;
  at: string;
  /** How many such pods run at the worst moment, and why. */
  count: number;
  why: string;
  spec: Obj;
}

/** Every kind of pod the namespace runs, with how many of each run at once at the worst moment. */
export function worstMomentPods(manifests: Manifest[], root = projectRoot): PodShape[] {
  const pods: PodShape[] = [];
  for (const manifest of manifests) {
    const { doc } = manifest;
    if (isCloudNativePgCluster(doc)) {
      const count = instances(doc);
      pods.push({ what: `Cluster/${doc.metadata?.name}`, manifest, at: '/spec', count, why: `instances ${count}`, spec: instancePodSpec(doc) });
    }
    for (const pod of podTemplates(doc)) {
      const what = `${doc.kind}/${doc.metadata?.name}`;
      if (isKnativeService(doc)) {
        const { max } = scaleBounds(doc);
        // Knative adds queue-proxy to every pod of a revision.
        const spec = { ...pod.spec, containers: [...(pod.spec.containers ?? []), QUEUE_PROXY] };
        pods.push({ what, manifest, at: pod.at, count: REVISIONS_DURING_ROLLOUT * max, why: `max-scale ${max} x ${REVISIONS_DURING_ROLLOUT} revisions during a rollout`, spec });
      } else if (doc.kind === 'DaemonSet') {
        pods.push({ what, manifest, at: pod.at, count: ASSUMED_NODES, why: `one per node, ${ASSUMED_NODES} nodes`, spec: pod.spec });
      } else if (doc.kind === 'CronJob') {
        pods.push({ what, manifest, at: pod.at, count: 1, why: 'one Job at a time (concurrencyPolicy: Forbid)', spec: pod.spec });
      } else {
        const replicas = Number(doc.spec?.replicas ?? 1);
        pods.push({ what, manifest, at: pod.at, count: replicas, why: `replicas ${replicas}`, spec: pod.spec });
      }
    }
  }
  const restore = restoreOneLiner(root);
  if (restore) pods.push({ what: 'restore pod (kubectl run)', at: restore.file, count: 1, why: 'a restore, by hand', spec: restore.spec });
  return pods;
}

/** Where the restore one-liner is documented. */
export const RESTORE_DOC = 'docs/backups.md';

/** The pod spec of the `kubectl run postgres-restore` one-liner in RESTORE_DOC, and its image: the StatefulSet's, the first. */
export function restoreOneLiner(root = projectRoot): { file: string; image: string; spec: Obj } | undefined {
  return restoreOneLiners(root)[0];
}

/** Every such one-liner in RESTORE_DOC: the StatefulSet's, then CloudNativePG's. */
export function restoreOneLiners(root = projectRoot): { file: string; image: string; spec: Obj }[] {
  const text = readFileSync(path.join(root, RESTORE_DOC), 'utf8');
  return [...text.matchAll(/kubectl -n exercises run postgres-restore [^\n]*--image=(\S+) --overrides='([^']+)'/g)].map((found) => ({
    file: RESTORE_DOC,
    image: found[1]!,
    spec: (JSON.parse(found[2]!) as Obj).spec,
  }));
}

/** What one pod counts against the quota: per resource the larger of its biggest init container and its containers' sum. */
export function podAmounts(spec: Obj, limits: ContainerLimits): Partial<Amounts> {
  const amounts: Partial<Amounts> = { pods: 1 };
  for (const resource of COUNTED.filter((r) => r !== 'pods')) {
    const [kind, name] = resource.split('.') as ['requests' | 'limits', 'cpu' | 'memory'];
    const value = (container: Obj) => {
      const quantity = admittedResources(container, limits)[kind][name];
      return quantity === undefined ? undefined : units(resource, quantity);
    };
    const init = ((spec.initContainers ?? []) as Obj[]).map(value);
    const main = ((spec.containers ?? []) as Obj[]).map(value);
    if ([...init, ...main].some((v) => v === undefined)) continue;
    amounts[resource] = Math.max(0, ...(init as number[]), (main as number[]).reduce((a, b) => a + b, 0));
  }
  return amounts;
}

export interface Row {
  what: string;
  count: number;
  why: string;
  each: Partial<Amounts>;
}

/** One row per kind of pod, and the totals: the arithmetic of docs/resources.md. */
export function worstMoment(manifests: Manifest[], root = projectRoot): { rows: Row[]; total: Amounts } {
  const limits = containerLimits(manifests);
  const rows = worstMomentPods(manifests, root).map((pod) => ({ what: pod.what, count: pod.count, why: pod.why, each: podAmounts(pod.spec, limits) }));
  const total = Object.fromEntries(COUNTED.map((r) => [r, rows.reduce((sum, row) => sum + row.count * (row.each[r] ?? 0), 0)])) as Amounts;
  return { rows, total };
}

/** The table in docs/resources.md, as these manifests make it. */
export function worstMomentTable(manifests: Manifest[], root = projectRoot): string {
  const { rows, total } = worstMoment(manifests, root);
  const cell = (r: Counted, v: number | undefined) => (v === undefined ? '?' : formatAmount(r, v));
  const lines = [
    '| pods | how many, why | CPU requests | memory requests | CPU limits | memory limits |',
    '| --- | --- | ---: | ---: | ---: | ---: |',
    ...rows.map((row) => {
      const each = COUNTED.filter((r) => r !== 'pods').map((r) => `${row.count} x ${cell(r, row.each[r])}`);
      return `| ${row.what} | ${row.count}: ${row.why} | ${each.join(' | ')} |`;
    }),
    `| **total** | ${total.pods} pods | ${COUNTED.filter((r) => r !== 'pods').map((r) => `**${formatAmount(r, total[r])}**`).join(' | ')} |`,
  ];
  return lines.join('\n');
}

/**
 * The quota against the worst moment: every pod admissible (each resource the quota counts is set or
 * defaulted in every container), the sums within `spec.hard`, and every container within the
 * LimitRange's bounds.
 */
export function quotaProblems(manifests: Manifest[], root = projectRoot): string[] {
  const problems: string[] = [];
  const quotas = manifests.filter((m) => m.doc.kind === 'ResourceQuota');
  if (quotas.length !== 1) return [`knative/: expected one ResourceQuota, found ${quotas.length}`];
  const quota = quotas[0]!;
  const hard: Obj = quota.doc.spec?.hard ?? {};
  const limits = containerLimits(manifests);
  const pods = worstMomentPods(manifests, root);
  if (!pods.some((pod) => pod.what.startsWith('restore pod'))) problems.push(`${RESTORE_DOC}: no \`kubectl -n exercises run postgres-restore\` one-liner to count`);

  for (const pod of pods) {
    const where = pod.manifest ? `${label(pod.manifest)}: ${pod.at}` : `${pod.at}: ${pod.what}`;
    for (const container of [...((pod.spec.initContainers ?? []) as Obj[]), ...((pod.spec.containers ?? []) as Obj[])]) {
      const admitted = admittedResources(container, limits);
      for (const resource of Object.keys(hard).filter((r) => r !== 'pods')) {
        const [kind, name] = resource.split('.') as ['requests' | 'limits', 'cpu' | 'memory'];
        if (admitted[kind]?.[name] === undefined) problems.push(`${where}: container ${container.name}: no ${resource} and no LimitRange default: the quota would refuse the pod`);
      }
      for (const name of ['cpu', 'memory'] as const) {
        for (const kind of ['requests', 'limits'] as const) {
          const quantity = admitted[kind][name];
          if (quantity === undefined) continue;
          const value = parseQuantity(quantity);
          if (limits.min[name] !== undefined && value < parseQuantity(limits.min[name])) problems.push(`${where}: container ${container.name}: ${kind}.${name} ${quantity} is below the LimitRange's min ${limits.min[name]}`);
          if (limits.max[name] !== undefined && value > parseQuantity(limits.max[name])) problems.push(`${where}: container ${container.name}: ${kind}.${name} ${quantity} is above the LimitRange's max ${limits.max[name]}`);
        }
      }
    }
  }

  const { total } = worstMoment(manifests, root);
  for (const [resource, allowed] of Object.entries(hard)) {
    if (!(COUNTED as readonly string[]).includes(resource)) {
      problems.push(`${label(quota)}: /spec/hard/${resource}: not a resource this check counts; add it to test/helpers/resources.ts`);
      continue;
    }
    const needed = total[resource as Counted];
    const room = units(resource as Counted, allowed);
    if (needed > room) {
      problems.push(`${label(quota)}: /spec/hard/${resource}: the worst moment needs ${formatAmount(resource as Counted, needed)}, the quota allows ${allowed}`);
    }
  }
  return problems;
}
