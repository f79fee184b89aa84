/**
 * The operation log speaks in sentences: events uploaded by an agent (real route, real ingest,
 * in-process app) appear in the list, the detail page and the CSV with their description; the
 * type filter names types; hostile device names stay inert text; "この機器を登録" links only
 * where the event carries the device's raw serial.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chainEvent, genesisHash, type SekimoriEvent, type UnsignedEvent } from '../../protocol/events.js';
import { registrableDevice } from '../../console/web/pages/events.js';
import { buildTestApp, type TestAgent, type TestApp, type WebSession } from '../http/app.js';

const HOSTILE = '<img src=x onerror=alert(1)>';
const FORMULA = '=HYPERLINK("http://evil.example","x")';

function usb(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    kind: 'usb', mode: 'enforce', port: '1-2', busnum: 1, devnum: 5, vendorId: '0781', productId: '5581', bcdDevice: '0100', deviceClass: '00', interfaceClasses: ['08'],
    interfaces: [{ number: 0, classes: ['08/06/50'], allow: false, rule: 'class:08' }], manufacturer: 'SanDisk', product: 'Ultra', serial: '4C530001',
    serialHex: Buffer.from('4C530001').toString('hex'), descriptorHash: 'a'.repeat(64), rule: 'class:08', partial: false, readonly: false, exceptionId: null,
    ...over,
  };
}

describe('events people can read (console pages)', () => {
  let t: TestApp;
  let agent: TestAgent;
  let admin: WebSession;
  const rid = new Map<string, number>();

  beforeAll(async () => {
    t = await buildTestApp();
    agent = await t.enrollAgent();
    t.ctx.db.prepare('UPDATE agents SET hostname = ? WHERE id = ?').run('PC-KOSEKI-07', agent.agentId);
    admin = t.session('admin');
    const plain: Omit<UnsignedEvent, 'seq' | 'id' | 'agentId' | 'ts' | 'severity'>[] = [
      { type: 'usb.blocked', user: '山田', data: usb() },
      { type: 'usb.blocked', user: 'tanaka', data: usb({ product: HOSTILE, serial: 'X1', serialHex: '5831' }) },
      { type: 'usb.blocked', user: FORMULA, data: usb({ manufacturer: FORMULA, product: '', serialHex: null }) },
      { type: 'mfa.failure', user: 'suzuki', data: { terminal: 'PC-KOSEKI-07', result: 'reject', reason: 'bad_code' } },
      { type: 'agent.started', user: null, data: { version: 1 } }, // not as declared: stored, marked, still a sentence
    ];
    let prev = genesisHash(agent.agentId);
    const events: SekimoriEvent[] = plain.map((p, i) => {
      const e = chainEvent(prev, { ...p, id: randomUUID(), agentId: agent.agentId, seq: i + 1, ts: new Date(Date.now() - (10 - i) * 1000).toISOString(), severity: 'warning' });
      prev = e.hash;
      return e;
    });
    const res = await t.inject({ method: 'POST', url: '/api/agent/events', headers: { ...agent.headers, 'content-type': 'application/json' }, payload: JSON.stringify({ batchId: randomUUID(), events }) });
    expect(res.statusCode, res.body).toBe(200);
    for (const r of t.ctx.db.prepare('SELECT rid, seq FROM events WHERE agent_id = ?').all(agent.agentId) as { rid: number; seq: number }[]) rid.set(String(r.seq), r.rid);
  });
  afterAll(async () => t?.close());

  const get = (url: string, s: WebSession = admin) => t.inject({ method: 'GET', url, headers: s.headers });

  it('the list shows the Japanese sentence and type names; hostile text is escaped', async () => {
    const res = await get('/events');
    expect(res.statusCode).toBe(200);
    expect(res.body).toContain('端末 PC-KOSEKI-07 で 山田 が USBメモリ SanDisk Ultra (シリアル 4C530001) を接続 — 遮断しました');
    expect(res.body).toContain('&lt;img src=x onerror=alert(1)&gt;');
    expect(res.body).not.toContain(HOSTILE);
    expect(res.body).toContain('<td title="usb.blocked">USB機器の遮断</td>');
    expect(res.body).toContain('端末 PC-KOSEKI-07 で エージェントの起動 — データが宣言と一致しないため詳細は表を参照');
  });

  it('English pages speak English', async () => {
    const res = await t.inject({ method: 'GET', url: '/events', headers: { ...admin.headers, cookie: admin.headers.cookie + '; __Host-sekimori_lang=en' } });
    expect(res.body).toContain('On PC-KOSEKI-07: 山田 plugged in USB storage SanDisk Ultra (serial 4C530001) — blocked');
    expect(res.body).toContain('<option value="usb.blocked" >USB device blocked</option>');
  });

  it('the type filter lists names, with the ids as values; a family reads "(すべて)"', async () => {
    const res = await get('/events');
    const select = /<select name="type">([\s\S]*?)<\/select>/.exec(res.body)![1]!;
    expect(select).toContain('<option value="usb.blocked" >USB機器の遮断</option>');
    expect(select).toContain('<option value="usb.*" >USB・外部記録媒体(すべて)</option>');
    expect(select).not.toMatch(/<option[^>]*>usb\.blocked</);
    const filtered = await get('/events?type=usb.blocked');
    expect(filtered.body).toContain('<option value="usb.blocked" selected>USB機器の遮断</option>');
  });

  it('the detail page: sentence, labelled fields, raw JSON folded away, register link', async () => {
    const res = await get(`/events/${rid.get('1')}`);
    expect(res.statusCode).toBe(200);
    expect(res.body).toContain('<p class="sentence" id="event-sentence">端末 PC-KOSEKI-07 で 山田 が USBメモリ SanDisk Ultra (シリアル 4C530001) を接続 — 遮断しました</p>');
    expect(res.body).toContain('<tr data-key="product"><th scope="row">製品名</th><td>Ultra</td><td><code>product</code></td></tr>');
    expect(res.body).toContain('<tr data-key="serial"><th scope="row">シリアル番号</th><td>4C530001</td>');
    expect(res.body).toContain('</summary><pre class="json" id="event-data">');
    expect(res.body).toContain(`<a class="button" id="register-device" href="/policy/usb/register?event=${rid.get('1')}">この機器を登録</a>`);
  });

  it('hostile product on the detail page is text; no register link without a raw serial', async () => {
    const hostile = await get(`/events/${rid.get('2')}`);
    expect(hostile.body).not.toContain(HOSTILE);
    expect(hostile.body).toContain('<td>&lt;img src=x onerror=alert(1)&gt;</td>');
    const noSerial = await get(`/events/${rid.get('3')}`);
    expect(noSerial.body).not.toContain('register-device');
    const mfa = await get(`/events/${rid.get('4')}`);
    expect(mfa.body).not.toContain('register-device');
    expect(mfa.body).toContain('多要素認証に失敗しました(理由 bad_code)');
  });

  it('CSV: a description column, formulas neutralised', async () => {
    const res = await get('/events.csv');
    expect(res.statusCode).toBe(200);
    const lines = res.body.split('\r\n');
    expect(lines[0]).toContain('"severity","user","description","data"');
    expect(res.body).toContain('"端末 PC-KOSEKI-07 で 山田 が USBメモリ SanDisk Ultra (シリアル 4C530001) を接続 — 遮断しました"');
    // A user name that is a formula: the cell begins with ' (console/web/csv.ts); the sentence starts with 端末.
    expect(res.body).toContain(`"'=HYPERLINK(""http://evil.example"",""x"")"`);
    for (const line of lines.slice(1)) for (const cell of line.match(/"(?:[^"]|"")*"/g) ?? []) expect(cell).not.toMatch(/^"[=+\-@\t\r]/);
  });

  it('an auditor reads the same sentences (no register link: it leads to an admin form, which refuses)', async () => {
    const res = await get('/events', t.session('auditor'));
    expect(res.body).toContain('USBメモリ SanDisk Ultra');
  });
});

describe('registrableDevice', () => {
  it.each([
    ['usb.blocked', usb(), true],
    ['usb.allowed', usb(), true],
    ['usb.blocked', usb({ serialHex: null }), false],
    ['usb.blocked', usb({ serialHex: '' }), false],
    ['usb.blocked', usb({ serialHex: 'zz' }), false], // not as declared: never a matching key
    ['usb.blocked', { kind: 'optical', mode: 'enforce', device: 'sr0', rule: 'r', partitions: [] }, false],
    ['mfa.failure', usb(), false],
    ['usb.enforced_stricter', usb(), false],
    ['usb.blocked', null, false],
  ] as const)('%s %#', (type, data, want) => {
    expect(registrableDevice(type, data)).toBe(want);
  });
});
