/**
 * Browser tier, issue 17: the アーカイブ page in real Chromium against a real console. Events with
 * hostile strings (HTML, a CSV formula) are archived and deleted by `retention run`; the page lists
 * the archive (file, period, counts, manifest hash) and the retention period, the search reads the
 * archive file (verified against the console's key) and shows the hostile strings as inert text;
 * the CSV export neutralises the formula. Screenshot: test-output/screenshots/70-archives.png.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createIngester } from '../../../console/backbone/ingest.js';
import { chainEvent, genesisHash, type SekimoriEvent } from '../../../protocol/events.js';
import { startConsole, type TestConsole } from '../../integration/harness.js';
import { adminBrowser, requireBrowser, SHOTS } from './browser.js';

const tools = requireBrowser(['dist/console/retention/feature.js', 'dist/console/web/pages/archives.js']);
const HOSTILE = '<img src=x onerror=alert(1)>';
const FORMULA = '=HYPERLINK("http://evil","x")';
const DAY = 86_400_000;

describe.skipIf(!tools.ok)('browser: アーカイブ (retention archives searched from the file)', () => {
  let c: TestConsole;
  let browser: Browser;
  let page: Page;
  let dialogs: string[] = [];
  const agentId = randomUUID();
  const old = new Date(Date.now() - 500 * DAY).toISOString();

  beforeAll(async () => {
    mkdirSync(SHOTS, { recursive: true });
    c = await startConsole();
    // A terminal's events as ingest stores them (written into the running console's store), then aged.
    const db = new Database(join(c.dataDir, 'console.db'), { timeout: 15_000 });
    try {
      db.prepare("INSERT INTO agents (id, hostname, cert_fingerprint, enrolled_at) VALUES (?, ?, 'x', ?)").run(agentId, `PC-${HOSTILE}`, new Date().toISOString());
      let prev = genesisHash(agentId);
      const events: SekimoriEvent[] = [];
      for (let i = 1; i <= 12; i++) {
        const e = chainEvent(prev, { id: randomUUID(), agentId, seq: i, ts: new Date().toISOString(), type: 'usb.blocked', severity: 'warning', user: i === 3 ? FORMULA : '山田', data: { product: i === 3 ? HOSTILE : `stick ${i}`, serial: `S${i}` } });
        events.push(e);
        prev = e.hash;
      }
      createIngester(db)(agentId, events, new Date());
      db.prepare('UPDATE events SET agent_ts = ts, ts = ? WHERE agent_id = ? AND seq < 12').run(old, agentId);
    } finally {
      db.close();
    }
    expect(c.cli(['retention', 'set', '--family', 'usb', '--days', '400']).code).toBe(0);
    const run = c.cli(['retention', 'run']);
    expect(run.code, run.stderr).toBe(0);
    ({ browser, page, dialogs } = await adminBrowser(c, { viewport: { width: 1400, height: 900 } }));
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await c?.cleanup();
  });

  it('lists the archive and the period, searches the file, hostile strings inert, CSV neutralised', async () => {
    await page.goto(`${c.url}/archives`);
    expect(await page.locator('nav a[href="/archives"]').count()).toBe(1);
    expect(await page.locator('#retention-periods tr[data-family="usb"]').count()).toBe(1);
    const row = page.locator('#archives tbody tr').first();
    await expect.poll(() => row.getAttribute('data-status')).toBe('complete');
    expect(await row.locator('td').nth(4).innerText()).toBe('11');
    await page.selectOption('select[name=archive]', { index: 0 });
    await page.fill('input[name=type]', 'usb.*');
    await page.fill('input[name=text]', 'onerror');
    await Promise.all([page.waitForURL(/archive=/), page.click('#archive-search button[type=submit]')]);
    expect(await page.locator('#archive-verified').count()).toBe(1);
    expect(await page.locator('#archive-total').innerText()).toBe('1');
    const cell = page.locator('#archive-results td.data').first();
    expect(await cell.innerText()).toContain(HOSTILE);
    expect(await page.locator('#archive-results td.user').first().innerText()).toBe(FORMULA);
    // Inert: no element made from the strings, nothing ran.
    expect(await page.locator('#archive-results img').count()).toBe(0);
    expect(await page.locator('img[src=x]').count()).toBe(0);
    await page.screenshot({ path: join(SHOTS, '70-archives.png'), fullPage: true });
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#archive-csv')]);
    const csv = readFileSync((await download.path())!, 'utf8');
    expect(csv.startsWith('\uFEFF')).toBe(true);
    expect(csv).toContain(`"'=HYPERLINK(""http://evil"",""x"")"`);
    expect(csv).not.toMatch(/(^|,)"=HYPERLINK/m);
    // The whole archived period by agent: 11 rows, none of them the head (seq 12 stays stored).
    await page.goto(`${c.url}/archives?archive=1&agent=${agentId}`);
    expect(await page.locator('#archive-results tbody tr').count()).toBe(11);
    expect(await page.locator('#archive-results tr[data-seq="12"]').count()).toBe(0);
    expect(dialogs).toEqual([]);
  }, 120_000);
});
