/**
 * 機器一覧 routes in-process (buildTestApp): events uploaded over the agent route fill the
 * inventory; "allow this model" / "register this stick" / catalogue "有効にする" go through the
 * policy page's diff → confirm → /policy/publish with role checks and CSRF; CSV like the events CSV.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PolicyBody } from '../../protocol/policy.js';
import { bodyOf } from '../../console/web/pages/policy.js';
import { Chain, RC_S380, STICK, usbData } from '../usb/devices-fixtures.js';
import { buildTestApp, type TestApp, type TestAgent, type WebSession } from './app.js';

const FORM = 'application/x-www-form-urlencoded';
const HOSTILE = '<script>alert(1)</script>';
const FORMULA = '=HYPERLINK("http://evil.example","x")';

function unescapeHtml(s: string): string {
  return s.replace(/&(amp|lt|gt|quot|#39|#96);/g, (_m, e: string) => ({ amp: '&', lt: '<', gt: '>', quot: '"', '#39': "'", '#96': '`' })[e]!);
}

function hidden(page: string, name: string): string | null {
  const m = new RegExp(`<input type="hidden" name="${name}" value="([^"]*)">`).exec(page);
  return m ? unescapeHtml(m[1]!) : null;
}

describe('devices routes', () => {
  let t: TestApp;
  let agent: TestAgent;
  let admin: WebSession;
  let auditor: WebSession;
  const ids: Record<string, number> = {};

  const get = (url: string, s: WebSession, extra: Record<string, string> = {}) => t.inject({ method: 'GET', url, headers: { ...s.headers, ...extra } });
  const post = (url: string, s: WebSession, form: Record<string, string>, csrf = s.csrf) =>
    t.inject({ method: 'POST', url, headers: { ...s.headers, 'content-type': FORM }, payload: new URLSearchParams({ _csrf: csrf, ...form }).toString() });
  const events = (type: string) => t.ctx.db.prepare('SELECT user, data FROM events WHERE type = ? ORDER BY rid').all(type) as { user: string | null; data: string }[];

  /** Confirms a proposal page exactly as the browser would: the publish form's hidden fields. */
  async function confirm(page: string, s: WebSession) {
    const body = hidden(page, 'body');
    const base = hidden(page, 'base');
    const via = hidden(page, 'via');
    expect(body && base).toBeTruthy();
    return post('/policy/publish', s, { body: body!, base: base!, ...(via ? { via } : {}) });
  }

  beforeAll(async () => {
    t = await buildTestApp();
    agent = await t.enrollAgent();
    admin = t.session('admin');
    auditor = t.session('auditor');
    const c = new Chain(agent.agentId);
    const batch = [
      c.next('usb.blocked', usbData(RC_S380), { user: 'tanaka' }),
      c.next('usb.blocked', usbData({ ...STICK, manufacturer: HOSTILE, product: FORMULA })),
      c.next('usb.blocked', usbData({ vendorId: '12d1', productId: '107e', manufacturer: 'HUAWEI', product: 'Phone', serial: 'P1', interfaces: ['06/01/01', '02/02/01', 'ef/04/01'] })),
    ];
    const r = await t.inject({ method: 'POST', url: '/api/agent/events', headers: { ...agent.headers, 'content-type': 'application/json' }, payload: JSON.stringify({ batchId: 'b1', events: batch }) });
    expect(r.statusCode).toBe(200);
    // No tick runs in process: the page brings the inventory up to date before it reads it.
    expect((await get('/devices', auditor)).statusCode).toBe(200);
    for (const row of t.ctx.db.prepare('SELECT id, vendor_id, product_id FROM usb_devices').all() as { id: number; vendor_id: string; product_id: string }[]) ids[`${row.vendor_id}:${row.product_id}`] = row.id;
  });
  afterAll(async () => {
    await t.close();
  });

  it('events uploaded over the agent route are in the inventory once a page is read', () => {
    expect(Object.keys(ids).sort()).toEqual(['054c:06c1', '0781:5581', '12d1:107e']);
  });

  it('lists devices escaped, with row actions for administrators and the reason where one cannot apply', async () => {
    const r = await get('/devices', admin);
    expect(r.statusCode).toBe(200);
    expect(r.body).not.toContain(HOSTILE);
    expect(r.body).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(r.body).toContain('機器一覧');
    expect(r.body).toMatch(new RegExp(`<tr data-device="${ids['054c:06c1']}"[\\s\\S]*?action="/devices/allow-model"`));
    // The stick offers storage only: no model button, the reason instead; it can be registered.
    const stickRow = new RegExp(`<tr data-device="${ids['0781:5581']}"[\\s\\S]*?</tr>`).exec(r.body)![0];
    expect(stickRow).toContain('data-refusal="only-export"');
    expect(stickRow).toContain('action="/devices/register"');
    expect(stickRow).not.toContain('action="/devices/allow-model"');
    expect(r.body).toContain('id="catalogue"');
  });

  it('English with the English locale', async () => {
    const r = await get('/devices', admin, { cookie: `${admin.headers.cookie}; __Host-sekimori_lang=en` });
    expect(r.body).toContain('Allow this model');
    expect(r.body).toContain('Ready-made models');
  });

  it('auditors see the list without actions and are refused (403, recorded) when they post anyway', async () => {
    const r = await get('/devices', auditor);
    expect(r.statusCode).toBe(200);
    expect(r.body).not.toContain('action="/devices/allow-model"');
    expect(r.body).not.toContain('action="/devices/catalogue"');
    const before = events('admin.forbidden').length;
    const p = await post('/devices/allow-model', auditor, { id: String(ids['054c:06c1']) });
    expect(p.statusCode).toBe(403);
    expect(events('admin.forbidden').length).toBe(before + 1);
  });

  it('a POST without the CSRF token or from another origin changes nothing', async () => {
    const v = t.ctx.currentPolicy().policy.version;
    expect((await post('/devices/allow-model', admin, { id: String(ids['054c:06c1']) }, 'wrong')).statusCode).toBe(403);
    const cross = await t.inject({ method: 'POST', url: '/devices/catalogue', headers: { ...admin.headers, origin: 'https://evil.example', 'content-type': FORM }, payload: `_csrf=${admin.csrf}&entry=sony-rc-s380-s` });
    expect(cross.statusCode).toBe(403);
    expect(t.ctx.currentPolicy().policy.version).toBe(v);
  });

  it('refusals: a phone offers only export classes (400, explained), an unknown row is 404, a bad access 400', async () => {
    const phone = await post('/devices/allow-model', admin, { id: String(ids['12d1:107e']) });
    expect(phone.statusCode).toBe(400);
    expect(phone.body).toContain('データ持ち出し');
    expect((await post('/devices/allow-model', admin, { id: '999999999' })).statusCode).toBe(404);
    expect((await post('/devices/allow-model', admin, { id: '1 OR 1=1' })).statusCode).toBe(404);
    expect((await post('/devices/register', admin, { id: String(ids['0781:5581']), access: 'write', label: '' })).statusCode).toBe(400);
  });

  it('allow this model: diff → confirm → v+1 with the reader rule enabled (interfaces ff) and nothing else changed; admin.policy_changed names who and from where', async () => {
    const cur = t.ctx.currentPolicy().policy;
    const before = structuredClone(bodyOf(cur)) as PolicyBody;
    const prop = await post('/devices/allow-model', admin, { id: String(ids['054c:06c1']) });
    expect(prop.statusCode).toBe(200);
    expect(prop.body).toContain('id="policy-diff"');
    expect(prop.body).toContain('<code id="proposal-rule">model:sony-rc-s380-s</code>');
    expect(prop.body).toContain(`v${cur.version} → v${cur.version + 1}`);
    expect(t.ctx.currentPolicy().policy.version).toBe(cur.version); // nothing published before the confirm
    const pub = await confirm(prop.body, admin);
    expect(pub.statusCode).toBe(200);
    expect(pub.body).toContain('id="published"');
    const after = t.ctx.currentPolicy().policy;
    expect(after.version).toBe(cur.version + 1);
    const expected = structuredClone(before);
    expected.usb.models = expected.usb.models!.map((m) => (m.id === 'sony-rc-s380-s' ? { ...m, enabled: true } : m));
    expect(bodyOf(after)).toEqual(expected);
    expect(after.usb.models!.find((m) => m.id === 'sony-rc-s380-s')).toMatchObject({ vendorId: '054c', productId: '06c1', interfaces: ['ff'], enabled: true });
    const ev = events('admin.policy_changed').at(-1)!;
    expect(ev.user).toBe(admin.username);
    expect(JSON.parse(ev.data)).toMatchObject({ before: { version: cur.version }, after: { version: cur.version + 1 }, sections: ['usb'], via: 'devices:allow-model:054c:06c1' });
    // The catalogue now shows the entry enabled.
    const list = await get('/devices', admin);
    expect(/<tr data-entry="sony-rc-s380-s">[\s\S]*?<td class="state">([^<]*)<\/td>/.exec(list.body)![1]).toBe('有効');
  });

  it('a stale confirm (the policy moved on since the diff) is refused', async () => {
    const prop = await post('/devices/catalogue', admin, { entry: 'sony-rc-s380-p' });
    const other = await post('/devices/register', admin, { id: String(ids['0781:5581']), access: 'readonly', label: 'x' });
    expect((await confirm(other.body, admin)).statusCode).toBe(200);
    const v = t.ctx.currentPolicy().policy.version;
    expect((await confirm(prop.body, admin)).statusCode).toBe(409);
    expect(t.ctx.currentPolicy().policy.version).toBe(v);
  });

  it('register this stick: VID:PID:serial, chosen access and label, descriptor hash pinned', async () => {
    const prop = await post('/devices/register', admin, { id: String(ids['0781:5581']), access: 'allow', label: '総務課 <b>1</b>' });
    expect(prop.statusCode).toBe(200);
    expect(prop.body).not.toContain('<b>1</b>');
    expect((await confirm(prop.body, admin)).statusCode).toBe(200);
    const reg = t.ctx.currentPolicy().policy.usb.registered;
    expect(reg).toHaveLength(1); // the earlier registration of the same stick, updated in place
    expect(reg[0]).toMatchObject({ vendorId: '0781', productId: '5581', serial: '4C530001', descriptorHash: 'a'.repeat(64), access: 'allow', label: '総務課 <b>1</b>' });
  });

  it('catalogue 有効にする: one click + confirm enables the entry', async () => {
    const prop = await post('/devices/catalogue', admin, { entry: 'sony-rc-s380-p' });
    expect(prop.statusCode).toBe(200);
    expect((await confirm(prop.body, admin)).statusCode).toBe(200);
    expect(t.ctx.currentPolicy().policy.usb.models!.find((m) => m.id === 'sony-rc-s380-p')!.enabled).toBe(true);
    expect((await post('/devices/catalogue', admin, { entry: 'no-such-entry' })).statusCode).toBe(400);
    const via = hidden((await post('/policy/publish', admin, { body: '{}', base: '0', via: '<script>' })).body, 'via');
    expect(via).toBeNull();
  });

  it('a forged via is refused by publish', async () => {
    const r = await post('/policy/publish', admin, { body: JSON.stringify(bodyOf(t.ctx.currentPolicy().policy)), base: String(t.ctx.currentPolicy().policy.version), via: '"><script>' });
    expect(r.statusCode).toBe(400);
  });

  it('search and paging parameters are checked', async () => {
    expect((await get('/devices?q=054c:06c1', admin)).body).toContain('data-vidpid="054c:06c1"');
    expect((await get('/devices?q=054c:06c1', admin)).body).not.toContain('data-vidpid="0781:5581"');
    expect((await get('/devices?verdict=%3Cscript%3E', admin)).statusCode).toBe(400);
    expect((await get('/devices?before=x', admin)).statusCode).toBe(400);
  });

  it('CSV export: BOM, every field quoted, formulas defused, recorded', async () => {
    const r = await get('/devices.csv', auditor);
    expect(r.statusCode).toBe(200);
    expect(r.headers['content-type']).toBe('text/csv; charset=utf-8');
    expect(r.body.startsWith('\uFEFF"terminal_id","hostname","vendor_id"')).toBe(true);
    expect(r.body).toContain(`"'=HYPERLINK(""http://evil.example"",""x"")"`);
    expect(r.body).toContain('"<script>alert(1)</script>"'); // CSV is data, not HTML; Excel shows it as text
    expect(r.body.split('\r\n').filter(Boolean).length).toBe(4);
    const ev = events('admin.usb_devices_exported').at(-1)!;
    expect(ev.user).toBe(auditor.username);
    expect(JSON.parse(ev.data)).toMatchObject({ rows: 3 });
  });
});
