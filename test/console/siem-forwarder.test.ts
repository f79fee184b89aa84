/**
 * The forwarder in-process against a Node TLS receiver (issue 17): the SIEM's certificate is
 * checked against the configured CA AND name (fail closed: a wrong name or another CA gets nothing),
 * frames are RFC 5425 octet-counted and arrive in stored order, the cursor is stored only after
 * a batch settled, and an unreachable SIEM gives ONE "stopped" event however often it retries.
 * (The real receiver, rsyslog, is the siem tier: test/e2e/siem.)
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type Server, type TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initConsole, openConsole, type OpenConsole } from '../../console/core/context.js';
import { parseMessage } from '../../console/siem/format.js';
import { connectSiem, SiemForwarder } from '../../console/siem/forwarder.js';
import { getState, putConfig, type SiemConfig } from '../../console/siem/store.js';
import { haveCommand } from '../e2e/tools.js';
import { makeCerts, type Certs } from '../../bench/siem-rsyslog.js';

const hasOpenssl = haveCommand('openssl');
if (!hasOpenssl) process.stderr.write('\n*** siem forwarder test SKIPPED: openssl missing (apt-get install openssl)\n');

/** Splits an octet-counted stream into messages (RFC 5425 §4.3). */
function deframe(buf: Buffer): { msgs: string[]; rest: Buffer } {
  const msgs: string[] = [];
  let off = 0;
  for (;;) {
    const sp = buf.indexOf(0x20, off);
    if (sp < 0) break;
    const len = Number(buf.subarray(off, sp).toString('ascii'));
    if (!Number.isInteger(len) || len <= 0) throw new Error(`bad frame length at ${off}`);
    if (buf.length < sp + 1 + len) break;
    msgs.push(buf.subarray(sp + 1, sp + 1 + len).toString('utf8'));
    off = sp + 1 + len;
  }
  return { msgs, rest: buf.subarray(off) };
}

describe.skipIf(!hasOpenssl)('SIEM forwarder against a TLS receiver', () => {
  let dir = '';
  let certs: Certs;
  let other: Certs;
  let ctx: OpenConsole;
  let server: Server;
  let port = 0;
  const received: string[] = [];
  const sockets = new Set<TLSSocket>();

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sekimori-siemfwd-'));
    mkdirSync(join(dir, 'a'));
    mkdirSync(join(dir, 'b'));
    certs = makeCerts(join(dir, 'a'));
    other = makeCerts(join(dir, 'b')); // another CA with the same names
    await initConsole(join(dir, 'data'), { sans: [], organisation: 'テスト市' });
    ctx = openConsole(join(dir, 'data'));
    server = createServer(
      { cert: readFileSync(certs.serverCert), key: readFileSync(certs.serverKey), ca: readFileSync(certs.ca), requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.2' },
      (sock) => {
        sockets.add(sock);
        let buf: Buffer = Buffer.alloc(0);
        sock.on('data', (d: Buffer) => {
          const r = deframe(Buffer.concat([buf, d]));
          received.push(...r.msgs);
          buf = r.rest;
        });
        sock.on('error', () => {});
        sock.on('close', () => sockets.delete(sock));
      },
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    port = (server.address() as { port: number }).port;
  }, 60_000);

  afterAll(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => server?.close(() => r()));
    ctx?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const cfg = (over: Partial<SiemConfig> = {}): SiemConfig => ({
    enabled: true,
    host: '127.0.0.1',
    port,
    name: 'siem.test',
    caPem: readFileSync(certs.ca, 'utf8'),
    clientCertPem: readFileSync(certs.clientCert, 'utf8'),
    clientKeySealed: null,
    facility: 10,
    updatedAt: new Date().toISOString(),
    updatedBy: 'test',
    ...over,
  });
  const key = () => readFileSync(certs.clientKey, 'utf8');

  it.each<[string, Partial<SiemConfig>, RegExp]>([
    ['a name the certificate does not carry', { name: 'other.test' }, /altname|Hostname\/IP does not match/i],
    ["another CA's certificate", {}, /self[- ]signed|unable to verify|certificate/i],
  ])('refuses %s', async (_n, over, re) => {
    const c = over.name ? cfg(over) : cfg({ caPem: readFileSync(other.ca, 'utf8') });
    await expect(connectSiem(c, key())).rejects.toThrow(re);
  });

  it('connects with the right CA and name (TLS 1.2 or later), the IP as name works too', async () => {
    for (const name of ['siem.test', '127.0.0.1']) {
      const s = await connectSiem(cfg({ name }), key());
      expect(['TLSv1.2', 'TLSv1.3']).toContain(s.getProtocol());
      s.destroy();
    }
  });

  it('forwards in stored order, octet-counted, and stores the cursor after the batch settled', async () => {
    for (let i = 0; i < 30; i++) ctx.recordEvent({ type: 'admin.login', user: `user${i}`, data: { from: '127.0.0.1', role: 'admin' } });
    putConfig(ctx.db, { ...cfg(), clientKeySealed: ctx.seal(key()) });
    const maxRid = (ctx.db.prepare('SELECT max(rid) AS m FROM events').get() as { m: number }).m;
    const f = new SiemForwarder(ctx, { log: () => {}, settleMs: 200 });
    f.start();
    const deadline = Date.now() + 30_000;
    while (getState(ctx.db).cursorRid < maxRid && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    await f.stop();
    expect(getState(ctx.db).cursorRid).toBe(maxRid);
    const seqs = received.map((m) => Number(new Map(parseMessage(m)!.sd[0]!.params).get('seq')));
    expect(seqs.length).toBeGreaterThanOrEqual(maxRid);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(received.some((m) => m.includes('user29'))).toBe(true);
  }, 60_000);

  it('an unreachable SIEM: state down, ONE stopped event for many retries, nothing stored as forwarded', async () => {
    const before = getState(ctx.db).cursorRid;
    // A wrong name: every attempt fails the certificate check (fail closed).
    putConfig(ctx.db, { ...cfg({ name: 'wrong.test' }), clientKeySealed: ctx.seal(key()), updatedAt: new Date(Date.now() + 1).toISOString() });
    ctx.recordEvent({ type: 'admin.login', user: 'after', data: { from: '127.0.0.1', role: 'admin' } });
    const f = new SiemForwarder(ctx, { log: () => {}, settleMs: 200 });
    f.start();
    const deadline = Date.now() + 20_000;
    while (getState(ctx.db).state !== 'down' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    // Backoff 1 s, 2 s …: a few more failed attempts in the next 4 s, none of them a new event.
    await new Promise((r) => setTimeout(r, 4000));
    await f.stop();
    const s = getState(ctx.db);
    expect(s.state).toBe('down');
    expect(s.lastError).toMatch(/altname|does not match/i);
    const stopped = ctx.db.prepare("SELECT count(*) AS n FROM events WHERE type = 'console.siem_stopped'").get() as { n: number };
    expect(stopped.n).toBe(1);
    expect(s.cursorRid).toBe(before);
  }, 60_000);
});
