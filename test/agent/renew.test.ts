/**
 * agent/renew.ts with a real CA (console/core/pki.ts) and a scripted console link: the agent never
 * holds no working certificate — whatever the console answers, whatever step a crash interrupts.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CertRenewer, applyPendingPair, checkIssued, pendingFile, type CertPaths, type RenewLink } from '../../agent/renew.js';
import { createCa, signAgentCsr, type KeyAndCert } from '../../console/core/pki.js';
import { createKeyAndCsr, fingerprintOfPem } from '../../protocol/pki.js';

const ID = '0b5e3c1e-1111-4222-8333-444455556666';
let ca: KeyAndCert;
let otherCa: KeyAndCert;
const saved = process.env.SEKIMORI_TEST_CERT_SECONDS;
const dirs: string[] = [];

beforeAll(async () => {
  process.env.SEKIMORI_TEST_CERT_SECONDS = '60';
  ca = await createCa('テスト市');
  otherCa = await createCa('よその市');
});
afterAll(() => {
  if (saved === undefined) delete process.env.SEKIMORI_TEST_CERT_SECONDS;
  else process.env.SEKIMORI_TEST_CERT_SECONDS = saved;
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function issued(agentId = ID, by = ca): Promise<{ keyPem: string; certPem: string }> {
  const { keyPem, csrPem } = await createKeyAndCsr(agentId);
  return { keyPem, certPem: (await signAgentCsr(by, csrPem, agentId)).certPem };
}

async function state(): Promise<CertPaths> {
  const dir = mkdtempSync(join(tmpdir(), 'renew-'));
  dirs.push(dir);
  const p = { dir, key: join(dir, 'agent-key.pem'), cert: join(dir, 'agent-cert.pem'), ca: join(dir, 'console-ca.pem') };
  const first = await issued();
  writeFileSync(p.key, first.keyPem);
  writeFileSync(p.cert, first.certPem);
  writeFileSync(p.ca, ca.certPem);
  return p;
}

/** A console that signs renewals and answers confirms as scripted; records what it was asked. */
function consoleLink(confirm: (n: number) => number | 'unreachable', protocol: number | null = 2) {
  const calls: string[] = [];
  let confirms = 0;
  const creds: string[] = [];
  const link: RenewLink = {
    async request(_m, path, body) {
      calls.push(path);
      if (path === '/api/agent/cert/renew') {
        const signed = await signAgentCsr(ca, (body as { csrPem: string }).csrPem, ID);
        return { status: 200, body: { certPem: signed.certPem, fingerprint: signed.fingerprint, notAfter: new Date(Date.now() + 60_000).toISOString() } };
      }
      const r = confirm(confirms++);
      if (r === 'unreachable') throw new Error('ECONNREFUSED');
      return { status: r, body: {} };
    },
    useCredentials: (p) => void creds.push(fingerprintOfPem(p.certPem)),
    consoleProtocol: () => protocol,
  };
  return { link, calls, creds };
}
const quiet = () => {};
const DUE = () => Date.now() + 50_000; // 60-second certificates are due after 42 s

describe('checkIssued: the console answer must be our certificate', () => {
  it.each<[string, () => Promise<[string, string]>, RegExp | null]>([
    ['ours', async () => { const k = await createKeyAndCsr(ID); return [(await signAgentCsr(ca, k.csrPem, ID)).certPem, k.keyPem]; }, null],
    ['for another key', async () => { const a = await issued(); const b = await createKeyAndCsr(ID); return [a.certPem, b.keyPem]; }, /not for the new key/],
    ['for another terminal', async () => { const k = await createKeyAndCsr('ffffffff-1111-4222-8333-444455556666'); return [(await signAgentCsr(ca, k.csrPem, 'ffffffff-1111-4222-8333-444455556666')).certPem, k.keyPem]; }, /subject/],
    ['from another CA', async () => { const k = await createKeyAndCsr(ID); return [(await signAgentCsr(otherCa, k.csrPem, ID)).certPem, k.keyPem]; }, /not signed by the console CA/],
    ['not a certificate', async () => ['-----BEGIN CERTIFICATE-----\n=cmVzdW1l\n-----END CERTIFICATE-----\n', (await createKeyAndCsr(ID)).keyPem], /not a certificate/],
    ['<script> text', async () => ['<script>alert(1)</script>', (await createKeyAndCsr(ID)).keyPem], /not a certificate/],
  ])('%s', async (_what, make, want) => {
    const [cert, key] = await make();
    const r = checkIssued(cert, key, ca.certPem, ID, Date.now());
    if (want === null) expect(r).toBeNull();
    else expect(r).toMatch(want);
  });

  it('an expired answer is refused (year 9999 clock)', async () => {
    const k = await createKeyAndCsr(ID);
    const cert = (await signAgentCsr(ca, k.csrPem, ID)).certPem;
    expect(checkIssued(cert, k.keyPem, ca.certPem, ID, Date.UTC(9999, 0, 1))).toMatch(/expired/);
  });
});

describe('CertRenewer', () => {
  it('not due → asks nothing', async () => {
    const p = await state();
    const c = consoleLink(() => 200);
    expect(await new CertRenewer(p, ID, c.link, quiet).check()).toBe('not_due');
    expect(c.calls).toEqual([]);
  });

  it('due, but the console is 0.1.0 (protocol 1) or not heard yet → asks nothing', async () => {
    for (const proto of [1, null]) {
      const p = await state();
      const c = consoleLink(() => 200, proto);
      expect(await new CertRenewer(p, ID, c.link, quiet).check(DUE())).toBe('unsupported');
      expect(c.calls).toEqual([]);
    }
  });

  it('due → new key and certificate installed, used, confirmed; the pair file is gone', async () => {
    const p = await state();
    const before = readFileSync(p.cert, 'utf8');
    const c = consoleLink(() => 200);
    expect(await new CertRenewer(p, ID, c.link, quiet).check(DUE())).toBe('renewed');
    const after = readFileSync(p.cert, 'utf8');
    expect(after).not.toBe(before);
    expect(checkIssued(after, readFileSync(p.key, 'utf8'), ca.certPem, ID, Date.now())).toBeNull();
    expect(c.calls).toEqual(['/api/agent/cert/renew', '/api/agent/cert/confirm']);
    expect(c.creds).toEqual([fingerprintOfPem(after)]);
    expect(existsSync(pendingFile(p))).toBe(false);
  });

  it('confirm unreachable → new pair kept with its pair file; the next check confirms', async () => {
    const p = await state();
    const c = consoleLink((n) => (n === 0 ? 'unreachable' : 200));
    const r = new CertRenewer(p, ID, c.link, quiet);
    expect(await r.check(DUE())).toBe('failed');
    expect(existsSync(pendingFile(p))).toBe(true);
    expect(applyPendingPair(p)).toBe(true); // a restart now would confirm
    expect(await r.check()).toBe('renewed');
    expect(c.calls).toEqual(['/api/agent/cert/renew', '/api/agent/cert/confirm', '/api/agent/cert/confirm']);
    expect(existsSync(pendingFile(p))).toBe(false);
  });

  it('the console does not know the new certificate (409) → the old pair comes back', async () => {
    const p = await state();
    const oldKey = readFileSync(p.key, 'utf8');
    const oldCert = readFileSync(p.cert, 'utf8');
    const c = consoleLink(() => 409);
    expect(await new CertRenewer(p, ID, c.link, quiet).check(DUE())).toBe('failed');
    expect(readFileSync(p.key, 'utf8')).toBe(oldKey);
    expect(readFileSync(p.cert, 'utf8')).toBe(oldCert);
    expect(c.creds.at(-1)).toBe(fingerprintOfPem(oldCert));
    expect(existsSync(pendingFile(p))).toBe(false);
  });

  it('a crash between writing the key and the certificate is finished before the link reads them', async () => {
    const p = await state();
    const next = await issued();
    const old = { keyPem: readFileSync(p.key, 'utf8'), certPem: readFileSync(p.cert, 'utf8') };
    writeFileSync(pendingFile(p), JSON.stringify({ old, next: { ...next, fingerprint: fingerprintOfPem(next.certPem) } }));
    writeFileSync(p.key, next.keyPem); // torn: new key, old certificate
    expect(applyPendingPair(p)).toBe(true);
    expect(readFileSync(p.cert, 'utf8')).toBe(next.certPem);
    expect(readFileSync(p.key, 'utf8')).toBe(next.keyPem);
  });

  it('an unreadable pair file is not used (the installed pair stays)', async () => {
    const p = await state();
    const cert = readFileSync(p.cert, 'utf8');
    for (const junk of ['{', '{"old":1,"next":2}', 'null', '[]']) {
      writeFileSync(pendingFile(p), junk);
      expect(applyPendingPair(p)).toBe(false);
      expect(readFileSync(p.cert, 'utf8')).toBe(cert);
    }
  });
});
