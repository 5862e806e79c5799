/** Sealing, checked by opening the result the way the controller does, with a key pair made here. */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { parse } from 'yaml';
import { projectRoot } from '../../functions/shared/config';
import { readEnvironment } from '../../scripts/environments';
import {
  SECRET_KEYS,
  SealError,
  parseKeyValueLines,
  readControllerKey,
  sealedSecretYaml,
  scopes,
  type Scope,
} from '../../scripts/sealed-secret';
import { makeCertificate, type TestCertificate } from '../helpers/certificates';
import { crdValidator } from '../helpers/manifests';
import { controllerLabel, openSealedValue, unseal, type AppliedSealedSecret } from '../helpers/unseal';

const validateSealedSecret = crdValidator('sealedsecret-crd.yaml');
let controller: TestCertificate;
test.before(async () => {
  controller = await makeCertificate();
});

function seal(scope: Scope, data: Record<string, Buffer | string>, name = 'pixabay-apikey') {
  const values = new Map(Object.entries(data).map(([key, value]) => [key, Buffer.from(value)]));
  const text = sealedSecretYaml(readControllerKey(controller.pem, 'test cert'), { name, namespace: 'exercises', scope }, values);
  return { text, manifest: parse(text) as SealedSecretManifest };
}

interface SealedSecretManifest extends AppliedSealedSecret {
  apiVersion: string;
  kind: string;
  spec: AppliedSealedSecret['spec'] & { template: { metadata: AppliedSealedSecret['metadata']; type: string } };
}

/** The same SealedSecret applied under another name or namespace. */
function moved(manifest: AppliedSealedSecret, to: { name?: string; namespace?: string }): AppliedSealedSecret {
  return { ...manifest, metadata: { ...manifest.metadata, ...to } };
}

test('a strict SealedSecret opens only under its own namespace and name', (t) => {
  const { manifest } = seal('strict', { API_KEY: 'test-key' });
  t.is(unseal(controller.privateKey, manifest).API_KEY!.toString(), 'test-key');
  t.throws(() => unseal(controller.privateKey, moved(manifest, { namespace: 'default' })));
  t.throws(() => unseal(controller.privateKey, moved(manifest, { name: 'other-secret' })));
  t.throws(() => openSealedValue(controller.privateKey, manifest.spec.encryptedData.API_KEY!, Buffer.from('exercises')));
  t.throws(() => openSealedValue(controller.privateKey, manifest.spec.encryptedData.API_KEY!, Buffer.alloc(0)));
});

test('a namespace-wide SealedSecret opens under any name in its namespace, and in no other namespace', (t) => {
  const { manifest } = seal('namespace-wide', { API_KEY: 'test-key' });
  t.is(unseal(controller.privateKey, moved(manifest, { name: 'renamed' })).API_KEY!.toString(), 'test-key');
  t.throws(() => unseal(controller.privateKey, moved(manifest, { namespace: 'default' })));
  const stripped = { ...manifest, metadata: { name: manifest.metadata.name, namespace: 'exercises' } };
  t.throws(() => unseal(controller.privateKey, stripped), undefined, 'dropping the scope annotation makes it strict, and strict does not open');
});

test('a cluster-wide SealedSecret opens under any namespace and name, and not under a narrower label', (t) => {
  const { manifest } = seal('cluster-wide', { API_KEY: 'test-key' });
  t.is(unseal(controller.privateKey, moved(manifest, { namespace: 'default', name: 'renamed' })).API_KEY!.toString(), 'test-key');
  t.throws(() => openSealedValue(controller.privateKey, manifest.spec.encryptedData.API_KEY!, Buffer.from('exercises')));
  t.throws(() => openSealedValue(controller.privateKey, manifest.spec.encryptedData.API_KEY!, Buffer.from('exercises/pixabay-apikey')));
});

test('flipping any byte of a sealed value makes it fail to open, in every scope', (t) => {
  for (const scope of scopes) {
    const { manifest } = seal(scope, { PGPASSWORD: 'test horse' });
    const label = controllerLabel(manifest);
    const bytes = Buffer.from(manifest.spec.encryptedData.PGPASSWORD!, 'base64');
    t.is(openSealedValue(controller.privateKey, bytes.toString('base64'), label).toString(), 'test horse', `${scope}: untouched, it opens`);
    t.is(bytes.readUInt16BE(0), 256, 'RSA-2048 ciphertext length first, big-endian');
    t.is(bytes.length, 2 + 256 + 'test horse'.length + 16, 'then the GCM ciphertext and its 16-byte tag');
    let failures = 0;
    for (let i = 0; i < bytes.length; i++) {
      const tampered = Buffer.from(bytes);
      tampered[i]! ^= 0xff;
      try {
        openSealedValue(controller.privateKey, tampered.toString('base64'), label);
      } catch {
        failures++;
      }
    }
    t.is(failures, bytes.length, `${scope}: every one of the ${bytes.length} flipped bytes is caught`);
  }
});

test('empty, 1 MB, binary and non-ASCII values round-trip in every scope', (t) => {
  const values = {
    EMPTY: Buffer.alloc(0),
    LARGE: randomBytes(1024 * 1024),
    BINARY: Buffer.from(Array.from({ length: 256 }, (_, byte) => byte)),
    TEXT: Buffer.from('Grüße, 世界 🔑 "quotes" = and # too\n'),
  };
  for (const scope of scopes) {
    const { manifest } = seal(scope, values);
    const opened = unseal(controller.privateKey, manifest);
    t.deepEqual(Object.keys(opened).sort(), Object.keys(values).sort(), scope);
    for (const [key, value] of Object.entries(values)) t.true(opened[key]!.equals(value), `${scope}: ${key}`);
  }
});

test('each value gets its own session key: sealing the same value twice gives different ciphertexts', (t) => {
  const { manifest } = seal('strict', { A: 'same', B: 'same' });
  t.not(manifest.spec.encryptedData.A, manifest.spec.encryptedData.B);
});

test('the manifest is the one kubeseal writes, and validates against the SealedSecret CRD', (t) => {
  for (const scope of scopes) {
    const { text, manifest } = seal(scope, { PGUSER: 'u', PGPASSWORD: 'p' }, 'postgres-credentials');
    const annotations = scope === 'strict' ? undefined : { [`sealedsecrets.bitnami.com/${scope}`]: 'true' };
    const metadata = { name: 'postgres-credentials', namespace: 'exercises', ...(annotations && { annotations }) };
    t.like(manifest, { apiVersion: 'bitnami.com/v1alpha1', kind: 'SealedSecret', metadata });
    t.deepEqual(manifest.metadata, metadata, `${scope}: scope annotation on the SealedSecret`);
    t.deepEqual(manifest.spec.template, { metadata, type: 'Opaque' }, `${scope}: and on the Secret it makes`);
    t.deepEqual(Object.keys(manifest.spec.encryptedData), ['PGPASSWORD', 'PGUSER'], 'keys sorted, for stable diffs');
    t.deepEqual(validateSealedSecret(manifest), [], scope);
    t.false(text.includes('&') || text.includes('*'), 'no YAML anchors or aliases');
    t.is(text.split('\n').filter((line) => line.includes('PGPASSWORD')).length, 1, 'each sealed value on one line');
  }
});

test('the CRD validation catches what the API server would reject or silently drop', (t) => {
  const { manifest } = seal('strict', { API_KEY: 'k' });
  t.deepEqual(validateSealedSecret(manifest), []);
  const broken = [
    { ...manifest, spec: { encrypteddata: manifest.spec.encryptedData, template: manifest.spec.template } },
    { ...manifest, spec: { ...manifest.spec, encryptedData: { API_KEY: 42 } } },
    { ...manifest, apiVersion: 'bitnami.com/v1' },
    { ...manifest, metadata: { ...manifest.metadata, name: 'Not_A_Name' } },
    { ...manifest, spec: { ...manifest.spec, template: { ...manifest.spec.template, tpye: 'Opaque' } } },
  ];
  for (const resource of broken) t.not(validateSealedSecret(resource).length, 0, JSON.stringify(resource).slice(0, 80));
});

test('the certificate: expired, non-RSA, garbage and a broken PEM each get their own clear message', async (t) => {
  t.is(readControllerKey(controller.pem, 'cert.pem').asymmetricKeyType, 'rsa');
  const expired = await makeCertificate({ validDays: -1 });
  t.throws(() => readControllerKey(expired.pem, 'cert.pem'), { instanceOf: SealError, message: /^cert\.pem: the certificate expired on \d{4}-\d\d-\d\d;/ });
  const ec = await makeCertificate({ keyType: 'ec' });
  t.throws(() => readControllerKey(ec.pem, 'cert.pem'), { instanceOf: SealError, message: /^cert\.pem: the certificate's key is ec, but sealed-secrets seals with RSA keys only$/ });
  t.throws(() => readControllerKey('hello, I am not a certificate\n', 'cert.pem'), { instanceOf: SealError, message: /^cert\.pem holds no PEM certificate/ });
  const mangled = controller.pem.replace(/\n[A-Za-z0-9+/]{20}/, '\nAAAAAAAAAAAAAAAAAAAA');
  t.throws(() => readControllerKey(mangled, 'cert.pem'), { instanceOf: SealError, message: /^cert\.pem: the certificate is malformed/ });
});

test('KEY=VALUE lines are read as kubectl --from-env-file reads them', (t) => {
  const input = Buffer.from('# comment\n\n  PGUSER=pingpong\r\nPGPASSWORD="test a=b c"\nEMPTY=\nGREETING=Grüße\n');
  const data = parseKeyValueLines(input, '.env');
  t.deepEqual(
    Object.fromEntries([...data].map(([key, value]) => [key, value.toString()])),
    { PGUSER: 'pingpong', PGPASSWORD: '"test a=b c"', EMPTY: '', GREETING: 'Grüße' },
  );
  const binary = Buffer.concat([Buffer.from('BLOB='), Buffer.from([0x00, 0xff, 0xc3, 0x28, 0x0d, 0x09])]);
  t.true(parseKeyValueLines(binary, 'stdin').get('BLOB')!.equals(Buffer.from([0x00, 0xff, 0xc3, 0x28, 0x0d, 0x09])), 'bytes pass through');
});

test('a malformed KEY=VALUE line is named by its line number, never by its value', (t) => {
  for (const bad of ['PGPASSWORD hunter2', 'bad key=hunter2', '=hunter2', 'KEY:hunter2']) {
    const error = t.throws(() => parseKeyValueLines(Buffer.from(`OK=1\n${bad}\n`), '.env'), { instanceOf: SealError });
    t.regex(error!.message, /^\.env line 2: expected KEY=VALUE/);
    t.false(error!.message.includes('hunter2'));
  }
  t.throws(() => parseKeyValueLines(Buffer.from('A=1\nA=2\n'), 'stdin'), { message: 'stdin line 2: A is given twice' });
  t.throws(() => parseKeyValueLines(Buffer.from('# nothing\n'), 'stdin'), { message: /^stdin holds no KEY=VALUE lines/ });
});

test('a name, namespace or scope the cluster would refuse is refused here first', (t) => {
  const key = readControllerKey(controller.pem, 'cert.pem');
  const data = new Map([['A', Buffer.from('1')]]);
  t.throws(() => sealedSecretYaml(key, { name: 'Bad_Name', namespace: 'exercises', scope: 'strict' }, data), { message: /^--name "Bad_Name"/ });
  t.throws(() => sealedSecretYaml(key, { name: 'ok', namespace: 'a.b', scope: 'strict' }, data), { message: /^--namespace "a\.b"/ });
  t.throws(() => sealedSecretYaml(key, { name: 'ok', namespace: 'exercises', scope: 'global' as Scope }, data), { message: /^--scope must be one of strict, namespace-wide, cluster-wide/ });
});

test('what staging and production commit: a placeholder that stops the render and names the command, or a SealedSecret for the environment\'s own namespace', (t) => {
  for (const environment of ['staging', 'production']) {
    const { namespace, sealedSecrets } = readEnvironment(environment, projectRoot);
    t.deepEqual(sealedSecrets, Object.keys(SECRET_KEYS), `${environment} deploys every Secret the system reads`);
    for (const name of sealedSecrets) {
      const file = path.join('environments', environment, `${name}.sealedsecret.yaml`);
      const manifest = parse(readFileSync(path.join(projectRoot, file), 'utf8'));
      if (manifest.kind === 'NotSealedYet') {
        t.is(manifest.metadata.name, undefined, `${file}: without a name, kustomize refuses it`);
        t.is(manifest.metadata.annotations['seal-first'], `npm run seal -- --environment ${environment} (docs/secrets.md)`, file);
        continue;
      }
      t.deepEqual(validateSealedSecret(manifest), [], file);
      t.deepEqual(manifest.metadata, { name, namespace }, `${file}: sealed for ${namespace}, strict scope`);
      t.deepEqual(Object.keys(manifest.spec.encryptedData).sort(), [...SECRET_KEYS[name]!].sort(), file);
    }
  }
});
