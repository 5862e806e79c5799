/**
 * `npm run seal`: KEY=VALUE lines in (a file, or stdin), a SealedSecret manifest out, sealed for the
 * sealed-secrets controller's certificate, without kubeseal. With `--environment`, every Secret that
 * environment deploys, from one file (.env), written into its folder. Mistakes get one line and exit code 2.
 */
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { EnvironmentError, readEnvironment } from './environments';
import { SECRET_KEYS, SealError, checkIdentity, parseKeyValueLines, readControllerKey, sealedSecretYaml, type Scope } from './sealed-secret';

const usage =
  'usage: npm run seal -- --name <secret> [--namespace exercises] [--scope strict|namespace-wide|cluster-wide] ' +
  '[--cert <controller-cert.pem>] [--controller-namespace kube-system] [--controller-name sealed-secrets-controller] ' +
  '[--out <file>] [<KEY=VALUE file>] (no file: reads stdin); ' +
  'or: npm run seal -- --environment <staging|production> [--cert ...] [<KEY=VALUE file>] (no file: .env)';

async function main(argv: string[]): Promise<void> {
  const { values: options, positionals: files } = readOptions(argv);
  if (options.help) return void console.log(usage);
  if (files.length > 1) throw new SealError(`give at most one KEY=VALUE file, got ${files.length}; ${usage}`);
  if (options.environment !== undefined) return sealEnvironment(options.environment, options, files[0]);
  if (!options.name) throw new SealError(`--name is missing; ${usage}`);
  const secret = { name: options.name, namespace: options.namespace ?? 'exercises', scope: options.scope as Scope };
  checkIdentity(secret);

  const publicKey = readControllerKey(...(await certificate(options)));

  const inputFile = files[0] && files[0] !== '-' ? files[0] : undefined;
  const input = inputFile ? readBytes(inputFile) : await readStdin();
  const data = parseKeyValueLines(input, inputFile ?? 'stdin');

  const manifest = sealedSecretYaml(publicKey, secret, data);
  if (options.out) writeFileSync(options.out, manifest);
  else process.stdout.write(manifest);
}

/**
 * Seals each Secret the environment deploys (its `<name>.sealedsecret.yaml` resources) for its namespace,
 * strict scope, from one KEY=VALUE file, and writes each over its file: the placeholder first, then the
 * previous sealing.
 */
async function sealEnvironment(name: string, options: Options, inputFile = '.env'): Promise<void> {
  const fixed = (['name', 'namespace', 'out'] as const).filter((option) => options[option] !== undefined);
  if (fixed.length || options.scope !== 'strict') {
    const given = [...fixed, ...(options.scope !== 'strict' ? ['scope'] : [])].map((option) => `--${option}`).join(', ');
    throw new SealError(`--environment seals every Secret of the environment under its own name and namespace, in strict scope: leave out ${given}`);
  }
  const environment = readEnvironment(name);
  if (environment.sealedSecrets.length === 0) throw new SealError(`${environment.kustomizationFile} deploys no SealedSecret: nothing to seal`);
  const secrets = environment.sealedSecrets.map((secret) => {
    const keys = SECRET_KEYS[secret];
    if (!keys) throw new SealError(`${environment.kustomizationFile} deploys ${secret}.sealedsecret.yaml, a Secret this project does not know (known: ${Object.keys(SECRET_KEYS).join(', ')})`);
    return { secret, keys };
  });
  const publicKey = readControllerKey(...(await certificate(options)));
  const values = parseKeyValueLines(readBytes(inputFile), inputFile);
  for (const { secret, keys } of secrets) {
    const missing = keys.filter((key) => !values.get(key)?.length);
    if (missing.length) throw new SealError(`${inputFile} has no value for ${missing.join(', ')}, which the Secret ${secret} holds; nothing was written`);
  }
  for (const { secret, keys } of secrets) {
    const file = path.join(environment.dir, `${secret}.sealedsecret.yaml`);
    const data = new Map(keys.map((key) => [key, values.get(key)!]));
    writeFileSync(file, sealedSecretYaml(publicKey, { name: secret, namespace: environment.namespace, scope: 'strict' }, data));
    console.log(`sealed ${secret} (${keys.join(', ')}) for the namespace ${environment.namespace}: ${file}`);
  }
}

type Options = ReturnType<typeof readOptions>['values'];

/** The controller's certificate and where it came from: --cert, or fetched from the cluster. */
async function certificate(options: Options): Promise<[pem: string, source: string]> {
  if (options.cert) return [readText(options.cert), options.cert];
  const fetched = await fetchControllerCert(options['controller-namespace'], options['controller-name']);
  return [fetched.pem, fetched.source];
}

function readOptions(argv: string[]) {
  try {
    return parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        name: { type: 'string' },
        namespace: { type: 'string' },
        environment: { type: 'string' },
        scope: { type: 'string', default: 'strict' },
        cert: { type: 'string' },
        out: { type: 'string' },
        // kubeseal's defaults, for the controller installed from its release's controller.yaml
        'controller-namespace': { type: 'string', default: 'kube-system' },
        'controller-name': { type: 'string', default: 'sealed-secrets-controller' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (error) {
    throw new SealError(`${(error as Error).message.split('. ')[0]}; ${usage}`);
  }
}

/**
 * The certificate as `kubeseal --fetch-cert` gets it: from the controller's Service, through the API
 * server's proxy, on the Service's first port. kubectl carries the user's kubeconfig and credentials.
 */
async function fetchControllerCert(namespace: string, name: string): Promise<{ pem: string; source: string }> {
  const howTo =
    'pass --cert <file> with the certificate from `kubeseal --fetch-cert > cert.pem` or ' +
    `\`kubectl get --raw /api/v1/namespaces/${namespace}/services/http:${name}:http/proxy/v1/cert.pem > cert.pem\``;
  try {
    const port = await kubectl(['get', 'service', '--namespace', namespace, name, '-o', 'jsonpath={.spec.ports[0].name}']);
    const path = `/api/v1/namespaces/${namespace}/services/http:${name}:${port.trim()}/proxy/v1/cert.pem`;
    return { pem: await kubectl(['get', '--raw', path]), source: `the certificate from ${namespace}/${name}` };
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'kubectl is not on PATH' : `kubectl failed: ${(error as Error).message}`;
    throw new SealError(`no --cert given and the controller's certificate could not be fetched (${reason}); ${howTo}`);
  }
}

function kubectl(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('kubectl', ['--request-timeout=10s', ...args], { timeout: 15_000 }, (error, stdout, stderr) => {
      if (!error) return resolve(stdout);
      if (error.code === 'ENOENT') return reject(error);
      if (error.killed) return reject(new Error('no answer within 15 s'));
      // kubectl's last line is its verdict; the lines before are client-go's retries
      reject(new Error(stderr.trim().split('\n').at(-1) || `exit code ${error.code}`));
    });
  });
}

function readBytes(file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    const { code, message } = error as NodeJS.ErrnoException;
    throw new SealError(`cannot read ${file}: ${readProblems[code ?? ''] ?? message}`);
  }
}

const readProblems: Record<string, string> = { ENOENT: 'no such file', EACCES: 'permission denied', EISDIR: 'it is a folder' };

function readText(file: string): string {
  return readBytes(file).toString('latin1');
}

async function readStdin(): Promise<Buffer> {
  if (process.stdin.isTTY) console.error('seal: reading KEY=VALUE lines from stdin; end with Ctrl-D');
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

main(process.argv.slice(2)).catch((error: unknown) => {
  if (!(error instanceof SealError || error instanceof EnvironmentError)) throw error;
  console.error(`seal: ${error.message}`);
  process.exitCode = 2;
});
