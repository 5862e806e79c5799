/**
 * No secret in plain text anywhere in the tree: every file git tracks (or would track: new files not
 * yet added count too) is scanned. The leaks the scanner must catch are made here, at test run time,
 * so that this file holds none itself.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { generateKeyPairSync, randomBytes, randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { stringify } from 'yaml';
import { projectRoot } from '../../functions/shared/config';
import { sealedSecretYaml } from '../../scripts/sealed-secret';
import { findPlaintextSecrets } from '../helpers/plaintext-secrets';

function trackedFiles(): string[] {
  const listing = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: projectRoot, encoding: 'utf8' });
  return [...new Set(listing.split('\0').filter(Boolean))];
}

// The walk needs git and a checkout: skipped loudly without them, failed under CI (where .ci/run installs git).
const inCheckout = spawnSync('git', ['rev-parse', '--is-inside-work-tree'], { cwd: projectRoot }).status === 0;
if (!inCheckout && process.env.CI !== 'true') console.warn('SKIPPING the scan of tracked files: git is missing or this is not a git checkout');
const treeTest = inCheckout || process.env.CI === 'true' ? test : test.skip;

treeTest('no tracked file holds a Secret with data, a private key or a credential', (t) => {
  const files = trackedFiles();
  t.true(files.includes('environments/production/pixabay-apikey.sealedsecret.yaml') && files.includes('.env.example'), 'the walk sees the tree');
  t.false(files.includes('.env'), '.env stays out of git');
  let scanned = 0;
  const findings = files.flatMap((file) => {
    let content: Buffer;
    try {
      content = readFileSync(path.join(projectRoot, file));
    } catch {
      return []; // deleted in the working tree, not yet in the index
    }
    if (content.includes(0)) return []; // binary
    scanned++;
    return findPlaintextSecrets(file, content.toString('utf8'));
  });
  t.true(scanned > 20, `scanned ${scanned} files`);
  t.deepEqual(findings, [], findings.map((f) => `${f.file}:${f.line}: ${f.rule}`).join('\n'));
});

/** A fresh secret-looking value: hex, so it never reads like a placeholder by chance. */
const randomSecret = () => `Zq${randomBytes(12).toString('hex')}`;
const rules = (file: string, content: string) => findPlaintextSecrets(file, content).map((f) => f.rule);

test('catches a kind: Secret with data or stringData, in YAML, JSON, a List and a README', (t) => {
  const secret = { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'pixabay-apikey' } };
  t.deepEqual(rules('knative/secret.yaml', stringify({ ...secret, stringData: { API_KEY: 'replace-me' } })), ['kind: Secret with data at /']);
  const encoded = Buffer.from(randomSecret()).toString('base64');
  t.true(rules('secret.json', JSON.stringify({ ...secret, data: { API_KEY: encoded } })).includes('kind: Secret with data at /'));
  const list = stringify({ apiVersion: 'v1', kind: 'List', items: [{ ...secret, data: { A: 'eA==' } }] });
  t.deepEqual(rules('db/list.yml', list), ['kind: Secret with data at /items[0]']);
  const multiDocument = `${stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'exercises' } })}---\n${stringify({ ...secret, stringData: { A: 'b' } })}`;
  t.deepEqual(rules('knative/all.yaml', multiDocument), ['kind: Secret with data at /']);
  const readme = `# Setup\n\nApply this:\n\n\`\`\`yaml\n${stringify({ ...secret, stringData: { A: 'b' } })}\`\`\`\n`;
  t.deepEqual(findPlaintextSecrets('README.md', readme), [{ file: 'README.md', line: 6, rule: 'kind: Secret with data at /' }]);
  t.deepEqual(rules('knative/secret.yaml', stringify({ ...secret, type: 'Opaque' })), [], 'a Secret without data holds nothing');
});

test('catches private keys in any PEM flavour', (t) => {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pems = [
    rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    rsa.privateKey.export({ type: 'pkcs1', format: 'pem' }) as string,
    ec.privateKey.export({ type: 'sec1', format: 'pem' }) as string,
    rsa.privateKey.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: randomSecret() }) as string,
    `${['-----BEGIN OPENSSH', 'PRIVATE KEY-----'].join(' ')}\nb3BlbnNzaC1rZXktdjEAAAAA\n`,
  ];
  for (const pem of pems) t.deepEqual(rules('key.pem', pem), ['private key'], pem.split('\n')[0]);
  t.deepEqual(rules('cert.pem', rsa.publicKey.export({ type: 'spki', format: 'pem' }) as string), [], 'a public key is no secret');
});

test('catches credential-shaped values: Pixabay, AWS, JWT, GitHub', (t) => {
  const pixabay = `${randomInt(10_000_000, 99_999_999)}-${randomBytes(13).toString('hex').slice(0, 25)}`;
  t.deepEqual(rules('functions/image-proxy/pixabay.ts', `const key = '${pixabay}';`), ['Pixabay API key']);
  t.true(rules('README.md', `curl 'https://pixabay.com/api/?key=${pixabay}&q=red+sky'`).includes('Pixabay API key'));
  const aws = `AKIA${randomBytes(8).toString('hex').toUpperCase()}`;
  t.deepEqual(rules('deploy.sh', `aws configure set aws_access_key_id ${aws}`), ['AWS access key id']);
  const base64url = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const jwt = `${base64url({ alg: 'HS256', typ: 'JWT' })}.${base64url({ sub: randomSecret() })}.${randomBytes(32).toString('base64url')}`;
  t.deepEqual(rules('notes.txt', `Authorization: Bearer ${jwt}`), ['JSON Web Token']);
  const github = `ghp_${randomBytes(18).toString('hex')}`;
  t.deepEqual(rules('.github/workflow.yml', `# ${github}`), ['GitHub token']);
});

test('catches secret-named settings with literal values, in every usual syntax', (t) => {
  const value = randomSecret();
  const leaks: Array<[file: string, content: string]> = [
    ['.env', `PGPASSWORD=${value}`],
    ['scripts/run.sh', `export DB_PASSWORD="${value}"`],
    ['README.md', `$ PGPASSWORD=${value} psql -h localhost`],
    ['scripts/db.ts', `const url = 'host=db user=app password=${value} dbname=app';`],
    ['functions/x/config.ts', `const settings = { apiKey: '${value}' };`],
    ['test/x.test.ts', `startFunction(t, 'image-proxy', { API_KEY: '${value}' });`],
    ['docker-compose.yml', stringify({ services: { db: { environment: { POSTGRES_PASSWORD: value } } } })],
    ['db/deployment.yaml', stringify({ kind: 'Deployment', spec: { template: { spec: { containers: [{ env: [{ name: 'PGPASSWORD', value }] }] } } } })],
    ['knative/config.yaml', stringify({ kind: 'ConfigMap', data: { aws_secret_access_key: value } })],
    ['README.md', `Use https://pixabay.com/api/?key=${value}&q=x`],
  ];
  for (const [file, content] of leaks) t.not(findPlaintextSecrets(file, content).length, 0, `${file}: ${content.replace(value, '<value>')}`);
});

test('catches a URL with a password in it', (t) => {
  const url = ['postgres://app', `${randomSecret()}@db.exercises.svc.cluster.local:5432/app`].join(':');
  t.deepEqual(rules('knative/pingpong.yaml', `        - name: DATABASE_URL\n          value: ${url}`), ['URL with a password']);
});

test('leaves alone placeholders, references, secret names and ciphertext', (t) => {
  const harmless: Array<[file: string, content: string]> = [
    ['.env.example', readFileSync(path.join(projectRoot, '.env.example'), 'utf8')],
    ['environments/staging/postgres-credentials.sealedsecret.yaml', readFileSync(path.join(projectRoot, 'environments', 'staging', 'postgres-credentials.sealedsecret.yaml'), 'utf8')],
    ['environments/production/postgres-credentials.sealedsecret.yaml', sealedSecretYaml(generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey, { name: 'postgres-credentials', namespace: 'exercises', scope: 'strict' }, new Map([['PGPASSWORD', randomBytes(16)]]))],
    ['scripts/local-postgres.ts', readFileSync(path.join(projectRoot, 'scripts', 'local-postgres.ts'), 'utf8')],
    ['README.md', 'PGPASSWORD=<your password> psql, or API_KEY=$API_KEY, or `?key=KEY`, or postgres://user:password@host/db'],
    ['scripts/x.sh', 'PGPASSWORD="${PGPASSWORD}" pg_dump; export API_KEY=changeme'],
    ['functions/x.ts', "const password = env.PGPASSWORD; const url = `postgres://u:${password}@h`; const apiKey = config.apiKey;"],
    ['knative/x.yaml', stringify({ kind: 'Service', spec: { envFrom: [{ secretRef: { name: 'pixabay-apikey' } }], volumes: [{ secret: { secretName: 'postgres-credentials' } }] } })],
    ['db/x.yaml', stringify({ env: [{ name: 'POSTGRES_PASSWORD', valueFrom: { secretKeyRef: { name: 'postgres-credentials', key: 'PGPASSWORD' } } }] })],
    ['skaffold.yaml', stringify({ env: [{ name: 'API_KEY_FILE', value: '/var/run/secrets/api-key' }, { name: 'PGPASSWORD', value: '{{ .PGPASSWORD }}' }] })],
  ];
  for (const [file, content] of harmless) t.deepEqual(findPlaintextSecrets(file, content), [], file);
});
