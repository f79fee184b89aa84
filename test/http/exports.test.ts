/**
 * 持ち出しログ routes in-process (buildTestApp): usb.file_written events uploaded over the agent
 * route are listed and searched by terminal, user, device serial and period; hostile file and
 * device names are escaped in HTML and neutralised in the CSV; the CSV is Excel-compatible and its
 * export is recorded.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileWrittenData, type UsableMedium, type WatchTarget } from '../../agent/usb/filelog/decide.js';
import { jstDayStart, parseExportQuery } from '../../console/usb/exports.js';
import { Chain } from '../usb/devices-fixtures.js';
import { buildTestApp, type TestAgent, type TestApp, type WebSession } from './app.js';

const HOSTILE = '<img src=x onerror=alert(1)>';
const FORMULA = '=HYPERLINK("http://evil.example","x")';
const sha = (s: string) => createHash('sha256').update(s).digest('hex');

const medium = (serial: string, label: string, access: 'allow' | 'exception' | 'monitor' = 'allow'): UsableMedium => ({
  port: '1-1',
  access,
  exceptionId: access === 'exception' ? 'ex-42' : null,
  device: { port: '1-1', vendorId: '0781', productId: '5567', serialHex: Buffer.from(serial).toString('hex'), descriptorHash: 'b'.repeat(64), label, serial, access, exceptionId: access === 'exception' ? 'ex-42' : null },
});

function written(m: UsableMedium, path: string, content: string | null, over: { uid?: number | null; skipped?: 'too_large' | 'removed' } = {}) {
  const target: WatchTarget = { dev: '2065', majMin: '8:17', fsType: 'vfat', mounts: [{ mountPoint: Buffer.from('/media/s'), root: Buffer.from('/') }], medium: m };
  const abs = Buffer.concat([Buffer.from('/media/s/'), Buffer.from(path)]);
  return fileWrittenData({
    target,
    file: { dev: '2065', ino: '1', abs, size: content?.length ?? 123, pid: 10, uid: over.uid === undefined ? 1000 : over.uid, deleted: false },
    rel: Buffer.from(path),
    sha256: content === null ? null : sha(content),
    hashSkipped: content === null ? (over.skipped ?? 'removed') : null,
    userSource: over.uid === null ? 'session' : 'writer',
    mode: 'enforce',
  }) as unknown as Record<string, unknown>;
}

describe('export log query parsing (pure)', () => {
  it.each([
    ['2026-11-30', '2026-11-29T15:00:00.000Z'],
    ['1970-01-02', '1970-01-01T15:00:00.000Z'],
    ['9999-12-31', '9999-12-30T15:00:00.000Z'],
    ['2026-02-30', null],
    ['2026-13-01', null],
    ['1969-12-31', null],
    ['0099-01-01', null],
    ['2026-1-1', null],
    ['20261130', null],
  ])('jstDayStart(%s) = %s', (d, want) => expect(jstDayStart(d)).toBe(want));
  const q = (o: Record<string, string>) => parseExportQuery((k) => o[k]);
  it.each([
    [{ terminal: 'x y' }, /terminal/],
    [{ from: 'yesterday' }, /from/],
    [{ to: '2026-02-31' }, /to/],
    [{ from: '2026-12-01', to: '2026-11-30' }, /after/],
    [{ before: 'x' }, /before/],
    [{ before: '2026-11-30T00:00:00.000Z~99999999999999999' }, /before/],
  ])('refuses %j', (o, re) => {
    const r = q(o);
    expect('error' in r && r.error).toMatch(re);
  });
  it('a serial as #hex matches the raw bytes; a serial as text matches text or its bytes; "to" covers the whole day', () => {
    expect(q({ serial: '#4C53' })).toMatchObject({ query: { serialHex: '4c53' } });
    expect(q({ serial: '4C53' })).toMatchObject({ query: { serial: '4C53' } });
    expect(q({ from: '2026-11-30', to: '2026-11-30' })).toMatchObject({ query: { since: '2026-11-29T15:00:00.000Z', until: '2026-11-30T15:00:00.000Z' } });
  });
});

describe('export log routes', () => {
  let t: TestApp;
  let a1: TestAgent;
  let a2: TestAgent;
  let auditor: WebSession;
  const get = (url: string, s: WebSession) => t.inject({ method: 'GET', url, headers: s.headers });

  beforeAll(async () => {
    t = await buildTestApp();
    a1 = await t.enrollAgent();
    a2 = await t.enrollAgent();
    auditor = t.session('auditor');
    const stick = medium('4C530001', 'SanDisk Cruzer');
    const evil = medium(FORMULA, HOSTILE, 'exception');
    const c1 = new Chain(a1.agentId);
    const c2 = new Chain(a2.agentId);
    const b1 = [
      c1.next('usb.file_written', written(stick, '報告書/2026年度.xlsx', 'data-1'), { user: 'tanaka', ts: '2026-11-28T01:00:00.000Z' }),
      c1.next('usb.file_written', written(stick, `${HOSTILE}.txt`, 'data-2'), { user: 'tanaka', ts: '2026-11-29T16:00:00.000Z' }), // 11-30 in Japan
      c1.next('usb.file_written', written(evil, `${FORMULA}.csv`, null, { skipped: 'removed' }), { user: 'suzuki', ts: '2026-11-30T02:00:00.000Z' }),
    ];
    const b2 = [c2.next('usb.file_written', written(stick, 'other-terminal.txt', 'data-3', { uid: null }), { user: 'sato', ts: '2026-11-30T03:00:00.000Z' })];
    for (const [agent, batch, id] of [
      [a1, b1, 'b1'],
      [a2, b2, 'b2'],
    ] as const) {
      const r = await t.inject({ method: 'POST', url: '/api/agent/events', headers: { ...agent.headers, 'content-type': 'application/json' }, payload: JSON.stringify({ batchId: id, events: batch }) });
      expect(r.statusCode, r.body).toBe(200);
    }
  });
  afterAll(async () => {
    await t.close();
  });

  const rows = (body: string) => [...body.matchAll(/<tr data-rid="(\d+)"/g)].length;

  it('lists every file newest first, escaped, for an auditor (read-only role)', async () => {
    const r = await get('/exports', auditor);
    expect(r.statusCode).toBe(200);
    expect(r.body).toContain('持ち出しログ');
    expect(rows(r.body)).toBe(4);
    expect(r.body).not.toContain(HOSTILE);
    expect(r.body).toContain('&lt;img src=x onerror=alert(1)&gt;');
    expect(r.body).toContain('報告書/2026年度.xlsx');
    expect(r.body).toContain('data-skipped="removed"');
    expect(r.body.indexOf('other-terminal.txt')).toBeLessThan(r.body.indexOf('報告書/2026年度.xlsx'));
  });

  it.each([
    ['terminal', () => `terminal=${a2.agentId}`, 1],
    ['user', () => 'user=tanaka', 2],
    ['serial as shown', () => 'serial=4C530001', 3],
    ['serial as raw hex', () => `serial=%23${Buffer.from('4C530001').toString('hex')}`, 3],
    ['a hostile serial', () => `serial=${encodeURIComponent(FORMULA)}`, 1],
    ['period (days in Japan)', () => 'from=2026-11-30&to=2026-11-30', 3],
    ['period before', () => 'to=2026-11-28', 1],
    ['nothing matches', () => 'user=nobody', 0],
  ])('search by %s', async (_n, query, n) => {
    const r = await get(`/exports?${query()}`, auditor);
    expect(r.statusCode).toBe(200);
    expect(rows(r.body)).toBe(n);
  });

  it('refuses a malformed search with 400', async () => {
    expect((await get('/exports?from=2026-02-30', auditor)).statusCode).toBe(400);
  });

  it('CSV: BOM, CRLF, every cell quoted, formulas neutralised, hashes and reasons; the export is recorded', async () => {
    const r = await get('/exports.csv?user=suzuki', auditor);
    expect(r.statusCode).toBe(200);
    expect(r.headers['content-type']).toContain('text/csv');
    expect(r.body.startsWith('\uFEFF"time","terminal_id"')).toBe(true);
    const lines = r.body.split('\r\n').filter(Boolean);
    expect(lines).toHaveLength(2);
    expect(lines[1]).toContain(`"'${FORMULA.replace(/"/g, '""')}.csv"`);
    expect(lines[1]).toContain('"removed"');
    expect(lines[1]).not.toMatch(/(^|,)"=/);
    const all = await get('/exports.csv', auditor);
    expect(all.body).toContain(`"${sha('data-1')}"`);
    const ev = t.ctx.db.prepare("SELECT user, data FROM events WHERE type = 'admin.usb_exports_exported' ORDER BY rid").all() as { user: string; data: string }[];
    expect(ev.map((e) => JSON.parse(e.data).rows)).toEqual([1, 4]);
  });

  it('pages with a cursor', async () => {
    const { exportPage } = await import('../../console/usb/exports.js');
    const first = exportPage(t.ctx.db, {}, 3);
    expect(first.rows).toHaveLength(3);
    const rest = exportPage(t.ctx.db, { before: first.next! }, 3);
    expect(rest.rows).toHaveLength(1);
    expect(rest.next).toBeNull();
  });
});
