/**
 * Software inventory over HTTP (in-process, inject()): the agent route (digest → unknown → full
 * list → stored → current; replaced atomically; 413/400/401/429 for hostile bodies and floods) and
 * the web pages (terminal list, search, baseline differences, CSV with BOM and neutralised
 * formulas; names from terminals escaped in HTML).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { approveBaseline, importBaseline } from '../../console/software/store.js';
import { INVENTORY_LIMITS } from '../../console/software/api.js';
import { MAX_INVENTORY_ENTRIES, inventoryDigest, type InventoryEntry } from '../../protocol/api.js';
import { buildTestApp, type TestAgent, type TestApp, type WebSession } from './app.js';

let t: TestApp;
let a: TestAgent;
let b: TestAgent;
let auditor: WebSession;

const E = (name: string, version = '1.0', arch = 'amd64'): InventoryEntry => ({ name, version, arch });
const HOSTILE = '<script>alert(1)</script>"\'`';
const FORMULA = '=cmd|\' /C calc\'!A0';

beforeAll(async () => {
  t = await buildTestApp();
  a = await t.enrollAgent();
  b = await t.enrollAgent();
  auditor = t.session('auditor');
}, 60_000);
afterAll(async () => {
  await t?.close();
});

async function report(agent: TestAgent, entries: InventoryEntry[] | null, digest?: string, extra: Record<string, unknown> = {}) {
  const list = entries ?? [];
  const body = { platform: 'linux', digest: digest ?? inventoryDigest(list), total: list.length, ...(entries ? { packages: entries } : {}), ...extra };
  const r = await t.inject({ method: 'POST', url: '/api/agent/software/inventory', headers: { ...agent.headers, 'content-type': 'application/json' }, payload: JSON.stringify(body) });
  return { status: r.statusCode, body: JSON.parse(r.body) as Record<string, unknown>, headers: r.headers };
}

describe('POST /api/agent/software/inventory', () => {
  const first = [E('bash', '5.2.15-2+b2'), E('coreutils', '9.1-1'), E('libc6', '2.36-9'), E('libc6', '2.36-9', 'i386')];

  it('digest unknown → full list stored → the same digest is current', async () => {
    expect(await report(a, null, inventoryDigest(first))).toMatchObject({ status: 200, body: { status: 'unknown' } });
    expect(await report(a, first)).toMatchObject({ status: 200, body: { status: 'stored' } });
    expect(await report(a, null, inventoryDigest(first))).toMatchObject({ status: 200, body: { status: 'current' } });
    const rows = t.ctx.db.prepare('SELECT name, version, arch FROM software_inventory_entries WHERE agent_id = ? ORDER BY name, arch').all(a.agentId);
    expect(rows).toEqual([E('bash', '5.2.15-2+b2'), E('coreutils', '9.1-1'), E('libc6', '2.36-9'), E('libc6', '2.36-9', 'i386')]);
  });

  it('a changed list replaces the old one entirely (nothing of the old list stays)', async () => {
    const next = [E('bash', '5.2.15-2+b7'), E('vim', '2:9.0.1378-2')];
    expect(await report(a, null, inventoryDigest(next))).toMatchObject({ body: { status: 'unknown' } });
    expect(await report(a, next)).toMatchObject({ status: 200, body: { status: 'stored' } });
    const rows = t.ctx.db.prepare('SELECT name, version FROM software_inventory_entries WHERE agent_id = ? ORDER BY name').all(a.agentId);
    expect(rows).toEqual([
      { name: 'bash', version: '5.2.15-2+b7' },
      { name: 'vim', version: '2:9.0.1378-2' },
    ]);
    await report(a, first); // back to the first list for the page tests
  });

  it('two entries that read the same once made display-safe are stored once (no 500)', async () => {
    const c = await t.enrollAgent();
    const r = await report(c, [E('a\u0007'), E('a\\x07')]);
    expect(r).toMatchObject({ status: 200, body: { status: 'stored' } });
    expect(t.ctx.db.prepare('SELECT name FROM software_inventory_entries WHERE agent_id = ?').all(c.agentId)).toEqual([{ name: 'a\\x07' }]);
  });

  it('another terminal’s digest does not make ours current (lists are per terminal)', async () => {
    expect(await report(b, null, inventoryDigest(first))).toMatchObject({ body: { status: 'unknown' } });
  });

  it.each([
    ['more than 20 000 entries → 413, nothing judged or stored', () => ({ platform: 'linux', digest: '0'.repeat(64), total: 1, packages: Array.from({ length: MAX_INVENTORY_ENTRIES + 1 }, () => E('x')) }), 413, 'too_many_packages'],
    ['a list that is not its digest → 400', () => ({ platform: 'linux', digest: inventoryDigest([E('a')]), total: 1, packages: [E('b')] }), 400, 'digest_mismatch'],
    ['total 2^53 → 400', () => ({ platform: 'linux', digest: inventoryDigest([]), total: 2 ** 53 }), 400, 'invalid_request'],
    ['unknown member → 400', () => ({ platform: 'linux', digest: inventoryDigest([]), total: 0, hostname: 'x' }), 400, 'invalid_request'],
    ['a name of 513 characters → 400', () => ({ platform: 'linux', digest: inventoryDigest([]), total: 1, packages: [E('n'.repeat(513))] }), 400, 'invalid_request'],
  ])('%s', async (_n, body, status, code) => {
    const before = t.ctx.db.prepare('SELECT count(*) AS n FROM software_inventory_entries WHERE agent_id = ?').get(b.agentId);
    const r = await t.inject({ method: 'POST', url: '/api/agent/software/inventory', headers: { ...b.headers, 'content-type': 'application/json' }, payload: JSON.stringify(body()) });
    expect(r.statusCode).toBe(status);
    expect(JSON.parse(r.body)).toMatchObject({ error: code });
    expect(t.ctx.db.prepare('SELECT count(*) AS n FROM software_inventory_entries WHERE agent_id = ?').get(b.agentId)).toEqual(before);
  });

  it('a body over 4 MiB → 413 before it is read', async () => {
    const r = await t.inject({ method: 'POST', url: '/api/agent/software/inventory', headers: { ...b.headers, 'content-type': 'application/json' }, payload: '{"x":"' + 'a'.repeat(4 * 1024 * 1024) + '"}' });
    expect(r.statusCode).toBe(413);
  });

  it('no client certificate → 401; a revoked terminal is refused', async () => {
    const r = await t.inject({ method: 'POST', url: '/api/agent/software/inventory', headers: { 'content-type': 'application/json' }, payload: '{}' });
    expect(r.statusCode).toBe(401);
    const c = await t.enrollAgent();
    t.revoke(c.agentId);
    expect((await report(c, [E('a')])).status).toBe(403);
  });

  it('floods are 429 with Retry-After, per terminal', async () => {
    const c = await t.enrollAgent();
    const list = [E('a')];
    let full = 0;
    for (let i = 0; i < INVENTORY_LIMITS.fullLists.burst; i++) full += (await report(c, list)).status === 200 ? 1 : 0;
    expect(full).toBe(INVENTORY_LIMITS.fullLists.burst);
    const over = await report(c, list);
    expect(over.status).toBe(429);
    expect(Number(over.headers['retry-after'])).toBeGreaterThan(0);
    // Digests stay cheap until their own burst is spent.
    let statuses: number[] = [];
    for (let i = 0; i < INVENTORY_LIMITS.reports.burst; i++) statuses.push((await report(c, null, inventoryDigest(list))).status);
    expect(statuses).toContain(429);
    statuses = [(await report(a, null, inventoryDigest(first))).status];
    expect(statuses).toEqual([200]); // another terminal is not limited by this one
  });
});

describe('web: ソフトウェア資産', () => {
  beforeAll(async () => {
    await report(b, [E(HOSTILE, '1<b>'), E(FORMULA, '+1'), E('bash', '5.2.15-2+b2'), E('zz-extra', '1')]);
  });

  const get = (url: string, s: WebSession = auditor) => t.inject({ method: 'GET', url, headers: s.headers });

  it('lists the terminals that reported, Japanese by default, English on request', async () => {
    const r = await get('/software/inventory');
    expect(r.statusCode).toBe(200);
    expect(r.body).toContain('ソフトウェア資産');
    expect(r.body).toContain(`data-agent="${a.agentId}"`);
    expect(r.body).toContain(`pc-${b.agentId.slice(0, 8)}`);
    const en = await t.inject({ method: 'GET', url: '/software/inventory', headers: { ...auditor.headers, cookie: auditor.headers.cookie + '; __Host-sekimori_lang=en' } });
    expect(en.body).toContain('Software inventory');
  });

  it('which terminals have bash, and bash of one version', async () => {
    const all = await get('/software/inventory?q=bash');
    expect(all.body).toContain('id="inventory-hits"');
    expect(all.body.match(/<tr><td><a href="\/software\/inventory\?agent=/g)?.length).toBe(2);
    const one = await get('/software/inventory?q=bash&v=5.2.15-2%2Bb2');
    expect(one.body.match(/<tr><td><a href="\/software\/inventory\?agent=/g)?.length).toBe(2);
    const none = await get('/software/inventory?q=bash&v=0');
    expect(none.body).toContain('id="inventory-hits-none"');
    const literal = await get('/software/inventory?q=%25'); // % is a character, not a wildcard
    expect(literal.body).toContain('id="inventory-hits-none"');
  });

  it('names from terminals are escaped in HTML', async () => {
    const r = await get(`/software/inventory?agent=${b.agentId}`);
    expect(r.body).not.toContain('<script>alert(1)');
    expect(r.body).toContain('&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&#96;');
    expect(r.body).toContain('1&lt;b&gt;');
    const s = await get(`/software/inventory?q=${encodeURIComponent('<script>')}`);
    expect(s.body).not.toContain('<script>alert');
    expect(s.body).toContain('value="&lt;script&gt;"');
  });

  it('CSV: BOM, CRLF, formulas neutralised, one line per package, export recorded', async () => {
    const r = await get(`/software/inventory.csv?agent=${b.agentId}`);
    expect(r.statusCode).toBe(200);
    expect(r.headers['content-type']).toMatch(/^text\/csv; charset=utf-8/);
    expect(r.headers['content-disposition']).toMatch(/^attachment; filename="sekimori-software-inventory-\d{14}\.csv"$/);
    expect(r.rawPayload.subarray(0, 3)).toEqual(Buffer.from([0xef, 0xbb, 0xbf]));
    const lines = r.body.replace(/^\uFEFF/, '').split('\r\n').filter(Boolean);
    expect(lines[0]).toBe('"terminal_id","hostname","name","version","arch","reported_at"');
    expect(lines.length).toBe(5);
    expect(r.body).toContain(`"'${FORMULA.replace(/"/g, '""')}"`);
    expect(r.body).toContain(`"'+1"`);
    expect(r.body).not.toMatch(/(^|,)"=/m);
    const ev = t.ctx.db.prepare("SELECT count(*) AS n FROM events WHERE type = 'admin.software_inventory_exported'").get() as { n: number };
    expect(ev.n).toBeGreaterThan(0);
    const fleet = await get('/software/inventory.csv?q=bash');
    expect(fleet.body.replace(/^\uFEFF/, '').split('\r\n').filter(Boolean).length).toBe(3);
  });

  it('differences from the approved baseline: missing, extra, other version (page and CSV)', async () => {
    const doc = {
      format: 'sekimori-software-baseline/1',
      host: 'ref-pc',
      os: 'Debian 12',
      createdAt: '2026-11-01T00:00:00Z',
      scope: ['/usr/bin'],
      packages: [
        { name: 'bash', version: '5.2.15-2+b7', arch: 'amd64' },
        { name: 'coreutils', version: '9.1-1', arch: 'amd64' },
      ],
      files: [],
    };
    const bl = importBaseline(t.ctx, JSON.stringify(doc), 'admin');
    approveBaseline(t.ctx, bl.id, 'admin');
    const r = await get(`/software/inventory?agent=${b.agentId}`);
    expect(r.body).toContain('id="baseline-diff"');
    expect(r.body.match(/class="diff-missing"/g)?.length).toBe(1); // coreutils
    expect(r.body.match(/class="diff-version"/g)?.length).toBe(1); // bash
    expect(r.body.match(/class="diff-extra"/g)?.length).toBe(3); // the hostile two and zz-extra
    const csv = await get(`/software/inventory.csv?agent=${b.agentId}&diff=1`);
    const lines = csv.body.replace(/^\uFEFF/, '').split('\r\n').filter(Boolean);
    expect(lines[0]).toBe('"terminal_id","hostname","kind","name","installed_version","arch","baseline_version","baseline_id"');
    expect(lines.filter((l) => l.includes('"missing"')).length).toBe(1);
    expect(lines.filter((l) => l.includes('"extra"')).length).toBe(3);
    expect(lines.find((l) => l.includes('"other_version"'))).toContain('"5.2.15-2+b2"');
  });

  it('an id no terminal reported says so; the pages need a session', async () => {
    const r = await get('/software/inventory?agent=00000000-0000-4000-8000-000000000000');
    expect(r.statusCode).toBe(200);
    expect(r.body).toContain('ソフトウェア一覧を報告した端末はまだありません');
    const anon = await t.inject({ method: 'GET', url: '/software/inventory.csv' });
    expect(anon.statusCode).not.toBe(200);
  });
});
