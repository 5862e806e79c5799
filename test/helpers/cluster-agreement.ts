/**
 * The manifests against what runs in them: the functions' code, the local runner's files, Postgres's
 * connection limit and image, and the house rules for containers. Problems are lines as in
 * ./manifests.ts; an empty list means they agree.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { projectRoot } from '../../functions/shared/config';
import { isCloudNativePgCluster } from './cloudnativepg';
import { containers, isKnativeService, label, podTemplates, scaleBounds, type Manifest, type Obj } from './manifests';

// ---------------------------------------------------------------------------------------------------
// Functions

/** Read by functions-framework, not by our code. */
const FRAMEWORK_ENV = ['FUNCTION_TARGET', 'NODE_ENV'];
/** Read by a function, but set only by `npm run demo` (scripts/start.ts): in the cluster they would label Pixabay's images as made up, or worse. */
export const DEMO_ONLY_ENV = ['DEMO_IMAGES'];
/** postgres.js reads these when it gets no URL (docs/configuration.md). */
const LIBPQ_ENV = ['PGHOST', 'PGPORT', 'PGDATABASE', 'PGUSER', 'PGPASSWORD'];

/** The function a Knative Service runs: its FUNCTION_TARGET. */
export function functionTarget(doc: Obj): string | undefined {
  const env: Obj[] = doc.spec?.template?.spec?.containers?.[0]?.env ?? [];
  return env.find((v) => v.name === 'FUNCTION_TARGET')?.value;
}

/**
 * A Knative Service against the function it runs: the function exists and is registered, every
 * variable the manifest sets is one the function reads (and none is the demo's), and its probe asks a
 * path it serves.
 */
export function functionProblems(manifest: Manifest, manifests: Manifest[], root = projectRoot): string[] {
  const { doc } = manifest;
  if (!isKnativeService(doc)) return [];
  const problems: string[] = [];
  const report = (at: string, message: string) => problems.push(`${label(manifest)}: ${at}: ${message}`);
  const at = '/spec/template/spec/containers/0';
  const container: Obj = doc.spec?.template?.spec?.containers?.[0] ?? {};
  const target = functionTarget(doc);
  if (!target) return [`${label(manifest)}: ${at}/env: FUNCTION_TARGET is not set`];

  const entry = path.join(root, 'functions', target, 'index.ts');
  if (!existsSync(entry)) return [`${label(manifest)}: ${at}/env: FUNCTION_TARGET ${target}: there is no functions/${target}/index.ts`];
  const source = readFileSync(entry, 'utf8');
  if (!new RegExp(`\\bhttp\\(\\s*'${target}'`).test(source)) report(`${at}/env`, `functions/${target}/index.ts does not register http('${target}', ...)`);
  if (!readFileSync(path.join(root, 'functions', 'index.cts'), 'utf8').includes(`require('./${target}')`)) {
    report(`${at}/env`, `functions/index.cts does not load ./${target}`);
  }

  const read = envVarsRead(entry);
  const set = [
    ...((container.env ?? []) as Obj[]).map((v, i) => ({ name: v.name as string, at: `${at}/env/${i}` })),
    ...((container.envFrom ?? []) as Obj[]).flatMap((source, i) =>
      sourceKeys(source, manifests).map((name) => ({ name, at: `${at}/envFrom/${i}` })),
    ),
  ];
  for (const { name, at: where } of set) {
    if (DEMO_ONLY_ENV.includes(name)) report(where, `${name} is for npm run demo on one machine, never for the cluster`);
    else if (!FRAMEWORK_ENV.includes(name) && !read.has(name)) report(where, `${name} is read by nothing functions/${target} loads`);
  }

  for (const probe of ['readinessProbe', 'livenessProbe', 'startupProbe']) {
    const get = container[probe]?.httpGet;
    if (get?.path && !source.includes(`'${get.path}'`)) report(`${at}/${probe}/httpGet/path`, `functions/${target} serves no ${get.path}`);
    if (get?.port !== undefined && get.port !== container.ports?.[0]?.containerPort) report(`${at}/${probe}/httpGet/port`, 'must be left out: Knative probes the container port');
  }
  return problems;
}

/**
 * What each function must be given in the cluster, where its local defaults (localhost, no key, no
 * message) would be wrong: the names fixed across the project.
 */
export const CLUSTER_ENV: Record<string, string[]> = {
  pingpong: ['PGHOST', 'PGUSER', 'PGPASSWORD', 'PGDATABASE'],
  'log-output': ['PINGPONG_URL', 'ENV_FILE'],
  'image-proxy': ['API_KEY'],
};

/** Each Knative Service gets, from env or envFrom, every variable CLUSTER_ENV lists for its function. */
export function clusterEnvProblems(manifests: Manifest[]): string[] {
  return manifests
    .filter((m) => isKnativeService(m.doc))
    .flatMap((manifest) => {
      const target = functionTarget(manifest.doc);
      const container: Obj = manifest.doc.spec?.template?.spec?.containers?.[0] ?? {};
      const given = new Set([
        ...((container.env ?? []) as Obj[]).map((v) => v.name as string),
        ...((container.envFrom ?? []) as Obj[]).flatMap((source) => sourceKeys(source, manifests)),
      ]);
      if (!target || !CLUSTER_ENV[target]) return [`${label(manifest)}: /spec/template/spec/containers/0/env: FUNCTION_TARGET ${target ?? '(unset)'} is not a function this project deploys`];
      return CLUSTER_ENV[target].filter((name) => !given.has(name)).map((name) => `${label(manifest)}: /spec/template/spec/containers/0: ${name} is not set, by env or by envFrom`);
    });
}

// ---------------------------------------------------------------------------------------------------
// Probes

export interface ProbePaths {
  /** Liveness: answers from the process alone, never from a dependency (test/integration/probes.test.ts proves it). */
  alive: string;
  /** Readiness: what a pod must have before it gets traffic. */
  ready: string;
  /** The start-up gate, where start-up can be slow. */
  startup?: string;
  /** A variable that sets how long the `ready`/`startup` path may wait for a dependency, and its default. */
  waits?: { variable: string; defaultMs: number };
}

/** What each function's probes ask: docs/updating.md explains why. */
export const PROBES: Record<string, ProbePaths> = {
  pingpong: { alive: '/livez', ready: '/healthz' },
  // /healthz answers 503 until pingpong has answered once, then 200 for good: the course's rule as a gate.
  'log-output': { alive: '/livez', ready: '/healthz', startup: '/healthz', waits: { variable: 'PINGPONG_TIMEOUT_MS', defaultMs: 2000 } },
  // Ready means up: the only thing it could ask is Pixabay, and a missing key must still reach users as a 503.
  'image-proxy': { alive: '/livez', ready: '/livez' },
};

/**
 * Each Knative Service probes what PROBES says: liveness on the path that asks nothing else, readiness
 * and start-up on theirs, and a probe on a path that waits for a dependency waits longer than the
 * function does, so that it sees the function's 503 and reason rather than timing out itself.
 */
export function probeProblems(manifests: Manifest[]): string[] {
  return manifests
    .filter((m) => isKnativeService(m.doc))
    .flatMap((manifest) => {
      const problems: string[] = [];
      const at = '/spec/template/spec/containers/0';
      const report = (where: string, message: string) => problems.push(`${label(manifest)}: ${at}/${where}: ${message}`);
      const target = functionTarget(manifest.doc);
      const expected = target ? PROBES[target] : undefined;
      if (!expected) return [`${label(manifest)}: ${at}/env: FUNCTION_TARGET ${target ?? '(unset)'} has no entry in PROBES`];
      const container: Obj = manifest.doc.spec?.template?.spec?.containers?.[0] ?? {};
      const env: Obj[] = container.env ?? [];
      const waitMs = expected.waits ? Number(env.find((v) => v.name === expected.waits!.variable)?.value ?? expected.waits.defaultMs) : 0;
      const wanted: [string, string | undefined][] = [['livenessProbe', expected.alive], ['readinessProbe', expected.ready], ['startupProbe', expected.startup]];
      for (const [probe, path] of wanted) {
        const actual = container[probe]?.httpGet?.path;
        if (path === undefined) {
          if (container[probe]) report(probe, `PROBES gives ${target} none: add it there, and to docs/updating.md, first`);
          continue;
        }
        if (actual !== path) report(`${probe}/httpGet/path`, `must be ${path}, got ${actual ?? 'no httpGet probe'}`);
        else if (expected.waits && path !== expected.alive && (container[probe].timeoutSeconds ?? 1) * 1000 <= waitMs) {
          report(`${probe}/timeoutSeconds`, `${container[probe].timeoutSeconds ?? 1} s is not longer than ${expected.waits.variable} (${waitMs} ms)`);
        }
      }
      return problems;
    });
}

/** The keys an envFrom source brings in, from the Secret, SealedSecret or ConfigMap it names. */
function sourceKeys(source: Obj, manifests: Manifest[]): string[] {
  const name = source.secretRef?.name ?? source.configMapRef?.name;
  const kind = source.secretRef ? ['Secret', 'SealedSecret'] : ['ConfigMap'];
  const found = manifests.find((m) => kind.includes(m.doc.kind) && m.doc.metadata?.name === name)?.doc;
  if (!found) return [];
  if (found.kind === 'SealedSecret') return Object.keys({ ...found.spec?.encryptedData, ...found.spec?.template?.data });
  return Object.keys({ ...found.data, ...found.stringData, ...found.binaryData });
}

/** Environment variables read by `entry` and every module of ours it imports, followed transitively. */
export function envVarsRead(entry: string): Set<string> {
  const names = new Set<string>();
  const seen = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    const source = readFileSync(file, 'utf8');
    for (const pattern of [/\benv\.([A-Z][A-Z0-9_]*)\b/g, /\benv\[\s*['"]([A-Z][A-Z0-9_]*)['"]\s*\]/g, /\(\s*env\s*,\s*['"]([A-Z][A-Z0-9_]*)['"]/g]) {
      for (const [, name] of source.matchAll(pattern)) names.add(name!);
    }
    for (const [, specifier] of source.matchAll(/(?:from\s+|require\()\s*'([^']+)'/g)) {
      if (specifier === 'postgres') LIBPQ_ENV.forEach((name) => names.add(name));
      if (!specifier!.startsWith('.')) continue;
      const base = path.resolve(path.dirname(file), specifier!);
      const resolved = [`${base}.ts`, path.join(base, 'index.ts')].find((candidate) => existsSync(candidate));
      if (resolved) visit(resolved);
    }
  };
  visit(entry);
  return names;
}

// ---------------------------------------------------------------------------------------------------
// Postgres

/** Room left for the superuser, psql sessions and the backup job. */
const SPARE_CONNECTIONS = 10;

function postgresStatefulSets(manifests: Manifest[]): { manifest: Manifest; at: string; container: Obj }[] {
  return manifests
    .filter((m) => m.doc.kind === 'StatefulSet')
    .flatMap((manifest) => podTemplates(manifest.doc).flatMap((pod) => containers(pod).map((c) => ({ manifest, ...c }))))
    .filter(({ container }) => imageRepository(container.image) === 'postgres');
}

/** `postgres` for `postgres:18.1`, `docker.io/library/postgres@sha256:...` and the like. */
export function imageRepository(image: string | undefined): string {
  const name = String(image ?? '').split('@')[0]!.replace(/:[^/:]+$/, '');
  return name.replace(/^(docker\.io\/)?(library\/)?/, '');
}

export function imageTag(image: string | undefined): string | undefined {
  return /:([^/:@]+)(@|$)/.exec(String(image ?? ''))?.[1];
}

/**
 * Postgres as the functions need it: a pinned image whose data lands on the volume, an explicit
 * max_connections that pingpong's pods cannot exhaust even during a rollout, and a backup job that
 * runs the very same image (so pg_dump matches the server). The server is db/'s StatefulSet, or a
 * CloudNativePG Cluster in its place (db/cloudnativepg/), whose volumes and probes are the operator's.
 */
export function postgresProblems(manifests: Manifest[]): string[] {
  const problems: string[] = [];
  const report = (manifest: Manifest, at: string, message: string) => problems.push(`${label(manifest)}: ${at}: ${message}`);
  const statefulSets = postgresStatefulSets(manifests);
  const clusters = manifests.filter((m) => isCloudNativePgCluster(m.doc));
  if (statefulSets.length + clusters.length !== 1) {
    return [`db/: expected one Postgres server (a StatefulSet or a CloudNativePG Cluster), found ${statefulSets.length} StatefulSet(s) and ${clusters.length} Cluster(s)`];
  }
  const server = statefulSets.length ? statefulSetServer(statefulSets[0]!, report) : clusterServer(clusters[0]!, report);

  const maxConnections = server.maxConnections;
  if (!maxConnections) report(server.manifest, server.maxConnectionsAt, `set max_connections explicitly (${server.howToSet}): pool sizes are checked against it`);
  for (const service of manifests.filter((m) => isKnativeService(m.doc))) {
    const env: Obj[] = service.doc.spec?.template?.spec?.containers?.[0]?.env ?? [];
    if (!env.some((v) => v.name === 'PGHOST')) continue;
    const pool = Number(env.find((v) => v.name === 'DB_POOL_SIZE')?.value ?? 10);
    const { max } = scaleBounds(service.doc);
    if (!max) {
      report(service, '/spec/template/metadata/annotations', 'a Postgres client needs a max-scale, or its pods can exhaust max_connections');
    } else if (maxConnections && 2 * max * pool + SPARE_CONNECTIONS > maxConnections) {
      // During a rollout the old revision's pods and the new one's hold connections at the same time.
      report(service, '/spec/template/metadata/annotations', `2 x max-scale ${max} x DB_POOL_SIZE ${pool} + ${SPARE_CONNECTIONS} spare exceeds max_connections ${maxConnections}`);
    }
  }

  for (const job of manifests.filter((m) => m.doc.kind === 'CronJob' && m.file.startsWith('db/'))) {
    for (const pod of podTemplates(job.doc)) {
      for (const { at: where, container: c } of containers(pod)) {
        if (c.image !== server.image) report(job, `${where}/image`, `must be the Postgres ${server.manifest.doc.kind}'s image ${server.image}, got ${c.image}`);
      }
    }
  }
  return problems;
}

interface PostgresServer {
  manifest: Manifest;
  image: string;
  maxConnections: number;
  maxConnectionsAt: string;
  howToSet: string;
}
type Report = (manifest: Manifest, at: string, message: string) => void;

function statefulSetServer({ manifest, at, container }: ReturnType<typeof postgresStatefulSets>[number], report: Report): PostgresServer {
  const tag = imageTag(container.image);
  const major = Number(/^(\d+)/.exec(tag ?? '')?.[1]);
  if (!tag || tag === 'latest' || !major) report(manifest, `${at}/image`, `pin a version tag, got ${container.image}`);
  // Version 18 moved PGDATA to /var/lib/postgresql/<major>/docker and the image's VOLUME to /var/lib/postgresql.
  const dataDir = major >= 18 ? '/var/lib/postgresql' : '/var/lib/postgresql/data';
  const claims = new Set(((manifest.doc.spec?.volumeClaimTemplates ?? []) as Obj[]).map((c) => c.metadata?.name));
  const dataMount = ((container.volumeMounts ?? []) as Obj[]).find((m) => claims.has(m.name));
  if (dataMount?.mountPath !== dataDir) {
    report(manifest, `${at}/volumeMounts`, `${container.image} keeps its data under ${dataDir}: mount a volumeClaimTemplate there (found ${dataMount?.mountPath ?? 'none'})`);
  }
  for (const probe of ['readinessProbe', 'livenessProbe']) {
    if (!JSON.stringify(container[probe]?.exec?.command ?? '').includes('pg_isready')) report(manifest, `${at}/${probe}`, 'must run pg_isready');
  }
  const args = ((container.args ?? []) as string[]).join(' ');
  return {
    manifest,
    image: container.image,
    maxConnections: Number(/max_connections=(\d+)/.exec(args)?.[1]),
    maxConnectionsAt: `${at}/args`,
    howToSet: '"-c", "max_connections=N"',
  };
}

/** The primary's max_connections is what pingpong's pools share: they reach it alone, through `<cluster>-rw`. */
function clusterServer(manifest: Manifest, report: Report): PostgresServer {
  const image = String(manifest.doc.spec?.imageName ?? '');
  const tag = imageTag(image);
  if (!tag || tag === 'latest') report(manifest, '/spec/imageName', `pin a version tag, got ${image || 'the operator\'s default'}`);
  return {
    manifest,
    image,
    maxConnections: Number(manifest.doc.spec?.postgresql?.parameters?.max_connections),
    maxConnectionsAt: '/spec/postgresql/parameters',
    howToSet: 'max_connections: "N"',
  };
}

// ---------------------------------------------------------------------------------------------------
// Files

/**
 * ENV_FILE must point at a key of a ConfigMap or Secret mounted in its container, and so must any
 * variable naming a path inside such a mount. (A ConfigMap holding a file of the tree is generated from
 * it by kustomize, so there is no copy to keep equal.)
 */
export function fileProblems(manifests: Manifest[]): string[] {
  const problems: string[] = [];
  const report = (manifest: Manifest, at: string, message: string) => problems.push(`${label(manifest)}: ${at}: ${message}`);
  for (const manifest of manifests) {
    for (const pod of podTemplates(manifest.doc)) {
      for (const { at, container } of containers(pod)) {
        ((container.env ?? []) as Obj[]).forEach((variable, i) => {
          if (typeof variable.value !== 'string') return;
          const where = mountedFile(variable.value, container, pod.spec, manifests);
          const mustBeMounted = variable.name === 'ENV_FILE' || where !== 'no ConfigMap or Secret is mounted above it';
          if (mustBeMounted && where !== 'ok') report(manifest, `${at}/env/${i}`, `${variable.name}=${variable.value}: ${where}`);
        });
      }
    }
  }
  return problems;
}

/** 'ok' when `file` is a key of a ConfigMap or Secret mounted in `container`, else why not. */
function mountedFile(file: string, container: Obj, podSpec: Obj, manifests: Manifest[]): string {
  for (const mount of (container.volumeMounts ?? []) as Obj[]) {
    const prefix = `${String(mount.mountPath).replace(/\/+$/, '')}/`;
    if (!file.startsWith(prefix)) continue;
    const volume = ((podSpec.volumes ?? []) as Obj[]).find((v) => v.name === mount.name);
    const source = volume?.configMap ?? volume?.secret;
    if (!source) continue;
    const name = source.name ?? source.secretName;
    const relative = path.posix.join(mount.subPath ?? '', file.slice(prefix.length));
    const items = source.items as Obj[] | undefined;
    const key = items ? items.find((item) => item.path === relative)?.key : relative;
    const kinds = volume?.configMap ? ['ConfigMap'] : ['Secret', 'SealedSecret'];
    const keys = manifests
      .filter((m) => m.doc.metadata?.name === name && kinds.includes(m.doc.kind))
      .flatMap((m) => Object.keys({ ...m.doc.data, ...m.doc.stringData, ...m.doc.spec?.encryptedData }));
    return key !== undefined && keys.includes(key) ? 'ok' : `${name} has no key for ${relative}`;
  }
  return 'no ConfigMap or Secret is mounted above it';
}

// ---------------------------------------------------------------------------------------------------
// House rules for containers

const SECRET_LOOKING = /PASSWORD|SECRET|TOKEN|API_KEY|CREDENTIAL/;

/**
 * Every container: CPU and memory requests, a memory limit, never root, no privilege escalation, no
 * literal secrets. Knative Services also get a CPU limit and the full hardening the issue asks for: a
 * read-only root filesystem, all capabilities dropped and the runtime's default seccomp profile.
 */
export function containerPolicyProblems(manifests: Manifest[]): string[] {
  const problems: string[] = [];
  for (const manifest of manifests) {
    const report = (at: string, message: string) => problems.push(`${label(manifest)}: ${at}: ${message}`);
    for (const pod of podTemplates(manifest.doc)) {
      const podContext: Obj = pod.spec.securityContext ?? {};
      for (const { at, container } of containers(pod)) {
        const context: Obj = container.securityContext ?? {};
        const effective = (key: string) => context[key] ?? podContext[key];
        const knative = isKnativeService(manifest.doc);
        for (const kind of ['requests', 'limits']) {
          for (const resource of ['cpu', 'memory']) {
            // A CPU limit only throttles a batch job; a function's keeps one pod from starving its neighbours.
            if (kind === 'limits' && resource === 'cpu' && !knative) continue;
            if (container.resources?.[kind]?.[resource] === undefined) report(`${at}/resources/${kind}/${resource}`, 'missing');
          }
        }
        if (effective('runAsNonRoot') !== true) report(`${at}/securityContext/runAsNonRoot`, 'must be true');
        if (effective('runAsUser') === 0) report(`${at}/securityContext/runAsUser`, 'must not be 0');
        if (context.allowPrivilegeEscalation !== false) report(`${at}/securityContext/allowPrivilegeEscalation`, 'must be false');
        // Nothing we run needs to change its own image: what it writes goes to a volume, so an intruder cannot plant files either.
        if (context.readOnlyRootFilesystem !== true) report(`${at}/securityContext/readOnlyRootFilesystem`, 'must be true');
        if (knative) {
          if (!((context.capabilities?.drop ?? []) as string[]).includes('ALL')) report(`${at}/securityContext/capabilities/drop`, 'must drop ALL');
          if (effective('seccompProfile')?.type !== 'RuntimeDefault') report(`${at}/securityContext/seccompProfile`, 'must be RuntimeDefault');
        }
        ((container.env ?? []) as Obj[]).forEach((variable, i) => {
          if (SECRET_LOOKING.test(variable.name) && variable.value !== undefined) report(`${at}/env/${i}`, `${variable.name} must come from a Secret, not a literal value`);
        });
      }
    }
  }
  return problems;
}
