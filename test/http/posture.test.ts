/**
 * Posture over HTTP (in-process, inject()): the agent route (stored, judged, one alert per
 * compliance transition; 400/401/413/429 for hostile bodies and floods), MFA enrolment judged by
 * the console's users, latestPostures for the report, the matrix page (terminal-supplied evidence
 * escaped) and `posture --json`.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { POSTURE_RATE } from '../../console/posture/api.js';
import { postureCommand } from '../../console/posture/cli.js';
import { latestPostures } from '../../console/posture/store.js';
import { confirmUser, enrollUser } from '../../console/mfa/store.js';
import type { OpenConsole } from '../../console/core/open-console.js';
import { base32Decode, totp } from '../../protocol/mfa/otp.js';
import type { PostureControlReport, PostureDocument } from '../../protocol/posture.js';
import { buildTestApp, type TestAgent, type TestApp, type WebSession } from './app.js';

let t: TestApp;
let a: TestAgent;
let b: TestAgent;
let auditor: WebSession;
const HOSTILE = '<script>alert(1)</script>"\'`<img src=x onerror=alert(2)>';

beforeAll(async () => {
  t = await buildTestApp();
  a = await t.enrollAgent();
  b = await t.enrollAgent();
  auditor = t.session('auditor');
  // Software enforce so a fully reported terminal can be compliant under the policy in force.
  const cur = t.ctx.currentPolicy().policy;
  t.ctx.publishPolicy({ agent: cur.agent, usb: cur.usb, mfa: cur.mfa, software: { ...cur.software, mode: 'enforce' } }, 'test');
}, 60_000);
afterAll(async () => {
  await t?.close();
});

const ok = (control: PostureControlReport['control'], detail: PostureControlReport['detail'] = {}, evidence = ['read']): PostureControlReport => ({ control, state: 'ok', evidence, detail });
function doc(over: Partial<PostureDocument> = {}, controls?: PostureControlReport[]): PostureDocument {
  return {
    platform: 'linux',
    collectedAt: new Date().toISOString(),
    agentVersion: '0.1.0',
    policyVersion: t.ctx.currentPolicy().policy.version,
    clockOffsetMs: 0,
    outboxDepth: 0,
    controls: controls ?? [
      ok('usb_enforced', { mode: 'enforce', rootHubs: 2, rootHubsHolding: 2 }, ['/sys/bus/usb/devices/usb1/authorized_default=0']),
      ok('usb_boot_hold', { configured: true, inEffect: '2' }),
      ok('usb_readonly_rule', { present: true }),
      ok('mfa_pam_services', { services: [{ name: 'login', present: true, included: true }] }),
      ok('mfa_enrolment', {}),
      ok('screen_lock', { idleDelaySeconds: 300, lockEnabled: true, lockedDown: true }),
      ok('software_enforcement', { mode: 'enforce', preexecRunning: true }),
      ok('agent_health', {}),
    ],
    ...over,
  };
}
const withControl = (d: PostureDocument, r: PostureControlReport) => ({ ...d, controls: d.controls.map((c) => (c.control === r.control ? r : c)) });

async function post(agent: TestAgent | null, body: unknown) {
  const r = await t.inject({ method: 'POST', url: '/api/agent/posture', headers: { ...(agent?.headers ?? {}), 'content-type': 'application/json' }, payload: typeof body === 'string' ? body : JSON.stringify(body) });
  return { status: r.statusCode, body: JSON.parse(r.body) as Record<string, unknown>, headers: r.headers };
}
const transitions = (agentId: string) =>
  (t.ctx.db.prepare("SELECT type FROM events WHERE agent_id = 'console' AND type LIKE 'posture.%' AND terminal_id = ? ORDER BY seq").all(agentId) as { type: string }[]).map((r) => r.type);

describe('POST /api/agent/posture', () => {
  it('a compliant report is stored without an alert; falling out of compliance alerts once; coming back once', async () => {
    expect(await post(a, doc())).toMatchObject({ status: 200, body: { stored: true } });
    expect(transitions(a.agentId)).toEqual([]);
    const bad = withControl(doc(), { ...ok('usb_boot_hold', { configured: false, inEffect: '1' }), state: 'fail' });
    expect((await post(a, bad)).status).toBe(200);
    expect((await post(a, bad)).status).toBe(200); // the same failure again: no second alert
    expect(transitions(a.agentId)).toEqual(['posture.noncompliant']);
    const ev = t.ctx.db.prepare("SELECT data, severity FROM events WHERE type = 'posture.noncompliant' AND terminal_id = ?").get(a.agentId) as { data: string; severity: string };
    expect(ev.severity).toBe('critical');
    expect(JSON.parse(ev.data)).toMatchObject({ agentId: a.agentId, failing: ['usb_boot_hold'] });
    expect((await post(a, doc())).status).toBe(200);
    expect(transitions(a.agentId)).toEqual(['posture.noncompliant', 'posture.compliant']);
  });

  it('MFA enrolment is judged by the console: an account without an active enrolment fails', async () => {
    const accounts = (names: string[]) => withControl(doc(), { control: 'mfa_enrolment', state: 'unknown', evidence: ['enrolment known at the console'], detail: { accounts: names } });
    expect((await post(b, accounts(['tanaka']))).status).toBe(200);
    let mine = latestPostures(t.ctx.db).find((p) => p.agentId === b.agentId)!;
    expect(mine.doc.controls.find((c) => c.control === 'mfa_enrolment')).toMatchObject({ state: 'fail', detail: { unenrolled: ['tanaka'] } });
    expect(transitions(b.agentId)).toEqual(['posture.noncompliant']);
    const e = enrollUser(t.ctx, 'tanaka', 'test');
    expect(confirmUser(t.ctx, 'tanaka', totp(base32Decode(e.secret)!, Date.now()), 'test')).toBe(true);
    expect((await post(b, accounts(['tanaka']))).status).toBe(200);
    mine = latestPostures(t.ctx.db).find((p) => p.agentId === b.agentId)!;
    expect(mine.doc.controls.find((c) => c.control === 'mfa_enrolment')).toMatchObject({ state: 'ok', detail: { unenrolled: [] } });
    expect(transitions(b.agentId)).toEqual(['posture.noncompliant', 'posture.compliant']);
  });

  it.each<[string, () => unknown, number]>([
    ['not JSON', () => '{', 400],
    ['unknown control', () => doc({}, [{ control: 'rootkit' as 'usb_enforced', state: 'ok', evidence: [] }]), 400],
    ['outbox 2^53', () => ({ ...doc(), outboxDepth: 2 ** 53 }), 400],
    ['extra member', () => ({ ...doc(), admin: true }), 400],
    ['evidence line of 10 kB', () => doc({}, [ok('usb_enforced', {}, ['x'.repeat(10_000)])]), 400],
    ['a 300 kB body', () => ({ ...doc(), pad: 'x'.repeat(300_000) }), 413],
  ])('%s → %i, nothing stored', async (_n, body, status) => {
    const before = latestPostures(t.ctx.db).find((p) => p.agentId === a.agentId)!.receivedAt;
    expect((await post(a, body())).status).toBe(status);
    expect(latestPostures(t.ctx.db).find((p) => p.agentId === a.agentId)!.receivedAt).toBe(before);
  });

  it('without a client certificate: 401', async () => {
    expect((await post(null, doc())).status).toBe(401);
  });

  it('a flood from one terminal is 429 with Retry-After; another terminal is not affected', async () => {
    const c = await t.enrollAgent();
    const d = await t.enrollAgent();
    const statuses: number[] = [];
    for (let i = 0; i < POSTURE_RATE.burst + 3; i++) statuses.push((await post(c, doc())).status);
    expect(statuses.slice(0, POSTURE_RATE.burst).every((s) => s === 200)).toBe(true);
    const last = await post(c, doc());
    expect(last.status).toBe(429);
    expect(Number(last.headers['retry-after'])).toBeGreaterThan(0);
    expect((await post(d, doc())).status).toBe(200);
  });
});

describe('matrix page and CLI', () => {
  it('shows each terminal × control; terminal-supplied evidence and reasons are inert', async () => {
    const hostile = withControl(doc(), { control: 'usb_readonly_rule', state: 'fail', evidence: [HOSTILE], detail: { present: false } });
    expect((await post(b, hostile)).status).toBe(200);
    const r = await t.inject({ method: 'GET', url: `/posture?agent=${b.agentId}`, headers: auditor.headers });
    expect(r.statusCode).toBe(200);
    expect(r.body).toContain('id="posture-matrix"');
    expect(r.body).toContain(`data-agent="${a.agentId}"`);
    expect(r.body).toContain('data-control="usb_readonly_rule" data-ok="0"');
    expect(r.body).not.toContain('<script>alert(1)');
    expect(r.body).not.toContain('<img src=x');
    expect(r.body).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    const anon = await t.inject({ method: 'GET', url: '/posture' });
    expect([302, 303, 401]).toContain(anon.statusCode);
  });

  it('posture --json lists every terminal with its verdicts', async () => {
    const out: string[] = [];
    const spy = vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => (out.push(String(s)), true));
    try {
      const open = () => ({ ...t.ctx, close() {} }) as unknown as OpenConsole;
      expect(await postureCommand.run(['--json'], Object.assign(open, {}))).toBe(0);
    } finally {
      spy.mockRestore();
    }
    const j = JSON.parse(out.join('')) as { controls: string[]; terminals: { agentId: string; compliant: boolean | null; verdicts: { control: string; ok: boolean }[] }[] };
    expect(j.controls).toHaveLength(8);
    const rowA = j.terminals.find((x) => x.agentId === a.agentId)!;
    expect(rowA.compliant).toBe(true);
    const rowB = j.terminals.find((x) => x.agentId === b.agentId)!;
    expect(rowB.compliant).toBe(false);
    expect(rowB.verdicts.find((v) => v.control === 'usb_readonly_rule')!.ok).toBe(false);
  });
});
