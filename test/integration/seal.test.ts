/**
 * `npm run seal` run as a user runs it (the compiled script, a real process, real files and pipes),
 * with a controller key pair made here and, for fetching the certificate, a stand-in kubectl: a
 * cluster is the one thing we cannot reach.
 */
import { spawn } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { parse } from 'yaml';
import { projectRoot } from '../../functions/shared/config';
import { makeCertificate, type TestCertificate } from '../helpers/certificates';
import { crdValidator } from '../helpers/manifests';
import { tempDirForFile } from '../helpers/temp';
import { unseal, type AppliedSealedSecret } from '../helpers/unseal';

const sealScript = path.join(projectRoot, 'dist', 'scripts', 'seal.js');
const validateSealedSecret = crdValidator('sealedsecret-crd.yaml');
const dir = tempDirForFile('seal-test-');
const emptyDir = tempDirForFile('seal-test-path-');

let controller: TestCertificate;
let certFile: string;
test.before(async () => {
  controller = await makeCertificate();
  certFile = file('controller-cert.pem', controller.pem);
});

function file(name: string, content: string | Buffer): string {
  const target = path.join(dir, name);
  writeFileSync(target, content);
  return target;
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the compiled `npm run seal` with `args`, `stdin` piped in; PATH holds only what `path` says (no kubectl by default). */
function runSeal(args: string[], { stdin = '', PATH = emptyDir, cwd = dir }: { stdin?: string | Buffer; PATH?: string; cwd?: string } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [sealScript, ...args], { env: { PATH, HOME: dir }, cwd });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject).on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.on('error', () => undefined).end(stdin);
  });
}

test('a dotenv file in, a SealedSecret file out that the controller opens', async (t) => {
  const envFile = file('credentials.env', '# Postgres\nPGUSER=pingpong\nPGPASSWORD=test-pw=with=equals\nPGDATABASE=pingpong\n');
  const out = path.join(dir, 'postgres-credentials.sealedsecret.yaml');
  const run = await runSeal(['--cert', certFile, '--name', 'postgres-credentials', '--scope', 'namespace-wide', '--out', out, envFile]);
  t.deepEqual(run, { code: 0, stdout: '', stderr: '' });
  const manifest = parse(readFileSync(out, 'utf8')) as AppliedSealedSecret;
  t.deepEqual(validateSealedSecret(manifest), []);
  t.like(manifest.metadata, { name: 'postgres-credentials', namespace: 'exercises', annotations: { 'sealedsecrets.bitnami.com/namespace-wide': 'true' } });
  const opened = unseal(controller.privateKey, manifest);
  t.deepEqual(Object.fromEntries(Object.entries(opened).map(([k, v]) => [k, v.toString()])), {
    PGUSER: 'pingpong',
    PGPASSWORD: 'test-pw=with=equals',
    PGDATABASE: 'pingpong',
  });
});

test('stdin in, the manifest on stdout; non-ASCII and binary bytes pass through', async (t) => {
  const value = Buffer.concat([Buffer.from('Grüße 🔑 '), Buffer.from([0x00, 0xff, 0xfe])]);
  const run = await runSeal(['--cert', certFile, '--name', 'pixabay-apikey', '--namespace', 'other'], {
    stdin: Buffer.concat([Buffer.from('API_KEY='), value, Buffer.from('\n')]),
  });
  t.is(run.code, 0, run.stderr);
  t.is(run.stderr, '');
  const manifest = parse(run.stdout) as AppliedSealedSecret;
  t.deepEqual(validateSealedSecret(manifest), []);
  t.like(manifest.metadata, { name: 'pixabay-apikey', namespace: 'other' });
  t.true(unseal(controller.privateKey, manifest).API_KEY!.equals(value));
});

test('each mistake gets one clear line on stderr, nothing on stdout, and exit code 2', async (t) => {
  const expired = file('expired.pem', (await makeCertificate({ validDays: -10 })).pem);
  const ec = file('ec.pem', (await makeCertificate({ keyType: 'ec' })).pem);
  const garbage = file('garbage.pem', 'this is not a certificate\n');
  const cases: Array<[string, string[], RegExp, string?]> = [
    ['missing --name', ['--cert', certFile], /^seal: --name is missing; usage: npm run seal -- --name <secret>/],
    ['expired certificate', ['--cert', expired, '--name', 'x'], /^seal: \S+expired\.pem: the certificate expired on \d{4}-\d\d-\d\d; fetch the controller's current one$/],
    ['EC certificate', ['--cert', ec, '--name', 'x'], /^seal: \S+ec\.pem: the certificate's key is ec, but sealed-secrets seals with RSA keys only$/],
    ['garbage certificate', ['--cert', garbage, '--name', 'x'], /^seal: \S+garbage\.pem holds no PEM certificate/],
    ['missing certificate file', ['--cert', path.join(dir, 'absent.pem'), '--name', 'x'], /^seal: cannot read \S+absent\.pem: no such file$/],
    ['certificate path is a folder', ['--cert', dir, '--name', 'x'], /^seal: cannot read \S+: it is a folder$/],
    ['malformed input line', ['--cert', certFile, '--name', 'x'], /^seal: stdin line 2: expected KEY=VALUE/, 'OK=1\nPGPASSWORD hunter2\n'],
    ['empty input', ['--cert', certFile, '--name', 'x'], /^seal: stdin holds no KEY=VALUE lines: nothing to seal$/, ''],
    ['bad scope', ['--name', 'x', '--scope', 'global'], /^seal: --scope must be one of strict, namespace-wide, cluster-wide, got "global"$/, 'A=1\n'],
    ['bad name', ['--name', 'Pixabay_Key'], /^seal: --name "Pixabay_Key" is not a valid Secret name/, 'A=1\n'],
    ['unknown option', ['--cert', certFile, '--name', 'x', '--format', 'json'], /^seal: Unknown option '--format'; usage: /],
  ];
  for (const [what, args, message, stdin = 'A=1\n'] of cases) {
    const run = await runSeal(args, { stdin });
    t.is(run.code, 2, what);
    t.is(run.stdout, '', what);
    t.regex(run.stderr.trimEnd(), message, what);
    t.is(run.stderr.trimEnd().split('\n').length, 1, `${what}: one line`);
    t.false(run.stderr.includes('hunter2'), `${what}: no value in the message`);
  }
});

test('without --cert or kubectl, it says how to get the certificate', async (t) => {
  const run = await runSeal(['--name', 'pixabay-apikey'], { stdin: 'API_KEY=x\n' });
  t.is(run.code, 2);
  t.is(run.stdout, '');
  t.is(
    run.stderr,
    "seal: no --cert given and the controller's certificate could not be fetched (kubectl is not on PATH); pass --cert <file> " +
      'with the certificate from `kubeseal --fetch-cert > cert.pem` or ' +
      '`kubectl get --raw /api/v1/namespaces/kube-system/services/http:sealed-secrets-controller:http/proxy/v1/cert.pem > cert.pem`\n',
  );
});

/** A kubectl that answers like a cluster running the controller, and writes down what it was asked. */
function standInKubectl(name: string, behaviour: string): { PATH: string; calls: () => string[] } {
  const binDir = mkdtempSync(path.join(dir, `${name}-`));
  const log = path.join(binDir, 'calls.log');
  const script = path.join(binDir, 'kubectl');
  writeFileSync(
    script,
    `#!${process.execPath}
const fs = require('node:fs');
const args = process.argv.slice(2);
fs.appendFileSync(${JSON.stringify(log)}, JSON.stringify(args) + '\\n');
${behaviour}
`,
    { mode: 0o755 },
  );
  return { PATH: binDir, calls: () => readFileSync(log, 'utf8').trim().split('\n') };
}

test("without --cert, it fetches the controller's certificate through the API server proxy, as kubeseal does", async (t) => {
  const kubectl = standInKubectl(
    'cluster',
    `const rest = args.filter((arg) => !arg.startsWith('--request-timeout')).join(' ');
if (rest === 'get service --namespace kube-system sealed-secrets-controller -o jsonpath={.spec.ports[0].name}') process.stdout.write('http-cert');
else if (rest === 'get --raw /api/v1/namespaces/kube-system/services/http:sealed-secrets-controller:http-cert/proxy/v1/cert.pem') process.stdout.write(fs.readFileSync(${JSON.stringify(certFile)}));
else { console.error('error: unexpected ' + rest); process.exit(1); }`,
  );
  const run = await runSeal(['--name', 'pixabay-apikey'], { stdin: 'API_KEY=test-from-the-cluster\n', PATH: kubectl.PATH });
  t.is(run.code, 0, run.stderr);
  t.is(unseal(controller.privateKey, parse(run.stdout)).API_KEY!.toString(), 'test-from-the-cluster');
  t.is(kubectl.calls().length, 2);
  t.true(kubectl.calls().every((call) => call.includes('"--request-timeout=10s"')), 'kubectl never hangs on a dead cluster');
});

test('the controller can be elsewhere: --controller-namespace and --controller-name', async (t) => {
  const kubectl = standInKubectl(
    'elsewhere',
    `if (args.includes('service')) process.stdout.write('http');
else if (args.includes('/api/v1/namespaces/sealed-secrets/services/http:sealed-secrets:http/proxy/v1/cert.pem')) process.stdout.write(fs.readFileSync(${JSON.stringify(certFile)}));
else process.exit(1);`,
  );
  const run = await runSeal(['--name', 'x', '--controller-namespace', 'sealed-secrets', '--controller-name', 'sealed-secrets'], {
    stdin: 'A=1\n',
    PATH: kubectl.PATH,
  });
  t.is(run.code, 0, run.stderr);
});

test('when kubectl cannot reach a cluster, it passes on why and says how to get the certificate', async (t) => {
  const kubectl = standInKubectl(
    'unreachable',
    `console.error('E1127 14:05:31.140747   19860 memcache.go:265] "Unhandled Error" err="couldn\\'t get current server API group list"');
console.error('The connection to the server localhost:8080 was refused - did you specify the right host or port?');
process.exit(1);`,
  );
  const run = await runSeal(['--name', 'x'], { stdin: 'A=1\n', PATH: kubectl.PATH });
  t.is(run.code, 2);
  t.is(run.stdout, '');
  t.regex(
    run.stderr,
    /^seal: no --cert given and the controller's certificate could not be fetched \(kubectl failed: The connection to the server localhost:8080 was refused - did you specify the right host or port\?\); pass --cert <file> with the certificate from `kubeseal --fetch-cert > cert\.pem`/,
  );
  t.is(kubectl.calls().length, 1, 'it stops at the first failure');
});

test('--help prints the usage and exits 0', async (t) => {
  const run = await runSeal(['--help']);
  t.is(run.code, 0);
  t.regex(run.stdout, /^usage: npm run seal -- --name <secret>/);
});

// ---------------------------------------------------------------------------------------------------
// --environment: every Secret of staging or production, from .env, into the environment's folder

/** A copy of environments/ in a folder of its own, which the script sees as the project root (npm run's working folder). */
function projectCopy(t: ExecutionContext): string {
  const root = mkdtempSync(path.join(dir, 'project-'));
  cpSync(path.join(projectRoot, 'environments'), path.join(root, 'environments'), { recursive: true });
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  return root;
}

test('--environment seals each Secret the environment deploys, from .env, for its namespace, over the placeholders', async (t) => {
  const root = projectCopy(t);
  writeFileSync(path.join(root, '.env'), 'API_KEY=test-key-123\nPGUSER=pingpong\nPGPASSWORD=test-pw=x\nPGDATABASE=pingpong\nOTHER=left-out\n');
  const run = await runSeal(['--environment', 'staging', '--cert', certFile], { cwd: root });
  t.is(run.code, 0, run.stderr);
  t.is(run.stdout, [
    'sealed pixabay-apikey (API_KEY) for the namespace exercises-staging: environments/staging/pixabay-apikey.sealedsecret.yaml',
    'sealed postgres-credentials (PGUSER, PGPASSWORD, PGDATABASE) for the namespace exercises-staging: environments/staging/postgres-credentials.sealedsecret.yaml',
    '',
  ].join('\n'));
  const opened = (name: string) => {
    const manifest = parse(readFileSync(path.join(root, 'environments', 'staging', `${name}.sealedsecret.yaml`), 'utf8')) as AppliedSealedSecret;
    t.deepEqual(validateSealedSecret(manifest), []);
    t.deepEqual(manifest.metadata, { name, namespace: 'exercises-staging' });
    return Object.fromEntries(Object.entries(unseal(controller.privateKey, manifest)).map(([k, v]) => [k, v.toString()]));
  };
  t.deepEqual(opened('pixabay-apikey'), { API_KEY: 'test-key-123' });
  t.deepEqual(opened('postgres-credentials'), { PGUSER: 'pingpong', PGPASSWORD: 'test-pw=x', PGDATABASE: 'pingpong' });
  // Production is untouched, still its placeholders.
  t.is(readFileSync(path.join(root, 'environments', 'production', 'pixabay-apikey.sealedsecret.yaml'), 'utf8'), readFileSync(path.join(projectRoot, 'environments', 'production', 'pixabay-apikey.sealedsecret.yaml'), 'utf8'));
});

test('--environment refuses what would seal the wrong thing, writing nothing', async (t) => {
  const root = projectCopy(t);
  const placeholder = () => readFileSync(path.join(root, 'environments', 'production', 'postgres-credentials.sealedsecret.yaml'), 'utf8');
  const before = placeholder();
  writeFileSync(path.join(root, 'partial.env'), 'API_KEY=test-key-123\nPGUSER=pingpong\nPGPASSWORD=\n');
  const cases: Array<[args: string[], message: RegExp]> = [
    [['--environment', 'production', '--cert', certFile, 'partial.env'], /^seal: partial\.env has no value for PGPASSWORD, PGDATABASE, which the Secret postgres-credentials holds; nothing was written\n$/],
    [['--environment', 'production', '--cert', certFile, '--namespace', 'exercises'], /^seal: --environment seals every Secret of the environment under its own name and namespace, in strict scope: leave out --namespace\n$/],
    [['--environment', 'production', '--cert', certFile, '--scope', 'cluster-wide'], /leave out --scope\n$/],
    [['--environment', 'prod', '--cert', certFile], /^seal: no environment "prod": environments\/prod\/kustomization\.yaml not found \(run from the project root\)\n$/],
    [['--environment', 'dev', '--cert', certFile], /^seal: environments\/dev\/kustomization\.yaml sets no namespace/],
    [['--environment', 'production', '--cert', certFile], /^seal: cannot read \.env: no such file\n$/],
  ];
  for (const [args, message] of cases) {
    const run = await runSeal(args, { cwd: root });
    t.is(run.code, 2, args.join(' '));
    t.regex(run.stderr, message);
    t.is(run.stdout, '');
  }
  t.is(placeholder(), before);
});
