/**
 * Key and certificate helpers used by both sides: the agent makes its key and certificate request,
 * both compute certificate fingerprints. ECDSA P-256 on WebCrypto via @peculiar/x509.
 */
import 'reflect-metadata';
import { X509Certificate as NodeX509, createHash, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

export const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

export async function newKeys(): Promise<webcrypto.CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
}

export async function keyToPem(key: webcrypto.CryptoKey): Promise<string> {
  return x509.PemConverter.encode(await webcrypto.subtle.exportKey('pkcs8', key), 'PRIVATE KEY');
}

/** Generates a private key and a PKCS#10 request whose subject CN is `commonName`. */
export async function createKeyAndCsr(commonName: string): Promise<{ keyPem: string; csrPem: string }> {
  const keys = await newKeys();
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: `CN=${commonName}`, keys, signingAlgorithm: ALG });
  return { keyPem: await keyToPem(keys.privateKey), csrPem: csr.toString('pem') };
}

/** SHA-256 of the certificate's DER, lowercase hex without separators. */
export function fingerprintOfPem(pem: string): string {
  return createHash('sha256').update(new NodeX509(pem).raw).digest('hex');
}

/** Accepts `AB:CD:…`, `abcd…` or `SHA256:…` forms. */
export function normaliseFingerprint(fp: string): string {
  return fp.replace(/^sha-?256:/i, '').replace(/[:\s]/g, '').toLowerCase();
}
