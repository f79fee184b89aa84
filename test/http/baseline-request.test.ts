/**
 * "この端末を基準にする" through the console's real routes (in-process app): the administrator's
 * click (CSRF, admin only, idempotent), the request riding on the terminal's software sync answer,
 * the terminal's upload (mutual TLS identity, one answer per request, size-capped, rate-limited)
 * arriving as a PENDING baseline, and approval publishing the next policy version.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { baselineRequestOf } from '../../agent/software/baseline-request.js';
import { BASELINE_MAX_BYTES } from '../../protocol/api.js';
import type { SoftwareBaselineDocument } from '../../protocol/policy-software.js';
import { BASELINE_UPLOAD_LIMIT } from '../../console/software/api.js';
import { listBaselines, parseScope } from '../../console/software/store.js';
import { buildTestApp, type TestAgent, type TestApp, type WebSession } from './app.js';

const FORM = 'application/x-www-form-urlencoded';
const JSON_TYPE = 'application/json';

function doc(over: Partial<SoftwareBaselineDocument> = {}): SoftwareBaselineDocument {
  return {
    format: 'sekimori-software-baseline/1',
    host: 'PC-KOSEKI-07',
    os: 'Debian 12',
    createdAt: '2026-11-30T00:00:00.000Z',
    scope: ['/usr/local/bin'],
    packages: [{ name: 'bash', version: '5.2.15-2', arch: 'amd64' }],
    files: [{ path: '/usr/local/bin/tool', sha256: 'a'.repeat(64), size: 10 }],
    ...over,
  };
}

describe('baseline by click (routes)', () => {
  let t: TestApp;
  let agent: TestAgent;
  let other: TestAgent;
  let admin: WebSession;
  let auditor: WebSession;

  const post = (url: string, s: WebSession, form: Record<string, string>, csrf = s.csrf) =>
    t.inject({ method: 'POST', url, headers: { ...s.headers, 'content-type': FORM }, payload: new URLSearchParams({ _csrf: csrf, ...form }).toString() });
  const sync = (a: TestAgent) => t.inject({ method: 'POST', url: '/api/agent/software/sync', headers: { ...a.headers, 'content-type': JSON_TYPE }, payload: JSON.stringify({ quarantine: [], results: [] }) });
  const upload = (a: TestAgent, body: unknown) => t.inject({ method: 'POST', url: '/api/agent/software/baseline', headers: { ...a.headers, 'content-type': JSON_TYPE }, payload: JSON.stringify(body) });
  const events = (type: string) => t.ctx.db.prepare('SELECT user, data, terminal_id FROM events WHERE type = ? ORDER BY rid').all(type) as { user: string | null; data: string; terminal_id: string }[];

  beforeAll(async () => {
    t = await buildTestApp();
    agent = await t.enrollAgent();
    other = await t.enrollAgent();
    t.ctx.db.prepare('UPDATE agents SET hostname = ? WHERE id = ?').run('PC-KOSEKI-07', agent.agentId);
    admin = t.session('admin');
    auditor = t.session('auditor');
  });
  afterAll(async () => t?.close());

  it('the terminal page offers the button to administrators only', async () => {
    const a = await t.inject({ method: 'GET', url: `/terminals/${agent.agentId}`, headers: admin.headers });
    expect(a.body).toContain('この端末を基準にする');
    expect(a.body).toContain('id="baseline-form"');
    const b = await t.inject({ method: 'GET', url: `/terminals/${agent.agentId}`, headers: auditor.headers });
    expect(b.statusCode).toBe(200);
    expect(b.body).not.toContain('id="baseline-form"');
  });

  it('refuses an auditor, a missing CSRF token, a bad scope', async () => {
    expect((await post(`/terminals/${agent.agentId}/baseline`, auditor, { scope: '' })).statusCode).toBe(403);
    expect((await post(`/terminals/${agent.agentId}/baseline`, admin, { scope: '' }, 'forged')).statusCode).toBe(403);
    const bad = await post(`/terminals/${agent.agentId}/baseline`, admin, { scope: '/usr/bin\n../etc' });
    expect(bad.statusCode).toBe(400);
    expect(bad.body).toContain('絶対パス');
    expect((await post(`/terminals/${randomUUID()}/baseline`, admin, { scope: '' })).statusCode).toBe(400);
    expect(events('admin.software_baseline_requested')).toHaveLength(0);
  });

  it('an admin click records the request (event first) and is idempotent', async () => {
    const r1 = await post(`/terminals/${agent.agentId}/baseline`, admin, { scope: '/usr/local/bin\n/opt/app' });
    expect(r1.statusCode).toBe(303);
    const r2 = await post(`/terminals/${agent.agentId}/baseline`, admin, { scope: '/usr/local/bin' });
    expect(r2.statusCode).toBe(303);
    const ev = events('admin.software_baseline_requested');
    expect(ev).toHaveLength(1);
    expect(ev[0]!.terminal_id).toBe(agent.agentId);
    expect(JSON.parse(ev[0]!.data)).toMatchObject({ agentId: agent.agentId, hostname: 'PC-KOSEKI-07', scope: ['/usr/local/bin', '/opt/app'] });
    const page = await t.inject({ method: 'GET', url: `/terminals/${agent.agentId}`, headers: admin.headers });
    expect(page.body).toContain('data-state="requested"');
    expect(page.body).not.toContain('id="baseline-form"'); // one open request at a time
  });

  let requestId = '';
  it("the request rides on that terminal's sync answer only", async () => {
    const mine = await sync(agent);
    expect(mine.statusCode).toBe(200);
    const req = baselineRequestOf(mine.json());
    expect(req?.scope).toEqual(['/usr/local/bin', '/opt/app']);
    requestId = req!.id;
    expect(baselineRequestOf((await sync(agent)).json())?.id).toBe(requestId); // repeated until answered
    expect((await sync(other)).json()).toEqual({ restore: [] });
    const page = await t.inject({ method: 'GET', url: `/terminals/${agent.agentId}`, headers: admin.headers });
    expect(page.body).toContain('data-state="sent"');
  });

  it("another terminal cannot answer it; a body not matching the schema is 400 naming the path", async () => {
    const r = await upload(other, { requestId, document: doc() });
    expect(r.statusCode).toBe(404);
    const bad = await upload(agent, { requestId, document: doc(), extra: 1 });
    expect(bad.statusCode).toBe(400);
    const noId = await upload(agent, { requestId: 'x', document: doc() });
    expect(noId.statusCode).toBe(400);
    expect(noId.body).toContain('requestId');
  });

  it('the upload becomes a PENDING baseline; approval publishes the next policy version', async () => {
    const before = t.ctx.currentPolicy().policy.version;
    const r = await upload(agent, { requestId, document: doc({ host: '<b>PC-KOSEKI-07</b>' }) });
    expect(r.statusCode, r.body).toBe(200);
    const { status, baselineId } = r.json() as { status: string; baselineId: string };
    expect(status).toBe('stored');
    const row = listBaselines(t.ctx).find((b) => b.id === baselineId)!;
    expect(row.status).toBe('pending');
    expect(row.importedBy).toContain(admin.username);
    expect(events('admin.software_baseline_imported').map((e) => JSON.parse(e.data).id)).toContain(baselineId);
    // The request is closed: the sync answer no longer carries it, a second upload is 409.
    expect((await sync(agent)).json()).toEqual({ restore: [] });
    expect((await upload(agent, { requestId, document: doc() })).statusCode).toBe(409);
    const page = await t.inject({ method: 'GET', url: `/terminals/${agent.agentId}`, headers: admin.headers });
    expect(page.body).toContain('data-state="uploaded"');
    const sw = await t.inject({ method: 'GET', url: '/software', headers: admin.headers });
    expect(sw.body).toContain(baselineId);
    expect(sw.body).toContain('&lt;b&gt;PC-KOSEKI-07&lt;/b&gt;');
    const ok = await post('/software/baselines/approve', admin, { id: baselineId });
    expect(ok.statusCode).toBe(303);
    const policy = t.ctx.currentPolicy().policy;
    expect(policy.version).toBe(before + 1);
    expect((policy.software as { baseline: { id: string } }).baseline.id).toBe(baselineId);
  });

  it('an invalid document closes the request with the reason; an agent error too', async () => {
    const fresh = await t.enrollAgent(); // its own upload budget
    await post(`/terminals/${fresh.agentId}/baseline`, admin, { scope: '' });
    const id1 = baselineRequestOf((await sync(fresh)).json())!.id;
    const bad = await upload(fresh, { requestId: id1, document: doc({ files: [{ path: 'relative', sha256: 'zz', size: -1 }] as never }) });
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toMatchObject({ error: 'invalid_baseline' });
    let page = await t.inject({ method: 'GET', url: `/terminals/${fresh.agentId}`, headers: admin.headers });
    expect(page.body).toContain('data-state="failed"');
    expect(page.body).toContain('id="baseline-form"'); // may ask again
    await post(`/terminals/${fresh.agentId}/baseline`, admin, { scope: '' });
    const id2 = baselineRequestOf((await sync(fresh)).json())!.id;
    expect(id2).not.toBe(id1);
    const failed = await upload(fresh, { requestId: id2, error: 'capture failed: <script>alert(1)</script>' });
    expect(failed.statusCode).toBe(200);
    expect(failed.json()).toEqual({ status: 'failed', baselineId: null });
    page = await t.inject({ method: 'GET', url: `/terminals/${fresh.agentId}`, headers: admin.headers });
    expect(page.body).toContain('capture failed: &lt;script&gt;alert(1)&lt;/script&gt;');
    expect(page.body).not.toContain('<script>alert(1)');
  });
});

describe('upload limits', () => {
  let t: TestApp;
  let agent: TestAgent;
  beforeAll(async () => {
    t = await buildTestApp();
    agent = await t.enrollAgent();
  });
  afterAll(async () => t?.close());

  it('a body over the cap is 413 before any JSON work; uploads are rate-limited per terminal', async () => {
    const big = await t.inject({
      method: 'POST',
      url: '/api/agent/software/baseline',
      headers: { ...agent.headers, 'content-type': JSON_TYPE },
      payload: JSON.stringify({ requestId: randomUUID(), document: { pad: 'x'.repeat(BASELINE_MAX_BYTES + 100 * 1024) } }),
    });
    expect(big.statusCode).toBe(413);
    const codes: number[] = [];
    for (let i = 0; i < BASELINE_UPLOAD_LIMIT.burst + 1; i++) {
      const r = await t.inject({ method: 'POST', url: '/api/agent/software/baseline', headers: { ...agent.headers, 'content-type': JSON_TYPE }, payload: JSON.stringify({ requestId: randomUUID(), error: 'x' }) });
      codes.push(r.statusCode);
    }
    expect(codes.slice(0, -1).every((c) => c === 404)).toBe(true); // no such request: answered, and counted
    expect(codes.at(-1)).toBe(429);
  });

  it('without a client certificate: refused', async () => {
    const r = await t.inject({ method: 'POST', url: '/api/agent/software/baseline', headers: { 'content-type': JSON_TYPE }, payload: '{}' });
    expect([401, 403]).toContain(r.statusCode);
  });
});

describe('parseScope / baselineRequestOf (hostile input)', () => {
  it.each([
    ['', { scope: ['/usr/bin', '/usr/sbin', '/usr/local/bin', '/usr/local/sbin', '/opt'] }],
    ['/a\r\n/a\n\n /b ', { scope: ['/a', '/b'] }],
    ['relative', 'error'],
    ['/a/../etc', 'error'],
    ['/a\u0000b', 'error'],
    [Array.from({ length: 33 }, (_, i) => `/d${i}`).join('\n'), 'error'],
    ['/' + 'x'.repeat(2000), 'error'],
  ] as const)('%j', (text, want) => {
    const r = parseScope(text);
    if (want === 'error') expect('error' in r).toBe(true);
    else expect(r).toEqual(want);
  });

  it.each([
    [{ restore: [] }, null],
    [{ restore: [], baseline: null }, null],
    [{ restore: [], baseline: { id: 'not-a-uuid', scope: ['/usr/bin'] } }, null],
    [{ restore: [], baseline: { id: randomUUID(), scope: [] } }, null],
    [{ restore: [], baseline: { id: randomUUID(), scope: ['../etc'] } }, null],
    [{ restore: [], baseline: { id: randomUUID(), scope: ['/usr/bin'], extra: 1 } }, null],
    [{ restore: [], baseline: { id: randomUUID(), scope: Array.from({ length: 33 }, () => '/a') } }, null],
    [null, null],
    ['x', null],
  ])('%j → none', (body, want) => {
    expect(baselineRequestOf(body)).toBe(want);
  });

  it('a good request, duplicates folded', () => {
    const id = randomUUID();
    expect(baselineRequestOf({ restore: [], baseline: { id, scope: ['/usr/bin', '/usr/bin'] } })).toEqual({ id, scope: ['/usr/bin'] });
  });
});
