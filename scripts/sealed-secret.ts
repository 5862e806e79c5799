/**
 * Sealing values so that the sealed-secrets controller can open them, without kubeseal. The format is
 * bitnami/sealed-secrets' `HybridEncrypt` (pkg/crypto/crypto.go) and the manifest is the one
 * `kubeseal --format yaml` writes (pkg/kubeseal, pkg/apis/sealedsecrets/v1alpha1).
 */
import { X509Certificate, constants, createCipheriv, publicEncrypt, randomBytes, type KeyObject } from 'node:crypto';
import { stringify } from 'yaml';

export const scopes = ['strict', 'namespace-wide', 'cluster-wide'] as const;

/**
 * The Secrets the system reads, with their keys: image-proxy's Pixabay key, and the Postgres credentials
 * that pingpong, Postgres and the backups share. scripts/dev-setup.sh makes the same ones from .env.
 */
export const SECRET_KEYS: Record<string, string[]> = {
  'pixabay-apikey': ['API_KEY'],
  'postgres-credentials': ['PGUSER', 'PGPASSWORD', 'PGDATABASE'],
};
export type Scope = (typeof scopes)[number];

/** Something the user gave us is wrong; `npm run seal` prints the message and exits with code 2. */
export class SealError extends Error {
  override name = 'SealError';
}

/** The controller's RSA public key, from the PEM certificate that `kubeseal --fetch-cert` prints. */
export function readControllerKey(pem: string, source: string, now = new Date()): KeyObject {
  const block = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/.exec(pem)?.[0];
  if (!block) {
    throw new SealError(`${source} holds no PEM certificate (a "-----BEGIN CERTIFICATE-----" block, as kubeseal --fetch-cert prints)`);
  }
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(block);
  } catch (error) {
    throw new SealError(`${source}: the certificate is malformed (${(error as Error).message})`);
  }
  const keyType = certificate.publicKey.asymmetricKeyType;
  if (keyType !== 'rsa') {
    throw new SealError(`${source}: the certificate's key is ${keyType ?? 'of an unknown type'}, but sealed-secrets seals with RSA keys only`);
  }
  const expiry = new Date(certificate.validTo);
  if (expiry <= now) {
    throw new SealError(`${source}: the certificate expired on ${expiry.toISOString().slice(0, 10)}; fetch the controller's current one`);
  }
  return certificate.publicKey;
}

/** The RSA-OAEP label that pins a sealed value to where it may be opened (kubeseal's `EncryptionLabel`). */
export function encryptionLabel(scope: Scope, namespace: string, name: string): Buffer {
  if (scope === 'cluster-wide') return Buffer.alloc(0);
  return Buffer.from(scope === 'namespace-wide' ? namespace : `${namespace}/${name}`);
}

/**
 * One sealed value, base64: the RSA ciphertext's length (2 bytes, big-endian), the RSA-OAEP(SHA-256)
 * ciphertext of a fresh 32-byte session key, then the AES-256-GCM ciphertext of the value and its tag.
 */
export function sealValue(publicKey: KeyObject, value: Buffer, label: Buffer): string {
  const sessionKey = randomBytes(32);
  const sealedKey = publicEncrypt(
    { key: publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256', oaepLabel: label },
    sessionKey,
  );
  const length = Buffer.alloc(2);
  length.writeUInt16BE(sealedKey.length);
  // Each session key seals exactly one value, so the all-zero nonce is never reused (as in crypto.go).
  const cipher = createCipheriv('aes-256-gcm', sessionKey, Buffer.alloc(12));
  const ciphertext = Buffer.concat([cipher.update(value), cipher.final(), cipher.getAuthTag()]);
  return Buffer.concat([length, sealedKey, ciphertext]).toString('base64');
}

export interface SecretIdentity {
  name: string;
  namespace: string;
  scope: Scope;
}

/** A `bitnami.com/v1alpha1` SealedSecret holding `data`, each value sealed on its own, as YAML. */
export function sealedSecretYaml(publicKey: KeyObject, secret: SecretIdentity, data: Map<string, Buffer>): string {
  checkIdentity(secret);
  const label = encryptionLabel(secret.scope, secret.namespace, secret.name);
  const encryptedData = Object.fromEntries(
    [...data.keys()].sort().map((key) => [key, sealValue(publicKey, data.get(key)!, label)]),
  );
  // The controller reads the scope from these annotations, on the SealedSecret and on its template.
  const annotations = secret.scope === 'strict' ? undefined : { [`sealedsecrets.bitnami.com/${secret.scope}`]: 'true' };
  const metadata = { name: secret.name, namespace: secret.namespace, ...(annotations && { annotations }) };
  const manifest = {
    apiVersion: 'bitnami.com/v1alpha1',
    kind: 'SealedSecret',
    metadata,
    spec: { encryptedData, template: { metadata, type: 'Opaque' } },
  };
  return stringify(manifest, { lineWidth: 0, aliasDuplicateObjects: false });
}

const dnsSubdomain = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const dnsLabel = /^(?=.{1,63}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** Refuses a name, namespace or scope that the cluster would refuse. */
export function checkIdentity({ name, namespace, scope }: SecretIdentity): void {
  if (!dnsSubdomain.test(name)) throw new SealError(`--name "${name}" is not a valid Secret name (lower-case letters, digits, '-' and '.')`);
  if (!dnsLabel.test(namespace)) throw new SealError(`--namespace "${namespace}" is not a valid namespace (lower-case letters, digits and '-')`);
  if (!scopes.includes(scope)) throw new SealError(`--scope must be one of ${scopes.join(', ')}, got "${scope}"`);
}

const secretKey = /^[-._a-zA-Z0-9]+$/;

/**
 * `KEY=VALUE` lines, as `kubectl create secret --from-env-file` reads them: leading blanks and blank or
 * `#` lines are skipped, and the value is every byte after the first `=`, taken literally (no quotes
 * removed), so non-ASCII and binary values pass through untouched. Errors name the line, never its value.
 */
export function parseKeyValueLines(input: Buffer, source: string): Map<string, Buffer> {
  const data = new Map<string, Buffer>();
  let start = 0;
  for (let lineNumber = 1; start < input.length; lineNumber++) {
    const newline = input.indexOf(0x0a, start);
    let line = input.subarray(start, newline === -1 ? input.length : newline);
    start = newline === -1 ? input.length : newline + 1;
    if (line.at(-1) === 0x0d) line = line.subarray(0, -1);
    const text = line.toString('latin1').trimStart(); // latin1: one character per byte, so offsets stay byte offsets
    if (text === '' || text.startsWith('#')) continue;
    const equals = text.indexOf('=');
    const key = text.slice(0, equals);
    if (equals === -1 || !secretKey.test(key)) {
      throw new SealError(`${source} line ${lineNumber}: expected KEY=VALUE, with a key of letters, digits, '-', '_' or '.'`);
    }
    if (data.has(key)) throw new SealError(`${source} line ${lineNumber}: ${key} is given twice`);
    const indent = line.length - text.length;
    data.set(key, Buffer.from(line.subarray(indent + equals + 1)));
  }
  if (data.size === 0) throw new SealError(`${source} holds no KEY=VALUE lines: nothing to seal`);
  return data;
}
