/**
 * Browser tier, 自己点検レポート: a console with the seeded fleet (test/console/report-fleet.ts:
 * compliant and non-compliant terminals, one with a hostile host name, posture reports, an
 * approved request with a file written, a direct grant, a chain gap, a silent terminal). In real
 * Chromium each checklist item shows the expected verdict and coverage and names its offenders;
 * the hostile name is text; the print view hides nav and forms (PDF written); the evidence file
 * downloaded from the page verifies with `sekimori-console evidence verify` (exit 0) and fails
 * after a one-byte change (exit 1). English locale too.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openConsole } from '../../../console/core/context.js';
import { startConsole, type TestConsole } from '../../integration/harness.js';
import { EXPECTED, FLEET, HOSTILE_HOST, seedFleet } from '../../console/report-fleet.js';
import { adminBrowser, requireBrowser, SHOTS } from './browser.js';

const tools = requireBrowser(['dist/console/report/evidence.js', 'dist/console/web/pages/report.js']);
const jst = (d: Date) => new Date(d.getTime() + 9 * 3_600_000).toISOString().slice(0, 10);

describe.skipIf(!tools.ok)('browser: 自己点検レポート — checklist, print, signed evidence', () => {
  let c: TestConsole;
  let browser: Browser;
  let page: Page;
  let dialogs: string[] = [];
  const now = new Date();
  const from = jst(new Date(now.getTime() - 2 * 86_400_000));
  const to = jst(now);

  beforeAll(async () => {
    mkdirSync(SHOTS, { recursive: true });
    c = await startConsole();
    // Seeded through the console's own stores while it is stopped, then served as usual.
    await c.stop();
    const ctx = openConsole(c.dataDir);
    try {
      seedFleet(ctx, now);
    } finally {
      ctx.close();
    }
    await c.start();
    ({ browser, page, dialogs } = await adminBrowser(c, { acceptDownloads: true }));
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await c?.cleanup();
  });

  it('each item: verdict, coverage n of 5, the non-compliant terminals by name; hostile name inert', async () => {
    await page.goto(`${c.url}/report?from=${from}&to=${to}`);
    for (const [id, want] of Object.entries(EXPECTED)) {
      const row = page.locator(`table.checklist tr[data-item="${id}"]`);
      await expect(row.locator('[data-verdict]').getAttribute('data-verdict'), id).resolves.toBe(want.offenders.length ? 'noncompliant' : 'compliant');
      await expect(row.locator('td.coverage').getAttribute('data-covered'), id).resolves.toBe(String(want.covered));
      await expect(row.locator('td.coverage').getAttribute('data-total'), id).resolves.toBe('5');
      const offenders = await page.locator(`#item-${id} table.offenders tr[data-terminal]`).evaluateAll((rows) => rows.map((r) => r.getAttribute('data-terminal')));
      expect(offenders.sort(), id).toEqual(want.offenders.map((k) => FLEET[k]).sort());
    }
    // Offender rows and item links lead into the operation log with the period's filter.
    await expect(page.locator(`#item-export tr[data-terminal="${FLEET.monitor}"] td.terminal-name`).textContent()).resolves.toContain(HOSTILE_HOST);
    await expect(page.locator(`#item-export tr[data-terminal="${FLEET.monitor}"] a`).getAttribute('href')).resolves.toBe(`/events?terminal=${FLEET.monitor}&since=${from}&until=${to}`);
    await expect(page.locator('img[src=x]').count()).resolves.toBe(0);
    // The exception list: applicant, approver, the file written under it (formula text shown as text).
    await expect(page.locator('#r-exceptions').textContent()).resolves.toMatch(/suzuki[\s\S]*admin[\s\S]*=HYPERLINK\("x"\)\/住民票\.csv \(12345 B/);
    await page.screenshot({ path: join(SHOTS, '30-report-checklist.png'), fullPage: true });
    // Follow one link: the events page answers with the filter applied.
    await Promise.all([page.waitForURL((u) => u.pathname === '/events'), page.locator('#item-logs .links a').first().click()]);
    expect(new URL(page.url()).searchParams.get('type')).toBe('agent.silent');
    await expect(page.locator('body').textContent()).resolves.toContain('mn-pc-005');
    expect(dialogs).toEqual([]);
  }, 120_000);

  it('print view: no navigation, no forms or export button; a PDF is written', async () => {
    await page.goto(`${c.url}/report?from=${from}&to=${to}`);
    await page.emulateMedia({ media: 'print' });
    for (const sel of ['header.top', 'form.filters', '#r-evidence']) await expect(page.locator(sel).isVisible(), sel).resolves.toBe(false);
    await expect(page.locator('#r-checklist').isVisible()).resolves.toBe(true);
    await page.pdf({ path: join(SHOTS, '..', 'self-inspection-checklist.pdf'), format: 'A4' });
    await page.emulateMedia({ media: 'screen' });
  });

  it('the evidence downloaded from the page verifies offline; one byte changed: refused', async () => {
    await page.goto(`${c.url}/report?from=${from}&to=${to}`);
    const fp = (await page.locator('#evidence-fingerprint').textContent())!.trim();
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#evidence-link')]);
    const file = join(c.dataDir, '..', 'evidence.tar');
    await download.saveAs(file);
    const ok = c.cli(['evidence', 'verify', file, '--fingerprint', fp, '--json']);
    expect(ok.code, ok.stderr).toBe(0);
    const summary = JSON.parse(ok.stdout) as { ok: boolean; counts: { terminals: number }; items: { id: string; covered: number; total: number }[] };
    expect(summary.ok).toBe(true);
    expect(summary.items.map((i) => [i.id, i.covered, i.total])).toEqual(Object.entries(EXPECTED).map(([id, e]) => [id, e.covered, 5]));
    const b = readFileSync(file);
    b[Math.floor(b.length / 2)] = b[Math.floor(b.length / 2)]! ^ 0x01;
    writeFileSync(file, b);
    const bad = c.cli(['evidence', 'verify', file]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/検証失敗/);
    // The export is in the operation log (who, when, which period).
    const ev = c.events(['--type', 'admin.evidence_exported']);
    expect(ev.length).toBeGreaterThanOrEqual(1);
  }, 60_000);

  it('English locale: the same checklist in English', async () => {
    await page.goto(`${c.url}/lang?l=en&next=${encodeURIComponent(`/report?from=${from}&to=${to}`)}`);
    await expect(page.locator('#r-checklist h2').textContent()).resolves.toBe('Checklist');
    await expect(page.locator('table.checklist tr[data-item="policy"] [data-verdict]').textContent()).resolves.toBe('Compliant');
    await expect(page.locator('#item-screenLock').textContent()).resolves.toContain('screen lock');
    await page.screenshot({ path: join(SHOTS, '31-report-checklist-en.png'), fullPage: true });
    await page.goto(`${c.url}/lang?l=ja&next=/`);
  });
});
