/**
 * `npm run seal`: KEY=VALUE lines in (a file, or stdin), a SealedSecret manifest out, sealed for the
 * sealed-secrets controller's certificate, without kubeseal. Mistakes get one line and exit code 2.
 */
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { SealError, checkIdentity, parseKeyValueLines, readControllerKey, sealedSecretYaml, type Scope } from './sealed-secret';

const usage =
  'usage: npm run seal -- --name <secret> [--namespace exercises] [--scope strict|namespace-wide|cluster-wide] ' +
  '[--cert <controller-cert.pem>] [--controller-namespace kube-system] [--controller-name sealed-secrets-controller] ' +
  '[--out <file>] [<KEY=VALUE file>]   (no file: reads stdin)';

async function main(argv: string[]): Promise<void> {
  const { values: options, positionals: files } = readOptions(argv);
  if (options.help) return void console.log(usage);
  if (!options.name) throw new SealError(`--name is missing; ${usage}`);
  if (files.length > 1) throw new SealError(`give at most one KEY=VALUE file, got ${files.length}; ${usage}`);
  const secret = { name: options.name, namespace: options.namespace, scope: options.scope as Scope };
  checkIdentity(secret);

  const cert = options.cert
    ? { pem: readText(options.cert), source: options.cert }
    : await fetchControllerCert(options['controller-namespace'], options['controller-name']);
  const publicKey = readControllerKey(cert.pem, cert.source);

  const inputFile = files[0] && files[0] !== '-' ? files[0] : undefined;
  const input = inputFile ? readBytes(inputFile) : await readStdin();
  const data = parseKeyValueLines(input, inputFile ?? 'stdin');

  const manifest = sealedSecretYaml(publicKey, secret, data);
  if (options.out) writeFileSync(options.out, manifest);
  else process.stdout.write(manifest);
}

function readOptions(argv: string[]) {
  try {
    return parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        name: { type: 'string' },
        namespace: { type: 'string', default: 'exercises' },
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
  if (!(error instanceof SealError)) throw error;
  console.error(`seal: ${error.message}`);
  process.exitCode = 2;
});
