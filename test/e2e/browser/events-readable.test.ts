/**
 * Browser tier, issue 15 "readable": in real Chromium against a real console and a real enrolled
 * agent —
 * - the operation log shows each event as a Japanese sentence; a hostile USB product string is
 *   rendered as inert text; the type filter lists names (ids are only the values);
 * - "この端末を基準にする" on the terminal's page: the running agent learns of the request at its
 *   next software sync, captures the baseline of the folders asked for, uploads it; it appears as a
 *   pending baseline, the administrator approves it, the next signed policy version carries it and
 *   the agent applies that version.
 * Screenshots: test-output/screenshots/6x-*.png (copied to docs/screenshots/).
 */
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Outbox } from '../../../agent/report/outbox.js';
import { agentPaths } from '../../../agent/state.js';
import { enrollAgent, ROOT, startConsole, waitFor, type TestAgent, type TestConsole } from '../../integration/harness.js';
import { adminBrowser, requireBrowser, SHOTS } from './browser.js';

const tools = requireBrowser(['dist/console/web/feature.js', 'dist/agent/software/baseline-request.js']);
const HOSTILE = '<img src=x onerror=alert(1)>';
const DOCS = join(ROOT, 'docs/screenshots');

async function shot(page: Page, name: string): Promise<void> {
  const file = join(SHOTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  mkdirSync(DOCS, { recursive: true });
  copyFileSync(file, join(DOCS, `${name}.png`));
}

function usbBlocked(product: string): Record<string, unknown> {
  return {
    kind: 'usb', mode: 'enforce', port: '1-2', busnum: 1, devnum: 5, vendorId: '0781', productId: '5581', bcdDevice: '0100', deviceClass: '00', interfaceClasses: ['08'],
    interfaces: [{ number: 0, classes: ['08/06/50'], allow: false, rule: 'class:08' }], manufacturer: 'SanDisk', product, serial: '4C5300012345',
    serialHex: Buffer.from('4C5300012345').toString('hex'), descriptorHash: 'a'.repeat(64), rule: 'class:08', partial: false, readonly: false, exceptionId: null,
  };
}

describe.skipIf(!tools.ok)('browser: events people can read, baseline by click (real agent)', () => {
  let c: TestConsole;
  let agent: TestAgent;
  let browser: Browser;
  let page: Page;
  let db: Database.Database;
  let scopeDir = '';
  let dialogs: string[] = [];
  const requests: string[] = [];

  beforeAll(async () => {
    mkdirSync(SHOTS, { recursive: true });
    // The folder the administrator asks to collect: two programs of this "reference terminal".
    scopeDir = mkdtempSync(join(tmpdir(), 'sekimori-baseline-scope-'));
    writeFileSync(join(scopeDir, 'jyuki-client'), '#!/bin/sh\necho 住基\n');
    writeFileSync(join(scopeDir, 'zei-tool'), '#!/bin/sh\necho 税\n');
    chmodSync(join(scopeDir, 'jyuki-client'), 0o755);
    chmodSync(join(scopeDir, 'zei-tool'), 0o755);
    c = await startConsole();
    agent = await enrollAgent(c, { monitor: true, start: false });
    const o = new Outbox(agentPaths(agent.stateDir).outbox, agent.agentId);
    try {
      o.append({ type: 'usb.blocked', user: '山田', data: usbBlocked(HOSTILE) });
      o.append({ type: 'mfa.failure', user: '山田', data: { terminal: 'PC-1', result: 'reject', reason: 'bad_code' } });
    } finally {
      o.close();
    }
    await agent.start();
    db = new Database(join(c.dataDir, 'console.db'), { readonly: true });
    await waitFor('events uploaded', () => (db.prepare("SELECT count(*) AS n FROM events WHERE type = 'usb.blocked'").get() as { n: number }).n >= 1, 60_000);
    ({ browser, page, dialogs } = await adminBrowser(c, { viewport: { width: 1280, height: 900 } }, (p) => p.on('request', (r) => requests.push(r.url()))));
  }, 180_000);

  afterAll(async () => {
    db?.close();
    await browser?.close();
    await agent?.cleanup();
    await c?.cleanup();
    if (scopeDir) rmSync(scopeDir, { recursive: true, force: true });
  });

  it('the events page shows the Japanese sentence; the hostile product string is inert text', async () => {
    await page.goto(`${c.url}/events`);
    await page.selectOption('select[name=type]', 'usb.blocked');
    await Promise.all([page.waitForURL(/type=usb.blocked/), page.click('#event-filters button[type=submit]')]);
    const cells = await page.locator('table.events td.data').allTextContents();
    const sentence = cells.find((t) => t.includes('SanDisk'));
    expect(sentence).toMatch(new RegExp(`^端末 .+ で 山田 が USBメモリ SanDisk ${HOSTILE.replace(/[()]/g, '\\$&')} \\(シリアル 4C530001…\\) を接続 — 遮断しました$`));
    const typeCells = await page.locator('table.events tbody td[title="usb.blocked"]').allTextContents();
    expect(typeCells[0]).toBe('USB機器の遮断');
    await expect(page.locator('main img').count()).resolves.toBe(0);
    await shot(page, '60-events-readable');
    await page.locator('table.events tr', { hasText: 'SanDisk' }).locator('a').first().click();
    await expect(page.locator('#event-sentence').textContent()).resolves.toContain(`SanDisk ${HOSTILE}`);
    await expect(page.locator('#event-fields tr[data-key="product"] td').first().textContent()).resolves.toBe(HOSTILE);
    await expect(page.locator('#event-fields tr[data-key="product"] th').textContent()).resolves.toBe('製品名');
    await expect(page.locator('#register-device').getAttribute('href')).resolves.toMatch(/^\/policy\/usb\/register\?event=\d+$/);
    await expect(page.locator('main img').count()).resolves.toBe(0);
    await shot(page, '61-event-detail-readable');
    expect(dialogs).toEqual([]);
    expect(requests.some((u) => /\/x$/.test(new URL(u).pathname))).toBe(false);
  }, 60_000);

  it('the type filter lists names, not ids', async () => {
    await page.goto(`${c.url}/events`);
    const labels = await page.locator('select[name=type] option').allTextContents();
    const values = await page.locator('select[name=type] option').evaluateAll((os) => os.map((o) => (o as unknown as { value: string }).value));
    expect(labels).toContain('USB機器の遮断');
    expect(labels).toContain('多要素認証の失敗');
    expect(labels).toContain('USB・外部記録媒体(すべて)');
    expect(values).toContain('usb.blocked');
    // No option reads as a raw id (an id-looking label would mean a type without a name).
    expect(labels.filter((l) => /^[a-z]+\.[a-z_*]+$/.test(l)), 'types without a name: add them to EVENT_TEXT (and a family to PREFIX_NAMES) in protocol/event-text.ts').toEqual([]);
  }, 30_000);

  it('この端末を基準にする → the agent uploads → pending → approved → the agent applies the new policy', async () => {
    const before = (db.prepare('SELECT max(version) AS v FROM policies').get() as { v: number }).v;
    await page.goto(`${c.url}/terminals/${agent.agentId}`);
    await page.locator('#baseline-form summary').click();
    await page.fill('#baseline-form textarea[name=scope]', scopeDir);
    await shot(page, '62-baseline-click');
    await Promise.all([page.waitForURL(new RegExp(`/terminals/${agent.agentId}`)), page.click('#baseline-form button[type=submit]')]);
    // The agent syncs every 10 s (policy default): bounded wait for its upload, then for the page to say so.
    await waitFor('the baseline to arrive from the agent', () => (db.prepare("SELECT count(*) AS n FROM software_baselines WHERE status = 'pending'").get() as { n: number }).n === 1, 120_000);
    await page.reload();
    await expect(page.locator('#baseline-state').getAttribute('data-state')).resolves.toBe('uploaded');
    await shot(page, '63-baseline-received');
    const row = db.prepare("SELECT id, files, doc FROM software_baselines WHERE status = 'pending'").get() as { id: string; files: number; doc: string };
    const paths = (JSON.parse(row.doc) as { files: { path: string }[] }).files.map((f) => f.path).sort();
    expect(paths).toEqual([join(scopeDir, 'jyuki-client'), join(scopeDir, 'zei-tool')]);
    // The event was written to the agent's outbox before the upload; it reaches the console with the next batch.
    const captured = await waitFor('software.baseline_captured to be uploaded', () => {
      const rows = db.prepare("SELECT data FROM events WHERE type = 'software.baseline_captured' AND agent_id = ?").all(agent.agentId) as { data: string }[];
      return rows.length ? rows : null;
    }, 60_000);
    expect(captured).toHaveLength(1);
    expect(JSON.parse(captured[0]!.data)).toMatchObject({ files: 2, scope: [scopeDir] });
    await page.click('#review-baseline');
    await expect(page.locator('#baselines').textContent()).resolves.toContain(row.id);
    await shot(page, '64-baseline-pending');
    await Promise.all([page.waitForURL(/\/software/), page.locator('#baselines tr', { hasText: row.id }).locator('form[action="/software/baselines/approve"] button').click()]);
    const after = (db.prepare('SELECT max(version) AS v FROM policies').get() as { v: number }).v;
    expect(after).toBe(before + 1);
    const approved = db.prepare('SELECT status, policy_version FROM software_baselines WHERE id = ?').get(row.id) as { status: string; policy_version: number };
    expect(approved).toEqual({ status: 'approved', policy_version: after });
    await shot(page, '65-baseline-approved');
    // The real agent takes the new signed version (heartbeat) and applies it.
    await waitFor(
      'the agent to apply the approved policy',
      () => (db.prepare("SELECT data FROM events WHERE type = 'agent.policy_applied' AND agent_id = ?").all(agent.agentId) as { data: string }[]).some((e) => JSON.parse(e.data).version === after),
      120_000,
    );
    // Each step is in the log as a sentence.
    await page.goto(`${c.url}/events?type=software.*`);
    await expect(page.locator('table.events').textContent()).resolves.toContain('基準ソフトウェアを収集しました(パッケージ');
    await page.goto(`${c.url}/events?type=admin.*`);
    const adminLog = await page.locator('table.events').textContent();
    expect(adminLog).toContain('を基準にするよう要求しました');
    expect(adminLog).toContain(`基準ソフトウェア ${row.id} を承認しました(ポリシー v${after})`);
    await shot(page, '66-baseline-events');
  }, 300_000);
});
