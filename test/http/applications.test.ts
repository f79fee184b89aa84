/**
 * 申請 → 上長承認 routes in process (buildTestApp): applications arrive as usb.application_sent
 * events over the agent route; the approver role sees /applications and decides, and nothing
 * else; approval goes through the exception grant the agent fetches; the agent learns decisions
 * from GET /api/agent/usb/applications (its own only); hostile input (markup, 2^53 hours, year
 * 9999, another terminal's ids, a flood of applications) is refused or inert.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applicationsCatchUp, decideApplication, listApplications, refuseDecision, APPLICATION_CONSOLE_LIMITS } from '../../console/usb/applications-store.js';
import { createSession } from '../../console/web/auth.js';
import { APPLICATION_LIMITS } from '../../protocol/policy-usb.js';
import { Chain } from '../usb/devices-fixtures.js';
import { buildTestApp, type TestAgent, type TestApp, type WebSession } from './app.js';

const FORM = 'application/x-www-form-urlencoded';
const HOSTILE = '<script>alert(1)</script><img src=x onerror=alert(2)>';
const SERIAL = Buffer.from('EXC0001').toString('hex');

function sent(over: Record<string, unknown> = {}) {
  return { id: randomUUID(), ref: 'ABC234', vendorId: '0781', productId: '5567', serialHex: SERIAL, descriptorHash: 'c'.repeat(64), serial: 'EXC0001', manufacturer: 'SanDisk', product: HOSTILE, port: '1-1', reason: `急ぎ ${HOSTILE}`, hours: 4, ...over };
}

describe('applications routes', () => {
  let t: TestApp;
  let agent: TestAgent;
  let other: TestAgent;
  let chain: Chain;
  let otherChain: Chain;
  let admin: WebSession;
  let auditor: WebSession;
  let approver: WebSession;
  let tanaka: WebSession; // an approver account with the applicant's name

  const session = (username: string, role: 'admin' | 'auditor' | 'approver'): WebSession => {
    t.ctx.db.prepare('INSERT INTO console_users (username, role, password_hash, totp_secret, created_at) VALUES (?, ?, ?, ?, ?)').run(username, role, 'x', t.ctx.seal('JBSWY3DPEHPK3PXP'), new Date().toISOString());
    const { token, csrf } = createSession(t.ctx.db, username);
    return { username, csrf, headers: { cookie: `__Host-sekimori_session=${token}`, origin: 'https://localhost' } };
  };
  const get = (url: string, s: WebSession) => t.inject({ method: 'GET', url, headers: s.headers });
  const post = (url: string, s: WebSession, form: Record<string, string>) =>
    t.inject({ method: 'POST', url, headers: { ...s.headers, 'content-type': FORM }, payload: new URLSearchParams({ _csrf: s.csrf, ...form }).toString() });
  const upload = async (a: TestAgent, c: Chain, events: ReturnType<Chain['next']>[]) => {
    const r = await t.inject({ method: 'POST', url: '/api/agent/events', headers: { ...a.headers, 'content-type': 'application/json' }, payload: JSON.stringify({ batchId: randomUUID(), events }) });
    expect(r.statusCode, r.body).toBe(200);
    void c;
  };
  const decisions = async (a: TestAgent) => {
    const r = await t.inject({ method: 'GET', url: '/api/agent/usb/applications', headers: a.headers });
    expect(r.statusCode).toBe(200);
    return (r.json() as { decisions: { id: string; status: string; until: string | null; comment: string }[] }).decisions;
  };
  const exceptions = async (a: TestAgent) =>
    ((await t.inject({ method: 'GET', url: '/api/agent/usb/exceptions', headers: a.headers })).json() as { exceptions: { id: string; serialHex?: string | null; reason: string; expiresAt: string }[] }).exceptions;
  const byAgentId = (appId: string) => listApplications(t.ctx, { all: true }).find((a) => a.appId === appId)!;
  const eventsOf = (type: string) => t.ctx.db.prepare('SELECT user, data FROM events WHERE type = ? ORDER BY rid').all(type) as { user: string | null; data: string }[];

  beforeAll(async () => {
    t = await buildTestApp();
    agent = await t.enrollAgent();
    other = await t.enrollAgent();
    chain = new Chain(agent.agentId);
    otherChain = new Chain(other.agentId);
    admin = t.session('admin');
    auditor = t.session('auditor');
    approver = session('kacho', 'approver');
    tanaka = session('Tanaka', 'approver');
  });
  afterAll(async () => {
    await t?.close();
  });

  it('an application sent from a terminal is listed with its text inert, to every role that may log in', async () => {
    const a = sent();
    await upload(agent, chain, [chain.next('usb.application_sent', a, { user: 'tanaka' })]);
    for (const s of [approver, admin, auditor]) {
      const page = await get('/applications', s);
      expect(page.statusCode).toBe(200);
      expect(page.body).toContain('ABC234');
      expect(page.body).not.toContain('<script>alert(1)');
      expect(page.body).not.toContain('<img src=x');
      expect(page.body).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    }
    // Forms for those who decide only.
    expect((await get('/applications', auditor)).body).not.toContain('/approve"');
    expect((await get('/applications', approver)).body).toContain('/approve"');
    const row = byAgentId(a.id);
    expect(row).toMatchObject({ agentId: agent.agentId, staffUser: 'tanaka', status: 'pending', hours: 4, serialHex: SERIAL });
  });

  it('the approver role decides applications and nothing else; approver ≠ applicant', async () => {
    const row = listApplications(t.ctx)[0]!;
    // Everything else is refused to an approver (read and write), with admin.forbidden.
    for (const url of ['/events', '/terminals', '/policy', '/users', '/exceptions', '/devices', '/report']) {
      expect((await get(url, approver)).statusCode, url).toBe(403);
    }
    expect((await get('/', approver)).headers.location).toBe('/applications');
    expect((await post('/policy/publish', approver, { body: '{}', base: '1' })).statusCode).toBe(403);
    expect((await post('/exceptions/grant', approver, { agent: agent.agentId, device: '0781:5567:EXC0001', for: '1h', access: 'allow' })).statusCode).toBe(403);
    expect((await post('/accounts/add', approver, { name: 'x', role: 'admin' })).statusCode).toBe(403);
    expect(eventsOf('admin.forbidden').some((e) => e.user === 'kacho')).toBe(true);
    // An auditor cannot decide.
    expect((await post(`/applications/${row.id}/approve`, auditor, { hours: '2' })).statusCode).toBe(403);
    // The applicant cannot approve their own application, whatever the case of the name.
    const own = await post(`/applications/${row.id}/approve`, tanaka, { hours: '2' });
    expect(own.statusCode).toBe(400);
    expect(own.body).toContain('申請者本人');
    // Hostile periods.
    for (const hours of [String(2 ** 53), '0', '721', '-1', '1e3', '9999-12-31']) {
      expect((await post(`/applications/${row.id}/approve`, approver, { hours })).statusCode, hours).toBe(400);
    }
    expect(byAgentId(row.appId).status).toBe('pending');
  });

  it('approval grants through the existing exception path; the terminal learns it; no second decision', async () => {
    const row = listApplications(t.ctx)[0]!;
    const r = await post(`/applications/${row.id}/approve`, approver, { hours: '2' });
    expect(r.statusCode).toBe(303);
    const done = byAgentId(row.appId);
    expect(done).toMatchObject({ status: 'approved', decidedBy: 'kacho', hours: 4 }); // asked for 4, approved for 2 (until says so)
    const ex = await exceptions(agent);
    const grant = ex.find((e) => e.id === done.grantId)!;
    expect(grant.serialHex).toBe(SERIAL);
    expect(grant.reason).toContain(row.id);
    expect(Date.parse(grant.expiresAt) - Date.parse(done.decidedAt!)).toBe(2 * 3_600_000);
    expect(eventsOf('admin.usb_exception_granted').map((e) => JSON.parse(e.data).id)).toContain(done.grantId);
    const approved = eventsOf('admin.application_approved').map((e) => ({ user: e.user, ...(JSON.parse(e.data) as Record<string, unknown>) }));
    expect(approved).toEqual([expect.objectContaining({ user: 'kacho', id: row.id, applicationId: row.appId, applicant: 'tanaka', grantId: done.grantId })]);
    expect(await decisions(agent)).toEqual([{ id: row.appId, status: 'approved', until: done.until, comment: '' }]);
    // Another terminal neither sees the decision nor the exception.
    expect(await decisions(other)).toEqual([]);
    expect(await exceptions(other)).toEqual([]);
    // Twice: refused.
    expect((await post(`/applications/${row.id}/approve`, admin, { hours: '1' })).statusCode).toBe(400);
    expect((await post(`/applications/${row.id}/reject`, admin, { comment: 'x' })).statusCode).toBe(400);
  });

  it('rejection with a hostile comment: stored as text, told to the terminal, no exception', async () => {
    const a = sent({ ref: 'XYZ789' });
    await upload(agent, chain, [chain.next('usb.application_sent', a, { user: 'suzuki' })]);
    const row = listApplications(t.ctx).find((x) => x.appId === a.id)!;
    const before = (await exceptions(agent)).length;
    expect((await post(`/applications/${row.id}/reject`, admin, { comment: `不要 ${HOSTILE}` })).statusCode).toBe(303);
    expect((await exceptions(agent)).length).toBe(before);
    const d = (await decisions(agent)).find((x) => x.id === a.id)!;
    expect(d).toMatchObject({ status: 'rejected', until: null });
    expect(d.comment).toContain('不要');
    const page = await get('/applications', admin);
    expect(page.body).not.toContain('<img src=x');
    expect(eventsOf('admin.application_rejected')).toHaveLength(1);
  });

  it('hostile agents: 2^53 hours is cut to the maximum, a year-9999 application is stale, another terminal’s id is its own application, a flood stops at the cap', async () => {
    const huge = sent({ hours: 2 ** 53 - 1 });
    const future = sent({});
    await upload(agent, chain, [chain.next('usb.application_sent', huge, { user: 'sato' })]);
    expect(byAgentId(huge.id).hours).toBe(APPLICATION_LIMITS.hoursMax);
    // An agent that claims a year-9999 time: the console stores its receipt time (clock skew rule), so it is decidable now.
    await upload(agent, chain, [chain.next('usb.application_sent', future, { user: 'sato', ts: '9999-12-31T00:00:00.000Z' })]);
    const f = byAgentId(future.id);
    expect(f.appliedAt.startsWith('9999')).toBe(false);
    // Pure rule: an application from long ago is stale; year 9999 as "now" makes everything stale.
    expect(refuseDecision({ status: 'pending', staffUser: 'sato', appliedAt: '2026-01-01T00:00:00.000Z' }, { decision: 'approve', actor: 'kacho' }, new Date('9999-01-01T00:00:00.000Z'))).toMatch(/too old/);
    expect(refuseDecision({ status: 'pending', staffUser: 'sato', appliedAt: new Date().toISOString() }, { decision: 'approve', actor: 'kacho', hours: 2 ** 53 }, new Date())).toMatch(/period/);
    // The same agent id of an application from another terminal is that terminal's own application.
    await upload(other, otherChain, [otherChain.next('usb.application_sent', { ...huge }, { user: 'sato' })]);
    const both = listApplications(t.ctx, { all: true }).filter((x) => x.appId === huge.id);
    expect(new Set(both.map((x) => x.agentId))).toEqual(new Set([agent.agentId, other.agentId]));
    // A re-sent event (same agent, same id) is one application.
    await upload(agent, chain, [chain.next('usb.application_sent', huge, { user: 'sato' })]);
    expect(listApplications(t.ctx, { all: true }).filter((x) => x.appId === huge.id && x.agentId === agent.agentId)).toHaveLength(1);
    // A flood from one (enrolled, hostile) terminal: applications stop at the cap, one refusal event per minute.
    const flood = Array.from({ length: APPLICATION_CONSOLE_LIMITS.pendingPerTerminal + 15 }, () => chain.next('usb.application_sent', sent({ reason: 'x'.repeat(400) }), { user: 'mallory' }));
    await upload(agent, chain, flood);
    applicationsCatchUp(t.ctx);
    const pending = listApplications(t.ctx).filter((x) => x.agentId === agent.agentId);
    expect(pending.length).toBe(APPLICATION_CONSOLE_LIMITS.pendingPerTerminal);
    expect(eventsOf('admin.application_refused').length).toBeGreaterThanOrEqual(1);
    expect(eventsOf('admin.application_refused').length).toBeLessThanOrEqual(2);
    // The other terminal is not held up by this one's flood.
    expect(listApplications(t.ctx).some((x) => x.agentId === other.agentId)).toBe(true);
    // Applications nobody decided for longer than the stale period do not count against the cap.
    t.ctx.db.prepare("UPDATE usb_applications SET applied_at = '2020-01-01T00:00:00.000Z' WHERE agent_id = ? AND status = 'pending'").run(agent.agentId);
    const late = sent();
    await upload(agent, chain, [chain.next('usb.application_sent', late, { user: 'sato' })]);
    expect(byAgentId(late.id).status).toBe('pending');
    expect(listApplications(t.ctx).filter((x) => x.agentId === agent.agentId && x.stale).length).toBe(APPLICATION_CONSOLE_LIMITS.pendingPerTerminal);
  });

  it('CLI path: decideApplication refuses an unknown id and a missing approver', () => {
    expect(() => decideApplication(t.ctx, 'uxa-000000000000', { decision: 'approve', actor: 'kacho' })).toThrow(/no such application/);
    const row = listApplications(t.ctx)[0]!;
    expect(() => decideApplication(t.ctx, row.id, { decision: 'approve', actor: '' })).toThrow(/no approver/);
  });

  it('the agent route needs a certificate and is rate limited', async () => {
    expect((await t.inject({ method: 'GET', url: '/api/agent/usb/applications' })).statusCode).toBe(401);
    const codes: number[] = [];
    for (let i = 0; i < 40; i++) codes.push((await t.inject({ method: 'GET', url: '/api/agent/usb/applications', headers: other.headers })).statusCode);
    expect(codes).toContain(429);
  });

  it('accounts: an administrator creates an approver; the approver may change its own password page', async () => {
    const page = await get('/accounts', admin);
    expect(page.body).toContain('value="approver"');
    expect((await get('/accounts', approver)).statusCode).toBe(200);
  });
});
