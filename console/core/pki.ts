/**
 * The console's own certificate authority: it signs the console's server certificate and every
 * agent's client certificate (mutual TLS). ECDSA P-256, built with @peculiar/x509 on WebCrypto so
 * nothing depends on an openssl binary being present.
 */
import 'reflect-metadata';
import { randomBytes, webcrypto } from 'node:crypto';
import { existsSync, readFileSync, unlinkSync } from 'node:fs';
import * as x509 from '@peculiar/x509';
import { writeFileDurably } from '../../protocol/durable-file.js';
import { ALG, fingerprintOfPem, keyToPem, newKeys } from '../../protocol/pki.js';
import { CERT_BACKDATE_MS, certLifeMs } from '../../protocol/renewal.js';

export { fingerprintOfPem, normaliseFingerprint } from '../../protocol/pki.js';
const DAY = 86_400_000;

export interface KeyAndCert {
  certPem: string;
  keyPem: string;
}

async function pemToSigningKey(pem: string): Promise<webcrypto.CryptoKey> {
  const der = x509.PemConverter.decode(pem)[0];
  if (!der) throw new Error('no key in PEM');
  return webcrypto.subtle.importKey('pkcs8', der, ALG, false, ['sign']) as Promise<webcrypto.CryptoKey>;
}

function serial(): string {
  // Positive 128-bit serial (leading bit cleared).
  const b = randomBytes(16);
  b[0] = b[0]! & 0x7f;
  return b.toString('hex');
}

export async function createCa(organisation: string): Promise<KeyAndCert> {
  const keys = await newKeys();
  const cn = `Sekimori Console CA (${organisation.replace(/[,=+<>#;"\\]/g, ' ')})`;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${cn}`,
    notBefore: new Date(Date.now() - DAY),
    notAfter: new Date(Date.now() + 20 * 365 * DAY),
    keys,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString('pem'), keyPem: await keyToPem(keys.privateKey) };
}

function isIp(host: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(host) || host.includes(':');
}

export async function issueServerCert(ca: KeyAndCert, hosts: string[]): Promise<KeyAndCert> {
  const keys = await newKeys();
  const caCert = new x509.X509Certificate(ca.certPem);
  const unique = [...new Set(hosts)];
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${unique[0] ?? 'localhost'}`,
    issuer: caCert.subject,
    notBefore: new Date(Date.now() - CERT_BACKDATE_MS),
    notAfter: new Date(Date.now() + certLifeMs(process.env)),
    signingKey: await pemToSigningKey(ca.keyPem),
    publicKey: keys.publicKey,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(unique.map((h) => (isIp(h) ? { type: 'ip' as const, value: h } : { type: 'dns' as const, value: h }))),
    ],
  });
  return { certPem: cert.toString('pem'), keyPem: await keyToPem(keys.privateKey) };
}

/**
 * Signs an agent's certificate request. The CSR's own signature must verify (proof that the
 * agent holds the key) and its CN must be the agent id being enrolled.
 */
export async function signAgentCsr(ca: KeyAndCert, csrPem: string, agentId: string): Promise<{ certPem: string; fingerprint: string }> {
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(csrPem);
  } catch {
    throw new Error('csrPem is not a PKCS#10 certificate request');
  }
  if (!(await csr.verify())) throw new Error('certificate request signature does not verify');
  if (csr.subject !== `CN=${agentId}`) throw new Error('certificate request subject must be CN=<agentId>');
  const caCert = new x509.X509Certificate(ca.certPem);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${agentId}`,
    issuer: caCert.subject,
    notBefore: new Date(Date.now() - CERT_BACKDATE_MS),
    notAfter: new Date(Date.now() + certLifeMs(process.env)),
    signingKey: await pemToSigningKey(ca.keyPem),
    publicKey: await csr.publicKey.export(ALG, ['verify']),
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
    ],
  });
  const certPem = cert.toString('pem');
  return { certPem, fingerprint: fingerprintOfPem(certPem) };
}


/** Validity of a PEM certificate in epoch ms (renewal decisions, status warnings). */
export function certificateDates(certPem: string): { notBefore: number; notAfter: number; subject: string; fingerprint: string } {
  const c = new x509.X509Certificate(certPem);
  return { notBefore: c.notBefore.getTime(), notAfter: c.notAfter.getTime(), subject: c.subject, fingerprint: fingerprintOfPem(certPem) };
}

/** The DNS names and addresses a server certificate is for, in its order (renewal keeps them). */
export function serverCertHosts(certPem: string): string[] {
  const c = new x509.X509Certificate(certPem);
  const san = c.getExtension(x509.SubjectAlternativeNameExtension);
  if (!san) return [];
  return san.names.items.filter((n) => n.type === 'dns' || n.type === 'ip').map((n) => n.value);
}

/** Where a renewed server pair waits until both of its files are in place (one file: key and certificate together). */
export function serverRenewalFile(serverCertPath: string): string {
  return `${serverCertPath}.renewal.json`;
}

/**
 * Installs a renewed server key and certificate. The pair is first written as one file, so a crash
 * between writing the key and the certificate (a pair that does not match, a console that cannot
 * start) is finished by completeServerRenewal on the next open.
 */
export function installServerPair(paths: { serverCert: string; serverKey: string }, pair: KeyAndCert): void {
  const pending = serverRenewalFile(paths.serverCert);
  writeFileDurably(pending, JSON.stringify(pair), 0o600);
  completeServerRenewal(paths);
}

/** Finishes an installation a crash interrupted (called before the server pair is read); no-op otherwise. */
export function completeServerRenewal(paths: { serverCert: string; serverKey: string }): void {
  const pending = serverRenewalFile(paths.serverCert);
  if (!existsSync(pending)) return;
  let pair: KeyAndCert;
  try {
    pair = JSON.parse(readFileSync(pending, 'utf8')) as KeyAndCert;
  } catch {
    unlinkSync(pending); // a torn file cannot be: the rename is the commit point; anything else is not ours to use
    return;
  }
  if (typeof pair.keyPem !== 'string' || typeof pair.certPem !== 'string') return;
  writeFileDurably(paths.serverKey, pair.keyPem, 0o600);
  writeFileDurably(paths.serverCert, pair.certPem, 0o644);
  unlinkSync(pending);
}
