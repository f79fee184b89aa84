/**
 * The agent renews its client certificate before it expires (issue 17), over mutual TLS with the
 * certificate it has. Never a moment without a working certificate:
 *
 * 1. a new key is made here and the console signs a CSR for the same agent id; from then on the
 *    console accepts the old and the new certificate (console/core/renewal.ts);
 * 2. the old pair and the new pair are written to ONE file, durably (`cert-renewal.json`);
 * 3. the new pair is installed (key, then certificate) and used for the next connections;
 * 4. the agent confirms over the new certificate; the console then accepts only the new one;
 * 5. the file of step 2 is removed.
 *
 * A crash after 2 is finished at the next start (applyPendingPair before the link reads the
 * files, then confirm). A confirm the console does not know (409: e.g. a console restored from a
 * backup taken before the renewal) puts the old pair back. Only a console of protocol 2 or later is
 * asked (an older one has no such route).
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { existsSync, readFileSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { certRenewResponseCheck, renewalState } from '../protocol/renewal.js';
import { consoleCan } from '../protocol/version.js';
import type { LogLevel } from './capability.js';
import { writeFileDurably } from './durable.js';

export interface CertPaths {
  dir: string;
  key: string;
  cert: string;
  ca: string;
}

interface Pair {
  keyPem: string;
  certPem: string;
}
interface PendingRenewal {
  old: Pair;
  next: Pair & { fingerprint: string };
}

/** The link the renewer talks over and swaps credentials on (agent/link.ts MutualTlsLink). */
export interface RenewLink {
  request(method: 'POST', path: string, body: unknown, timeoutMs?: number): Promise<{ status: number; body: unknown }>;
  useCredentials(pair: Pair): void;
  /** The protocol the console last stated; null before any answer. */
  consoleProtocol(): number | null;
}

export function pendingFile(paths: CertPaths): string {
  return join(paths.dir, 'cert-renewal.json');
}

function readPending(paths: CertPaths): PendingRenewal | null {
  const f = pendingFile(paths);
  if (!existsSync(f)) return null;
  try {
    const p = JSON.parse(readFileSync(f, 'utf8')) as PendingRenewal;
    if (typeof p.old?.keyPem === 'string' && typeof p.old.certPem === 'string' && typeof p.next?.keyPem === 'string' && typeof p.next.certPem === 'string') return p;
  } catch {
    // the rename is the commit point: an unreadable file was never ours
  }
  return null;
}

function install(paths: CertPaths, pair: Pair): void {
  writeFileDurably(paths.key, pair.keyPem, 0o600);
  writeFileDurably(paths.cert, pair.certPem, 0o644);
}

/**
 * Before the link reads the key and certificate: finishes installing a renewed pair a crash
 * interrupted (the console accepts it until it is confirmed). True when a confirm is still owed.
 */
export function applyPendingPair(paths: CertPaths): boolean {
  const p = readPending(paths);
  if (!p) return false;
  if (readFileSync(paths.cert, 'utf8') !== p.next.certPem || readFileSync(paths.key, 'utf8') !== p.next.keyPem) install(paths, p.next);
  return true;
}

/** The console's answer must be a certificate for our new key, our agent id, from the CA we trust, valid now. */
export function checkIssued(certPem: string, keyPem: string, caPem: string, agentId: string, now: number): string | null {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch {
    return 'not a certificate';
  }
  if (!cert.checkPrivateKey(createPrivateKey(keyPem))) return 'certificate is not for the new key';
  if (!cert.verify(new X509Certificate(caPem).publicKey)) return 'certificate is not signed by the console CA';
  if (cert.subject.trim() !== `CN=${agentId}`) return 'certificate subject is not this agent';
  const state = renewalState(Date.parse(cert.validFrom), Date.parse(cert.validTo), now);
  if (state === 'expired' || state === 'unreadable') return `certificate validity is ${state}`;
  return null;
}

export class CertRenewer {
  private busy = false;
  private lastError = '';

  constructor(
    private readonly paths: CertPaths,
    private readonly agentId: string,
    private readonly link: RenewLink,
    private readonly log: (level: LogLevel, m: string) => void,
  ) {}

  /** Called after each heartbeat: finishes a pending renewal, or starts one when the certificate is due. Never throws. */
  async check(now = Date.now()): Promise<'renewed' | 'pending' | 'not_due' | 'unsupported' | 'failed' | 'busy'> {
    if (this.busy) return 'busy';
    this.busy = true;
    try {
      const pending = readPending(this.paths);
      if (pending) return await this.confirm(pending);
      const cert = new X509Certificate(readFileSync(this.paths.cert, 'utf8'));
      const state = renewalState(Date.parse(cert.validFrom), Date.parse(cert.validTo), now);
      if (state === 'valid') return 'not_due';
      const proto = this.link.consoleProtocol();
      if (proto === null || !consoleCan(proto, 'cert_renewal')) return 'unsupported';
      return await this.renew(now);
    } catch (e) {
      this.fail((e as Error).message);
      return 'failed';
    } finally {
      this.busy = false;
    }
  }

  private fail(m: string): void {
    // Logged once per distinct reason: a console that refuses keeps refusing every heartbeat.
    if (m !== this.lastError) this.log('warn', `certificate renewal: ${m}`);
    this.lastError = m;
  }

  private async renew(now: number): Promise<'renewed' | 'pending' | 'failed'> {
    // Loaded when a renewal is due (every few months), not by the idle service: the X.509 libraries
    // and reflect-metadata are ≈ 4 MB of heap (bench/agent-footprint).
    const { createKeyAndCsr, fingerprintOfPem } = await import('../protocol/pki.js');
    const { keyPem, csrPem } = await createKeyAndCsr(this.agentId);
    const reply = await this.link.request('POST', '/api/agent/cert/renew', { csrPem }, 30_000);
    if (reply.status !== 200 || !certRenewResponseCheck.check(reply.body)) {
      this.fail(`console answered HTTP ${reply.status}`);
      return 'failed';
    }
    const bad = checkIssued(reply.body.certPem, keyPem, readFileSync(this.paths.ca, 'utf8'), this.agentId, now);
    if (bad) {
      this.fail(bad);
      return 'failed';
    }
    const pending: PendingRenewal = {
      old: { keyPem: readFileSync(this.paths.key, 'utf8'), certPem: readFileSync(this.paths.cert, 'utf8') },
      next: { keyPem, certPem: reply.body.certPem, fingerprint: fingerprintOfPem(reply.body.certPem) },
    };
    writeFileDurably(pendingFile(this.paths), JSON.stringify(pending), 0o600);
    install(this.paths, pending.next);
    this.link.useCredentials(pending.next);
    this.log('info', `certificate renewed (valid until ${reply.body.notAfter}); confirming`);
    return this.confirm(pending);
  }

  private async confirm(p: PendingRenewal): Promise<'renewed' | 'pending' | 'failed'> {
    const reply = await this.link.request('POST', '/api/agent/cert/confirm', { fingerprint: p.next.fingerprint }, 15_000);
    if (reply.status === 200) {
      unlinkSync(pendingFile(this.paths));
      this.lastError = '';
      this.log('info', 'renewed certificate confirmed: the old one is no longer accepted');
      return 'renewed';
    }
    if (reply.status === 409 || reply.status === 403) {
      // The console does not know the new certificate: the old one is what it accepts.
      install(this.paths, p.old);
      this.link.useCredentials(p.old);
      unlinkSync(pendingFile(this.paths));
      this.fail(`console did not accept the renewed certificate (HTTP ${reply.status}); kept the old one`);
      return 'failed';
    }
    this.fail(`confirm answered HTTP ${reply.status}; will retry`);
    return 'pending';
  }
}
