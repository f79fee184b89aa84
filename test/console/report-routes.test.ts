/**
 * /report and /report/evidence in-process (test/http/app.ts): an auditor (read-only) reads the
 * checklist and downloads evidence that verifies; the page escapes hostile host names; a bad
 * period is 400; without a session both redirect to the login; the export is an admin event.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyEvidence } from '../../console/report/evidence.js';
import { buildTestApp, type TestApp, type WebSession } from '../http/app.js';
import { EXPECTED, HOSTILE_HOST, seedFleet } from './report-fleet.js';

let t: TestApp;
let auditor: WebSession;
const now = new Date();
const jst = (d: Date) => new Date(d.getTime() + 9 * 3_600_000).toISOString().slice(0, 10);
const period = `from=${jst(new Date(now.getTime() - 2 * 86_400_000))}&to=${jst(now)}`;

beforeAll(async () => {
  t = await buildTestApp();
  seedFleet(t.ctx, now);
  auditor = t.session('auditor');
}, 60_000);

afterAll(async () => {
  await t?.close();
});

describe('report routes', () => {
  it('the checklist for an auditor: every item with its coverage; hostile names escaped', async () => {
    const r = await t.inject({ method: 'GET', url: `/report?${period}`, headers: auditor.headers });
    expect(r.statusCode).toBe(200);
    for (const [id, e] of Object.entries(EXPECTED)) expect(r.body).toMatch(new RegExp(`<tr class="item" data-item="${id}">[\\s\\S]*?data-covered="${e.covered}" data-total="5"`));
    expect(r.body).not.toContain(HOSTILE_HOST);
    expect(r.body).toContain('&lt;img src=x onerror=alert(1)&gt;');
  });

  it('evidence download: a tar that verifies, recorded with who exported it', async () => {
    const r = await t.inject({ method: 'GET', url: `/report/evidence?${period}`, headers: auditor.headers });
    expect(r.statusCode).toBe(200);
    expect(r.headers['content-type']).toBe('application/x-tar');
    expect(String(r.headers['content-disposition'])).toMatch(/^attachment; filename="sekimori-evidence-\d{4}-\d{2}-\d{2}_\d{4}-\d{2}-\d{2}\.tar"$/);
    const v = verifyEvidence(r.rawPayload);
    expect(v.ok, v.ok ? '' : v.reason).toBe(true);
    const row = t.ctx.db.prepare("SELECT user FROM events WHERE type = 'admin.evidence_exported' ORDER BY rid DESC LIMIT 1").get() as { user: string };
    expect(row.user).toBe(auditor.username);
  });

  it.each([
    ['from after to', 'from=2026-12-01&to=2026-11-01'],
    ['over 366 days', 'from=2020-01-01&to=2026-01-01'],
    ['not a date', 'from=2026-13-45&to=2026-11-01'],
    ['markup', 'from=%3Cscript%3E&to=2026-11-01'],
  ])('a bad period is refused with 400: %s', async (_n, q) => {
    for (const path of ['/report', '/report/evidence']) {
      const r = await t.inject({ method: 'GET', url: `${path}?${q}`, headers: auditor.headers });
      expect(r.statusCode, path).toBe(400);
      expect(r.body).not.toContain('<script>');
    }
  });

  it('without a session: redirected to the login, nothing exported', async () => {
    const before = (t.ctx.db.prepare("SELECT count(*) AS n FROM events WHERE type = 'admin.evidence_exported'").get() as { n: number }).n;
    for (const path of ['/report', '/report/evidence']) {
      const r = await t.inject({ method: 'GET', url: `${path}?${period}` });
      expect(r.statusCode).toBe(303);
      expect(String(r.headers.location)).toMatch(/^\/login\?next=/);
    }
    expect((t.ctx.db.prepare("SELECT count(*) AS n FROM events WHERE type = 'admin.evidence_exported'").get() as { n: number }).n).toBe(before);
  });
});
