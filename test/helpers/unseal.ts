/**
 * Opening sealed values the way the sealed-secrets controller does (its `Unseal` and `HybridDecrypt`),
 * written apart from scripts/sealed-secret.ts so that a test of one is not a test of itself.
 */
import { constants, createDecipheriv, privateDecrypt, type KeyObject } from 'node:crypto';

export interface AppliedSealedSecret {
  metadata: { name: string; namespace: string; annotations?: Record<string, string> };
  spec: { encryptedData: Record<string, string> };
}

/** The label the controller derives from the SealedSecret as applied: its scope annotations, namespace and name. */
export function controllerLabel({ metadata }: AppliedSealedSecret): Buffer {
  const annotations = metadata.annotations ?? {};
  if (annotations['sealedsecrets.bitnami.com/cluster-wide'] === 'true') return Buffer.alloc(0);
  if (annotations['sealedsecrets.bitnami.com/namespace-wide'] === 'true') return Buffer.from(metadata.namespace);
  return Buffer.from(`${metadata.namespace}/${metadata.name}`);
}

/** RSA-OAEP(SHA-256) decrypt the session key with `label`, then AES-256-GCM open the rest; throws when anything is off. */
export function openSealedValue(privateKey: KeyObject, sealed: string, label: Buffer): Buffer {
  const bytes = Buffer.from(sealed, 'base64');
  if (bytes.toString('base64') !== sealed) throw new Error('not standard base64');
  const rsaLength = bytes.readUInt16BE(0);
  if (bytes.length < 2 + rsaLength + 16) throw new Error('too short');
  const sessionKey = privateDecrypt(
    { key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256', oaepLabel: label },
    bytes.subarray(2, 2 + rsaLength),
  );
  const gcm = bytes.subarray(2 + rsaLength);
  const decipher = createDecipheriv('aes-256-gcm', sessionKey, Buffer.alloc(12));
  decipher.setAuthTag(gcm.subarray(-16));
  return Buffer.concat([decipher.update(gcm.subarray(0, -16)), decipher.final()]);
}

/** Every value of the SealedSecret, opened as the controller would open it where it is applied. */
export function unseal(privateKey: KeyObject, sealedSecret: AppliedSealedSecret): Record<string, Buffer> {
  const label = controllerLabel(sealedSecret);
  return Object.fromEntries(
    Object.entries(sealedSecret.spec.encryptedData).map(([key, sealed]) => [key, openSealedValue(privateKey, sealed, label)]),
  );
}
