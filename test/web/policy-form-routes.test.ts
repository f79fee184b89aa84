/**
 * /policy/forms and /policy/usb/register in-process (buildTestApp): a form change → diff →
 * /policy/publish → v+1 with exactly that change; per-field errors on the page (422, nothing
 * published); stale base refused; register from an uploaded usb.blocked event by its RAW identity
 * (serialHex, descriptor hash — the display serial is a lie here); events without a serial
 * refused with the reason; auditors see read-only forms and get 403 on every POST; hostile text escaped.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PolicyDocument } from '../../protocol/policy.js';
import { bodyOf } from '../../console/web/pages/policy.js';
import { Chain, STICK, usbData } from '../usb/devices-fixtures.js';
import { buildTestApp, type TestAgent, type TestApp, type WebSession } from '../http/app.js';

const FORM = 'application/x-www-form-urlencoded';
const HOSTILE = '<img src=x onerror=alert(1)>';

function unescapeHtml(s: string): string {
  return s.replace(/&(amp|lt|gt|quot|#39|#96);/g, (_m, e: string) => ({ amp: '&', lt: '<', gt: '>', quot: '"', '#39': "'", '#96': '`' })[e]!);
}
function hidden(page: string, name: string): string | null {
  const m = new RegExp(`<input type="hidden" name="${name}" value="([^"]*)">`).exec(page);
  return m ? unescapeHtml(m[1]!) : null;
}
const strip = ({ version: _v, issuedAt: _i, issuedBy: _b, ...rest }: PolicyDocument) => rest;

describe('policy forms routes', () => {
  let t: TestApp;
  let agent: TestAgent;
  let admin: WebSession;
  let auditor: WebSession;
  const rids: Record<string, number> = {};

  const get = (url: string, s: WebSession) => t.inject({ method: 'GET', url, headers: s.headers });
  const post = (url: string, s: WebSession, form: Record<string, string> | [string, string][]) =>
    t.inject({ method: 'POST', url, headers: { ...s.headers, 'content-type': FORM }, payload: new URLSearchParams([['_csrf', s.csrf], ...(Array.isArray(form) ? form : Object.entries(form))]).toString() });
  const cur = () => t.ctx.currentPolicy().policy;
  async function publish(page: string, s = admin) {
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
      // The display serial says something else than the raw bytes: the registration must use the raw ones.
      c.next('usb.blocked', { ...usbData({ ...STICK, product: HOSTILE }), serial: 'FAKE-DISPLAY' }, { user: 'tanaka' }),
      c.next('usb.blocked', usbData({ ...STICK, serial: '' })),
      c.next('mfa.failure', { reason: 'wrong_code' }, { user: 'tanaka' }),
    ];
    const r = await t.inject({ method: 'POST', url: '/api/agent/events', headers: { ...agent.headers, 'content-type': 'application/json' }, payload: JSON.stringify({ batchId: 'b1', events: batch }) });
    expect(r.statusCode).toBe(200);
    const rows = t.ctx.db.prepare("SELECT rid, type, json_extract(data, '$.serialHex') AS sh FROM events WHERE agent_id = ? ORDER BY rid").all(agent.agentId) as { rid: number; type: string; sh: string | null }[];
    rids.stick = rows.find((x) => x.type === 'usb.blocked' && x.sh)!.rid;
    rids.noSerial = rows.find((x) => x.type === 'usb.blocked' && !x.sh)!.rid;
    rids.mfa = rows.find((x) => x.type === 'mfa.failure')!.rid;
  });
  afterAll(async () => {
    await t.close();
  });

  it('the forms page shows every section with Japanese labels; English with the English locale', async () => {
    const r = await get('/policy/forms', admin);
    expect(r.statusCode).toBe(200);
    for (const s of ['外部記録媒体', 'USBメモリ', '多要素認証', '無許可ソフトウェア', '監視する場所', '登録媒体', '機種ルール', 'id="review"']) expect(r.body).toContain(s);
    const en = await t.inject({ method: 'GET', url: '/policy/forms', headers: { ...admin.headers, cookie: `${admin.headers.cookie}; __Host-sekimori_lang=en` } });
    expect(en.body).toContain('Removable media');
    expect(en.body).toContain('Review changes');
  });

  it('USBメモリ → 読み取り専用: diff, publish, v+1 differs in exactly that field', async () => {
    const before = cur();
    const i08 = before.usb.classRules.findIndex((r) => r.class === '08' && r.subclass === undefined);
    const p = await post('/policy/forms/preview', admin, { base: String(before.version), [`usb.classRules[${i08}].verdict`]: 'readonly' });
    expect(p.statusCode).toBe(200);
    expect(p.body).toMatch(/<span class="del">- +&quot;verdict&quot;: &quot;block&quot;,/);
    expect(p.body).toMatch(/<span class="add">\+ +&quot;verdict&quot;: &quot;readonly&quot;,/);
    expect(p.body.match(/<span class="(add|del)">/g)).toHaveLength(2);
    expect(cur().version).toBe(before.version);
    const pub = await publish(p.body);
    expect(pub.statusCode).toBe(200);
    const after = cur();
    expect(after.version).toBe(before.version + 1);
    const expected = structuredClone(strip(before));
    expected.usb.classRules[i08]!.verdict = 'readonly';
    expect(strip(after)).toEqual(expected);
    const ev = t.ctx.db.prepare("SELECT data FROM events WHERE type = 'admin.policy_changed' ORDER BY rid DESC LIMIT 1").get() as { data: string };
    expect(JSON.parse(ev.data)).toMatchObject({ via: 'policy-forms:edit', sections: ['usb'] });
  });

  it('invalid input: 422, the message next to its field, what was typed kept, nothing published', async () => {
    const v = cur().version;
    const r = await post('/policy/forms/preview', admin, { base: String(v), 'agent.heartbeatSeconds': '0', 'mfa.maxFailures': 'abc', 'software.locations': '/opt\nrelative' });
    expect(r.statusCode).toBe(422);
    expect(r.body).toMatch(/data-field="agent\.heartbeatSeconds"[^>]*>[\s\S]*?value="0"[\s\S]*?<span class="field-error" role="alert" data-for="agent\.heartbeatSeconds">1〜3600 の整数/);
    expect(r.body).toMatch(/data-for="mfa\.maxFailures">数字だけ/);
    expect(r.body).toMatch(/data-for="software\.locations">絶対パス/);
    expect(r.body).toContain('relative</textarea>');
    expect(cur().version).toBe(v);
  });

  it('a form built on an older version is refused (409): its rows could name other rules now', async () => {
    const r = await post('/policy/forms/preview', admin, { base: String(cur().version - 1), 'usb.mode': 'monitor' });
    expect(r.statusCode).toBe(409);
  });

  it('register from a blocked event: raw serial and descriptor hash, hostile product escaped, v+1 has the registration', async () => {
    const g = await get(`/policy/usb/register?event=${rids.stick}`, admin);
    expect(g.statusCode).toBe(200);
    expect(g.body).not.toContain(HOSTILE);
    expect(g.body).toContain('&lt;img src=x onerror=alert(1)&gt;');
    expect(g.body).toContain('id="register-form"');
    const before = cur();
    const p = await post('/policy/usb/register', admin, { event: String(rids.stick), access: 'readonly', label: '総務課 USB-01' });
    expect(p.statusCode).toBe(200);
    expect(p.body).toContain('&quot;serial&quot;: &quot;4C530001&quot;');
    expect(p.body).not.toContain('FAKE-DISPLAY&quot;');
    expect((await publish(p.body)).statusCode).toBe(200);
    const after = cur();
    expect(after.version).toBe(before.version + 1);
    expect(after.usb.registered).toEqual([expect.objectContaining({ vendorId: '0781', productId: '5581', serial: '4C530001', descriptorHash: 'a'.repeat(64), access: 'readonly', label: '総務課 USB-01' })]);
    expect(strip({ ...after, usb: { ...after.usb, registered: [] } })).toEqual(strip(before));
    const ev = t.ctx.db.prepare("SELECT data FROM events WHERE type = 'admin.policy_changed' ORDER BY rid DESC LIMIT 1").get() as { data: string };
    expect(JSON.parse(ev.data).via).toBe(`events:register:${after.usb.registered[0]!.id}`);
  });

  it('the registered row is then edited in the table: access and removal', async () => {
    const v = cur().version;
    const p = await post('/policy/forms/preview', admin, [
      ['base', String(v)],
      ['usb.registered[0].access', 'allow'],
      ['usb.registered[0].label', HOSTILE],
    ]);
    await publish(p.body);
    expect(cur().usb.registered[0]!).toMatchObject({ access: 'allow', label: HOSTILE });
    // A hostile label is shown as text in the table, never as markup.
    const f = await get('/policy/forms', admin);
    expect(f.body).not.toContain(HOSTILE);
    expect(f.body).toContain('value="&lt;img src=x onerror=alert(1)&gt;"');
    const q = await post('/policy/forms/preview', admin, { base: String(v + 1), 'usb.registered[0].remove': 'true' });
    await publish(q.body);
    expect(cur().usb.registered).toEqual([]);
  });

  it('refusals: an event without a serial, a non-USB event, an unknown or malformed event number', async () => {
    const ns = await get(`/policy/usb/register?event=${rids.noSerial}`, admin);
    expect(ns.statusCode).toBe(400);
    expect(ns.body).toContain('シリアル番号のない機器は登録できません');
    const nsPost = await post('/policy/usb/register', admin, { event: String(rids.noSerial), access: 'allow', label: '' });
    expect(nsPost.statusCode).toBe(400);
    expect((await get(`/policy/usb/register?event=${rids.mfa}`, admin)).body).toContain('USB機器のものではない');
    expect((await get('/policy/usb/register?event=99999999', admin)).statusCode).toBe(404);
    expect((await get('/policy/usb/register?event=1%20OR%201=1', admin)).statusCode).toBe(400);
    expect((await get('/policy/usb/register', admin)).statusCode).toBe(400);
  });

  it('auditors: forms shown read-only, no submit; every POST refused (403, recorded)', async () => {
    const r = await get('/policy/forms', auditor);
    expect(r.statusCode).toBe(200);
    expect(r.body).not.toContain('id="review"');
    expect(r.body).toMatch(/<select name="usb\.mode"[^>]*disabled/);
    const g = await get(`/policy/usb/register?event=${rids.stick}`, auditor);
    expect(g.statusCode).toBe(200);
    expect(g.body).not.toContain('id="register-form"');
    const v = cur().version;
    const forb = () => (t.ctx.db.prepare("SELECT count(*) AS n FROM events WHERE type = 'admin.forbidden'").get() as { n: number }).n;
    const n0 = forb();
    expect((await post('/policy/forms/preview', auditor, { base: String(v), 'usb.mode': 'monitor' })).statusCode).toBe(403);
    expect((await post('/policy/usb/register', auditor, { event: String(rids.stick), access: 'allow', label: '' })).statusCode).toBe(403);
    expect((await post('/policy/publish', auditor, { base: String(v), body: JSON.stringify(bodyOf(cur())) })).statusCode).toBe(403);
    expect(forb()).toBe(n0 + 3);
    expect(cur().version).toBe(v);
  });
});
