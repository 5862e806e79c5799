/**
 * CloudNativePG's Cluster, offline (db/cloudnativepg/, docs/cloudnativepg.md): what the operator makes from
 * one, so that the checks of ./manifests.ts, ./resources.ts and ./cluster-agreement.ts can follow references
 * to it and count its pods, and the rules our Cluster keeps for pingpong's promise. Facts from
 * cloudnative-pg/cloudnative-pg v1.30.0, file named at each. Problems are lines as in ./manifests.ts.
 */
import type { Manifest, Obj } from './manifests';

/** The component that swaps db/'s StatefulSet for a Cluster. */
export const COMPONENT_DIR = 'db/cloudnativepg';

export function isCloudNativePgCluster(doc: Obj): boolean {
  return doc.apiVersion === 'postgresql.cnpg.io/v1' && doc.kind === 'Cluster';
}

/** The port every instance serves Postgres on (pkg/postgres: ServerPort), behind each of the Services below. */
export const POSTGRES_PORT = 5432;
/** The exporter's port on every instance and its name (pkg/specs/pods.go, url.PostgresMetricsPort). */
export const METRICS_PORT = { name: 'metrics', containerPort: 9187 };
/**
 * The keys of the Secret `<cluster>-app` the operator writes for the application user (pkg/specs/secrets.go,
 * CreateSecret). `host` is `<cluster>-rw`, `uri` has the host with the namespace.
 */
export const APP_SECRET_KEYS = ['username', 'user', 'password', 'dbname', 'host', 'port', 'pgpass', 'uri', 'jdbc-uri', 'fqdn-uri', 'fqdn-jdbc-uri'];

/**
 * The Services and Secrets the operator makes for each Cluster among `manifests`, as manifests (file: the
 * Cluster's), so that a reference to them can be followed: `<name>-rw` (the primary), `-ro` (standbys) and `-r`
 * (any instance), each on 5432 (api/v1/cluster_funcs.go), and the application user's `<name>-app`
 * (internal/controller/cluster_create.go) unless bootstrap.initdb names a Secret of its own.
 */
export function operatorMadeObjects(manifests: Manifest[]): Manifest[] {
  return manifests
    .filter((m) => isCloudNativePgCluster(m.doc))
    .flatMap(({ file, doc }) => {
      const metadata = (suffix: string) => ({ name: `${doc.metadata?.name}-${suffix}`, namespace: doc.metadata?.namespace });
      const services = ['rw', 'ro', 'r'].map((suffix) => ({
        file,
        doc: { apiVersion: 'v1', kind: 'Service', metadata: metadata(suffix), spec: { ports: [{ name: 'postgres', port: POSTGRES_PORT }] } },
      }));
      const ownSecret = doc.spec?.bootstrap?.initdb?.secret?.name;
      const appSecret = { apiVersion: 'v1', kind: 'Secret', metadata: metadata('app'), stringData: Object.fromEntries(APP_SECRET_KEYS.map((key) => [key, ''])) };
      return [...services, ...(ownSecret ? [] : [{ file, doc: appSecret }])];
    });
}

/**
 * The pod each instance runs, as far as the quota counts it: the bootstrap-controller init container and the
 * postgres container, both with the Cluster's `resources` (pkg/specs/pods.go, containers.go). The Jobs that
 * create an instance (initdb, join) have the same resources and run only while that instance has no pod.
 */
export function instancePodSpec(cluster: Obj): Obj {
  const resources = cluster.spec?.resources ?? {};
  return {
    initContainers: [{ name: 'bootstrap-controller', resources }],
    containers: [{ name: 'postgres', resources, ports: [{ name: 'postgresql', containerPort: POSTGRES_PORT }, METRICS_PORT] }],
  };
}

/** The labels the operator puts on an instance's pod (pkg/utils/labels_annotations.go). */
export function instancePodLabels(cluster: Obj, serial: number): Record<string, string> {
  const name = String(cluster.metadata?.name);
  return { 'cnpg.io/cluster': name, 'cnpg.io/instanceName': `${name}-${serial}`, 'cnpg.io/podRole': 'instance', 'cnpg.io/instanceRole': serial === 1 ? 'primary' : 'replica' };
}

export function instances(cluster: Obj): number {
  return Number(cluster.spec?.instances ?? 1);
}

/**
 * pingpong's promise (an acknowledged ping is never lost) as the Cluster must keep it: every commit waits for
 * a standby (synchronous, `required` rather than `preferred`), a standby can be lost without stopping commits
 * (instances beyond the synchronous ones plus the primary), the copies sit on different nodes, a failover
 * promotes only a standby sure to hold every acknowledged commit.
 */
export function clusterProblems(manifest: Manifest): string[] {
  const { doc } = manifest;
  if (!isCloudNativePgCluster(doc)) return [];
  const problems: string[] = [];
  const report = (at: string, message: string) => problems.push(`${manifest.file} Cluster/${doc.metadata?.name}: ${at}: ${message}`);
  const synchronous: Obj | undefined = doc.spec?.postgresql?.synchronous;
  const at = '/spec/postgresql/synchronous';
  if (!synchronous) {
    report(at, 'missing: without a synchronous standby a failover can lose acknowledged pings (test/chaos/failover.test.ts)');
  } else {
    const number = Number(synchronous.number ?? 0);
    if (number < 1) report(`${at}/number`, `must be at least 1, got ${synchronous.number}`);
    if ((synchronous.dataDurability ?? 'required') !== 'required') report(`${at}/dataDurability`, `must be required: "${synchronous.dataDurability}" goes on committing without a standby, and a failover then loses those commits`);
    if (synchronous.failoverQuorum !== true) report(`${at}/failoverQuorum`, 'must be true: without it a failover may promote a standby that lacks acknowledged commits');
    if (instances(doc) < number + 2) report('/spec/instances', `${instances(doc)} instances with ${number} synchronous standby(s): losing one standby would stop every commit; run at least ${number + 2}`);
  }
  const affinity: Obj = doc.spec?.affinity ?? {};
  if (affinity.enablePodAntiAffinity === false || affinity.podAntiAffinityType !== 'required') {
    report('/spec/affinity', 'podAntiAffinityType must be required (and enablePodAntiAffinity not false): two instances on one node make one node\'s loss lose both copies');
  }
  return problems;
}
