/** Throw-away key pairs and self-signed certificates, made at test time, standing in for a controller's. */
import 'reflect-metadata'; // @peculiar/x509's dependency injection needs it loaded first
import { KeyObject, webcrypto } from 'node:crypto';
import { X509CertificateGenerator } from '@peculiar/x509';

export interface TestCertificate {
  /** The certificate as PEM, like `kubeseal --fetch-cert` prints it. */
  pem: string;
  privateKey: KeyObject;
}

const day = 24 * 60 * 60 * 1000;
const algorithms = {
  rsa: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', publicExponent: new Uint8Array([1, 0, 1]), modulusLength: 2048 },
  ec: { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' },
};

/** An RSA-2048 (or P-256) certificate valid from yesterday for `validDays` (negative: already expired). */
export async function makeCertificate({ keyType = 'rsa', validDays = 30 }: { keyType?: 'rsa' | 'ec'; validDays?: number } = {}): Promise<TestCertificate> {
  const algorithm = algorithms[keyType];
  const keys = (await webcrypto.subtle.generateKey(algorithm, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const now = Date.now();
  const certificate = await X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: '01',
      name: 'O=sealed-secret-test, CN=sealed-secret-test',
      notBefore: new Date(now - (validDays < 0 ? 2 * -validDays : 1) * day),
      notAfter: new Date(now + validDays * day),
      keys,
      signingAlgorithm: algorithm,
    },
    webcrypto as unknown as Crypto,
  );
  return { pem: certificate.toString('pem'), privateKey: KeyObject.from(keys.privateKey) };
}
