/**
 * Browser tier, ソフトウェア資産: real Chromium against a real console. Terminal A is a real running
 * agent reading a dpkg status file (this machine's, plus two packages whose names are hostile:
 * markup and a spreadsheet formula); terminal B reports a small list over mutual TLS with its own
 * client certificate, as an agent does. In the page: the terminal's packages are listed (hostile
 * names as text, no script), the search answers which terminals have bash (and of which version),
 * the CSV downloads with a BOM and neutralised formulas.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inventoryDigest } from '../../../protocol/api.js';
import { enrollAgent, rawRequest, startConsole, tempDir, waitFor, type TestAgent, type TestConsole } from '../../integration/harness.js';
import { adminBrowser, requireBrowser, SHOTS } from './browser.js';

const tools = requireBrowser(['dist/console/web/pages/software-inventory.js'], ['dpkg-query'], existsSync('/var/lib/dpkg/status') ? [] : ['/var/lib/dpkg/status (a Debian machine)']);
const HOSTILE = '<img src=x onerror=alert(1)>';
const FORMULA = '=HYPERLINK("http://evil.example","x")';

const paragraph = (name: string, version: string, arch = 'amd64') => [`Package: ${name}`, 'Status: install ok installed', `Architecture: ${arch}`, `Version: ${version}`, 'Description: test', ''].join('\n');

describe.skipIf(!tools.ok)('browser: ソフトウェア資産 in Chromium', () => {
  let c: TestConsole;
  let a: TestAgent;
  let b: TestAgent;
  let browser: Browser;
  let page: Page;
  let bashVersion = '';
  let dialogs: string[] = [];
  const requests: string[] = [];

  beforeAll(async () => {
    mkdirSync(SHOTS, { recursive: true });
    const work = tempDir('inventory-browser');
    const admin = join(work, 'dpkg');
    mkdirSync(join(admin, 'info'), { recursive: true });
    mkdirSync(join(admin, 'updates'), { recursive: true });
    mkdirSync(join(work, 'scope'), { recursive: true });
    copyFileSync('/var/lib/dpkg/status', join(admin, 'status'));
    bashVersion = execFileSync('dpkg-query', [`--admindir=${admin}`, '-W', '-f', '${Version}', 'bash'], { encoding: 'utf8' }).trim();
    // Names dpkg itself would refuse: what a tampered status file or a Windows DisplayName can carry.
    writeFileSync(join(admin, 'status'), readFileSync(join(admin, 'status'), 'utf8').replace(/\n*$/, '\n\n') + paragraph(HOSTILE, '1<b>2') + '\n' + paragraph(FORMULA, '+1'));
    c = await startConsole({
      policy: {
        agent: { heartbeatSeconds: 1, uploadBatchSize: 500 },
        software: { mode: 'monitor', locations: [join(work, 'scope')], packages: { adminDir: admin, root: '/' }, syncSeconds: 1 },
      },
    });
    a = await enrollAgent(c);
    // Terminal B: enrolled, not running; it reports a list of its own with its client certificate.
    b = await enrollAgent(c, { start: false });
    const list = [
      { name: 'bash', version: '5.0-4', arch: 'amd64' },
      { name: 'vim', version: '2:8.2', arch: 'amd64' },
    ];
    const body = (withList: boolean) => JSON.stringify({ platform: 'linux', digest: inventoryDigest(list), total: 2, ...(withList ? { packages: list } : {}) });
    const first = await rawRequest(c, 'POST', '/api/agent/software/inventory', { agentState: b.stateDir, body: body(false), contentType: 'application/json' });
    expect(first.json()).toEqual({ status: 'unknown' });
    const stored = await rawRequest(c, 'POST', '/api/agent/software/inventory', { agentState: b.stateDir, body: body(true), contentType: 'application/json' });
    expect(stored.json()).toEqual({ status: 'stored' });
    await waitFor('terminal A inventory', () => c.json<{ agentId: string }[]>(['software', 'inventory']).some((s) => s.agentId === a.agentId), 60_000, 500);

    ({ browser, page, dialogs } = await adminBrowser(c, { acceptDownloads: true, viewport: { width: 1280, height: 900 } }, (p) => p.on('request', (r) => requests.push(r.url()))));
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await a?.cleanup();
    await b?.cleanup();
    await c?.cleanup();
  });

  it("lists a terminal's packages from the navigation, hostile names as text", async () => {
    await page.click('header nav a[href="/software/inventory"]');
    await expect(page.locator('h1').textContent()).resolves.toBe('ソフトウェア資産');
    await expect(page.locator('#inventory-terminals tbody tr').count()).resolves.toBe(2);
    await page.click(`#inventory-terminals tr[data-agent="${a.agentId}"] a`);
    await page.waitForURL(/agent=/);
    const rows = page.locator('#inventory-packages tbody tr');
    const n = await rows.count();
    expect(n).toBeGreaterThan(50);
    const names = await page.locator('#inventory-packages tbody tr td:first-child').allTextContents();
    expect(names).toContain(HOSTILE);
    expect(names).toContain(FORMULA);
    expect(names).toContain('bash');
    await expect(page.locator('main img').count()).resolves.toBe(0);
    await page.screenshot({ path: join(SHOTS, 'inventory-terminal.png'), fullPage: false });
    expect(dialogs).toEqual([]);
  }, 60_000);

  it('answers which terminals have bash, and which have one version of it', async () => {
    await page.goto(`${c.url}/software/inventory`);
    await page.fill('#inventory-search input[name=q]', 'bash');
    await Promise.all([page.waitForURL(/q=bash/), page.click('#inventory-search button[type=submit]')]);
    const rows = await page.locator('#inventory-hits tbody tr').allTextContents();
    expect(rows.filter((r) => r.includes(bashVersion)).length).toBe(1);
    expect(rows.filter((r) => r.includes('5.0-4')).length).toBe(1);
    await page.screenshot({ path: join(SHOTS, 'inventory-search.png'), fullPage: false });
    await page.fill('#inventory-search input[name=v]', '5.0-4');
    await Promise.all([page.waitForURL(/v=5\.0-4/), page.click('#inventory-search button[type=submit]')]);
    const one = await page.locator('#inventory-hits tbody tr').allTextContents();
    expect(one.length).toBe(1);
    expect(one[0]).toContain('5.0-4');
  }, 60_000);

  it('downloads the CSV with a BOM, hostile names intact, formulas neutralised', async () => {
    await page.goto(`${c.url}/software/inventory?agent=${a.agentId}`);
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#inventory-csv')]);
    const file = join(SHOTS, '..', 'software-inventory.csv');
    await download.saveAs(file);
    const bytes = readFileSync(file);
    expect([...bytes.subarray(0, 3)]).toEqual([0xef, 0xbb, 0xbf]);
    const text = bytes.toString('utf8');
    const lines = text.split('\r\n').filter(Boolean);
    const shown = await page.locator('#inventory-packages tbody tr').count();
    expect(lines.length).toBe(shown + 1);
    expect(text).toContain(`"${HOSTILE}"`);
    expect(text).toContain(`"'=HYPERLINK(""http://evil.example"",""x"")"`);
    expect(text).toContain(`"'+1"`);
    expect(dialogs).toEqual([]);
    expect(requests.every((u) => u.startsWith(c.url))).toBe(true);
  }, 60_000);
});
