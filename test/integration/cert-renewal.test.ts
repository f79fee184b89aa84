/**
 * Issue 17: certificates renewed before expiry, proven with a real console and a real agent whose
 * certificates live 60 seconds (SEKIMORI_TEST_CERT_SECONDS, test-only: protocol/renewal.ts). The
 * agent renews its client certificate (new key, same agent id) and the console its server
 * certificate (same names, new key, served without a restart); the link carries on after both
 * original certificates have expired. Also: the old client certificate is refused once the new one
 * is confirmed, a revoked terminal cannot renew, an agent request of a refused protocol gets 426 and
 * an event, and every answer states the protocol.
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { connect } from 'node:tls';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentPaths } from '../../agent/state.js';
import { fingerprintOfPem } from '../../protocol/pki.js';
import { enrollAgent, rawRequest, startConsole, tempDir, waitFor, type TestAgent, type TestConsole } from './harness.js';
import { X509Certificate, createHash } from 'node:crypto';

const LIFE_S = 60;

/** The certificate the console serves on a fresh connection (no client certificate), as its SHA-256 fingerprint and expiry. */
function servedCertificate(c: TestConsole): Promise<{ fingerprint: string; notAfter: number }> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port: c.port, ca: readFileSync(join(c.dataDir, 'ca.pem')), servername: 'localhost', minVersion: 'TLSv1.3' }, () => {
      const peer = s.getPeerCertificate(false);
      resolve({ fingerprint: createHash('sha256').update(peer.raw).digest('hex'), notAfter: Date.parse(peer.valid_to) });
      s.end();
    });
    s.setTimeout(10_000, () => s.destroy(new Error('timeout')));
    s.on('error', reject);
  });
}

describe('certificate renewal (real console, real agent, 60-second certificates)', () => {
  let c: TestConsole;
  let a: TestAgent;
  let scope: string;
  const saved = process.env.SEKIMORI_TEST_CERT_SECONDS;

  beforeAll(async () => {
    process.env.SEKIMORI_TEST_CERT_SECONDS = String(LIFE_S); // inherited by init, serve and enrol
    scope = tempDir('renew-scope');
    c = await startConsole({
      policy: {
        agent: { heartbeatSeconds: 2, uploadBatchSize: 200 },
        // The real agent watches only an empty folder of its own (never other tests' processes).
        software: { mode: 'monitor', locations: [scope], preExec: { enabled: false, fallback: 'deny', timeoutMs: 1000, marks: [] } },
      },
    });
    a = await enrollAgent(c);
  }, 60_000);

  afterAll(async () => {
    if (saved === undefined) delete process.env.SEKIMORI_TEST_CERT_SECONDS;
    else process.env.SEKIMORI_TEST_CERT_SECONDS = saved;
    await a?.cleanup();
    await c?.cleanup();
  });

  it('renews both certificates before they expire and the link carries on past their expiry', async () => {
    const p = agentPaths(a.stateDir);
    const firstCert = readFileSync(p.cert, 'utf8');
    const firstFp = fingerprintOfPem(firstCert);
    const firstNotAfter = Date.parse(new X509Certificate(firstCert).validTo);
    expect(firstNotAfter - Date.now()).toBeLessThan(LIFE_S * 1000 + 5_000); // the test-only life took effect
    // The old pair, kept to show it is refused once the new one is confirmed.
    const oldState = join(tempDir('renew-old'), 'state');
    mkdirSync(oldState, { recursive: true });
    copyFileSync(p.key, agentPaths(oldState).key);
    copyFileSync(p.cert, agentPaths(oldState).cert);
    const server0 = await servedCertificate(c);
    const consolePid = c.proc.pid;

    // Agent: renewed (new key and certificate on disk, pending file gone) and confirmed on the console.
    const renewed = await waitFor(
      'agent.cert_renewed on the console',
      () => c.events(['--type', 'agent.cert_renewed']).find((e) => e.terminalId === a.agentId && e.data.oldFingerprint === firstFp) ?? null,
      LIFE_S * 1000 + 30_000,
      1_000,
    );
    const newFp = String(renewed.data.newFingerprint);
    expect(newFp).not.toBe(firstFp);
    await waitFor('renewal file removed', () => !existsSync(join(p.dir, 'cert-renewal.json')), 20_000);
    const nowCert = readFileSync(p.cert, 'utf8');
    expect(new X509Certificate(nowCert).subject.trim()).toBe(`CN=${a.agentId}`);
    expect(new X509Certificate(nowCert).checkPrivateKey((await import('node:crypto')).createPrivateKey(readFileSync(p.key, 'utf8')))).toBe(true);

    // The old certificate (still within its validity) is no longer accepted.
    if (Date.now() < firstNotAfter - 2_000) {
      const old = await rawRequest(c, 'POST', '/api/agent/heartbeat', { agentState: oldState, body: '{}' });
      expect(old.status).toBe(403);
      expect(old.body).toContain('unknown_agent');
    }

    // Console: the server certificate is renewed in place (same process), same names, new key.
    const ev = await waitFor('console.server_cert_renewed', () => c.events(['--type', 'console.server_cert_renewed'])[0] ?? null, LIFE_S * 1000 + 30_000, 1_000);
    expect(ev.data.oldFingerprint).toBe(server0.fingerprint);
    expect(ev.data.hosts).toEqual(expect.arrayContaining(['localhost', '127.0.0.1']));
    const server1 = await waitFor('the renewed server certificate served', async () => {
      const s = await servedCertificate(c);
      return s.fingerprint !== server0.fingerprint ? s : null;
    }, 20_000, 500);
    expect(server1.notAfter).toBeGreaterThan(server0.notAfter);
    expect(c.proc.pid).toBe(consolePid);
    expect(c.proc.exitCode).toBeNull();

    // Past the expiry of both original certificates, events still arrive and heartbeats still land.
    const expiredAt = Math.max(firstNotAfter, server0.notAfter);
    await waitFor('original certificates expired', () => Date.now() > expiredAt + 1_000, LIFE_S * 1000 + 10_000, 500);
    a.append(3, 'agent.error');
    await waitFor(
      'events uploaded after expiry',
      () => c.events(['--type', 'agent.error']).filter((e) => e.terminalId === a.agentId && Date.parse(e.ts) > expiredAt - 5_000).length >= 3 || null,
      60_000,
      1_000,
    );
    const st = a.status();
    expect(Date.parse(String(st.lastHeartbeat))).toBeGreaterThan(expiredAt);
    expect(a.output()).not.toMatch(/certificate renewal: /);
  }, 300_000);

  it('states the protocol on every answer and refuses an agent request of a refused protocol with 426 and an event', async () => {
    const ok = await rawRequest(c, 'GET', '/api/agent/ca');
    expect(ok.status).toBe(200);
    expect(ok.headers['sekimori-protocol']).toBe('2');
    for (const h of ['0', 'two', '9007199254740992']) {
      const r = await rawRequest(c, 'POST', '/api/agent/heartbeat', { agentState: a.stateDir, body: '{}', headers: { 'sekimori-protocol': h } });
      expect(r.status).toBe(426);
      expect(r.headers.upgrade).toBe('Sekimori-Protocol/2');
      expect(r.headers['sekimori-protocol']).toBe('2');
      expect((r.json() as { message: string }).message).toContain('エージェントを更新');
    }
    const e = await waitFor('agent.protocol_refused', () => c.events(['--type', 'agent.protocol_refused'])[0] ?? null, 20_000, 500);
    expect(e.data.reason).toBe('too_old');
    expect(e.data.version).toBe(0);
  }, 60_000);

  it('a revoked terminal cannot renew', async () => {
    expect(c.cli(['revoke', a.agentId]).code).toBe(0);
    const { csrPem } = await (await import('../../protocol/pki.js')).createKeyAndCsr(a.agentId);
    const r = await rawRequest(c, 'POST', '/api/agent/cert/renew', { agentState: a.stateDir, body: JSON.stringify({ csrPem }) });
    expect(r.status).toBe(403);
    expect(r.body).toContain('agent_revoked');
  }, 60_000);
});
