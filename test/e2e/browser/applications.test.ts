/**
 * Browser tier, 申請 → 上長承認 (issue 15), in real Chromium against a real console process and a
 * real enrolled agent:
 * - an application arrives the way a terminal sends it (usb.application_sent through the agent's
 *   outbox, with a hostile product string and reason);
 * - an administrator creates an 承認者 (approver) account on the accounts page;
 * - the approver logs in, lands on 申請, sees only 申請 and アカウント in the navigation, sees the
 *   application with the hostile text inert (no dialog, no injected element), approves it with a
 *   shorter period → the exception exists for that terminal and device;
 * - the approver can do nothing else: other pages and the policy POST are refused (403, admin.forbidden).
 * Screenshots: test-output/screenshots/5x-applications-*.png.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Outbox } from '../../../agent/report/outbox.js';
import { agentPaths } from '../../../agent/state.js';
import { enrollAgent, startConsole, waitFor, type TestAgent, type TestConsole } from '../../integration/harness.js';
import { field, launchChromium, login, requireBrowser, SHOTS } from './browser.js';

const tools = requireBrowser(['dist/console/web/pages/applications.js', 'dist/console/usb/applications-store.js']);
const HOSTILE = '<img src=x onerror=alert(1)><script>alert(2)</script>';
const SERIAL_HEX = Buffer.from('BRW0001').toString('hex');

describe.skipIf(!tools.ok)('browser: 申請 → 上長承認 by an approver', () => {
  let c: TestConsole;
  let agent: TestAgent;
  let browser: Browser;
  let admin: Page;
  let approver: Page;
  const dialogs: string[] = [];
  const appId = randomUUID();
  const shot = (p: Page, name: string) => p.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });

  beforeAll(async () => {
    mkdirSync(SHOTS, { recursive: true });
    c = await startConsole({ policy: { agent: { heartbeatSeconds: 1, uploadBatchSize: 500 } } });
    agent = await enrollAgent(c, { monitor: true, start: false });
    // The application as the agent's apply desk records it (agent/usb/apply.ts), uploaded by the running agent.
    const o = new Outbox(agentPaths(agent.stateDir).outbox, agent.agentId);
    try {
      o.append({
        type: 'usb.application_sent',
        user: 'tanaka',
        data: { id: appId, ref: 'K7M4QX', vendorId: '0781', productId: '5581', serialHex: SERIAL_HEX, descriptorHash: 'd'.repeat(64), serial: 'BRW0001', manufacturer: 'SanDisk', product: HOSTILE, port: '1-2', reason: `住民票の写しを監査室へ ${HOSTILE}`, hours: 8 },
      });
    } finally {
      o.close();
    }
    await agent.start();
    await waitFor('application listed', () => c.json<{ appId: string }[]>(['application', 'list']).some((a) => a.appId === appId), 60_000, 500);
    browser = await launchChromium();
    const open = async () => {
      const ctx = await browser.newContext({ ignoreHTTPSErrors: true, locale: 'ja-JP', viewport: { width: 1400, height: 900 } });
      const p = await ctx.newPage();
      p.on('dialog', (d) => {
        dialogs.push(d.message());
        void d.dismiss();
      });
      return p;
    };
    admin = await open();
    approver = await open();
    const creds = readFileSync(join(c.dataDir, 'initial-admin.txt'), 'utf8');
    await login(admin, c.url, field(creds, 'username'), field(creds, 'password'), field(creds, 'totp-secret'));
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await agent?.cleanup();
    await c?.cleanup();
  });

  it('an administrator creates an approver; the approver sees the application with hostile text inert and approves it', async () => {
    await admin.goto(`${c.url}/accounts`);
    await admin.fill('form[action="/accounts/add"] input[name=name]', 'kacho');
    await admin.selectOption('form[action="/accounts/add"] select[name=role]', 'approver');
    await admin.click('form[action="/accounts/add"] button');
    const password = (await admin.locator('#new-password').textContent())!.trim();
    const secret = (await admin.locator('#new-secret').textContent())!.trim();
    await expect(admin.locator('dl.detail').textContent()).resolves.toContain('承認者');

    await login(approver, c.url, 'kacho', password, secret);
    expect(new URL(approver.url()).pathname).toBe('/applications');
    await expect(approver.locator('header nav a').allTextContents()).resolves.toEqual(['コンソールアカウント', '申請']);
    await expect(approver.locator('.who').textContent()).resolves.toContain('承認者');
    const row = approver.locator(`#applications tr:has(code:text("K7M4QX"))`);
    await expect(row.locator('td.applicant').textContent()).resolves.toBe('tanaka');
    await expect(row.locator('td.reason').textContent()).resolves.toContain('<script>alert(2)</script>');
    await expect(row.locator('.device').textContent()).resolves.toContain('<img src=x onerror=alert(1)>');
    expect(await approver.locator('#applications img, #applications script').count()).toBe(0);
    await shot(approver, '50-applications');

    await row.locator('form.approve input[name=hours]').fill('2');
    await Promise.all([approver.waitForURL((u) => u.searchParams.get('done') === 'approved'), row.locator('form.approve button').click()]);
    await expect(approver.locator('p.ok').textContent()).resolves.toContain('申請を承認しました');
    await expect(approver.locator('#no-applications').count()).resolves.toBe(1);
    await expect(approver.locator('#decided').textContent()).resolves.toContain('承認済み');
    await shot(approver, '51-applications-approved');
    expect(dialogs).toEqual([]);

    const grants = c.json<{ vendorId: string; productId: string; serialHex?: string; grantedBy: string; expiresAt: string; grantedAt: string }[]>(['usb-exception', 'list', '--agent', agent.agentId]);
    expect(grants).toHaveLength(1);
    expect(grants[0]).toMatchObject({ vendorId: '0781', productId: '5581', serialHex: SERIAL_HEX, grantedBy: 'kacho' });
    expect(Date.parse(grants[0]!.expiresAt) - Date.parse(grants[0]!.grantedAt)).toBe(2 * 3_600_000);
    expect(c.events(['--type', 'admin.application_approved']).map((e) => e.user)).toEqual(['kacho']);
  });

  it('the approver can do nothing else: other pages and the policy POST are refused', async () => {
    for (const path of ['/policy', '/events', '/exceptions', '/terminals']) {
      const r = await approver.goto(`${c.url}${path}`);
      expect(r!.status(), path).toBe(403);
    }
    await approver.goto(`${c.url}/applications`);
    // A forged form POST from the approver's own page (same origin, valid CSRF token): still refused.
    const status = await approver.evaluate(async () => {
      // Runs in the page (no DOM types in this project's TypeScript settings).
      const doc = (globalThis as unknown as { document: { querySelector(sel: string): { getAttribute(name: string): string | null } | null } }).document;
      const csrf = doc.querySelector('meta[name=csrf-token]')!.getAttribute('content')!;
      const body = new URLSearchParams({ _csrf: csrf, body: '{"usb":{"mode":"monitor"}}', base: '1' });
      const r = await fetch('/policy/publish', { method: 'POST', body, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
      return r.status;
    });
    expect(status).toBe(403);
    const forbidden = c.events(['--type', 'admin.forbidden']).filter((e) => e.user === 'kacho');
    expect(forbidden.map((e) => e.data.path)).toContain('/policy/publish');
    await shot(approver, '52-applications-approver-only');
  });
});
