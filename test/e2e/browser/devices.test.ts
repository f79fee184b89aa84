/**
 * Browser tier, 機器一覧: a real agent uploads a blocked Sony RC-S380 (and a stick with a hostile
 * name) through its outbox; in real Chromium the device appears in the inventory, "この機種を許可"
 * shows the policy diff, the confirm publishes a signed version +1 whose only change is the
 * reader's model rule (interfaces ["ff"]) enabled, and the agent receives that version. Reuses the
 * console/agent harness and the login of console.test.ts (same steps; that file is not changed).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Outbox } from '../../../agent/report/outbox.js';
import { agentPaths } from '../../../agent/state.js';
import type { SignedPolicy } from '../../../protocol/policy.js';
import { enrollAgent, startConsole, waitFor, type TestAgent, type TestConsole } from '../../integration/harness.js';
import { RC_S380, STICK, usbData } from '../../usb/devices-fixtures.js';
import { adminBrowser, requireBrowser, SHOTS } from './browser.js';

const tools = requireBrowser(['dist/console/web/pages/devices.js']);
const HOSTILE = '<img src=x onerror=alert(1)>';

describe.skipIf(!tools.ok)('browser: 機器一覧 → この機種を許可 → diff → signed version', () => {
  let c: TestConsole;
  let agent: TestAgent;
  let browser: Browser;
  let page: Page;
  let dialogs: string[] = [];

  beforeAll(async () => {
    mkdirSync(SHOTS, { recursive: true });
    c = await startConsole();
    agent = await enrollAgent(c, { monitor: true, start: false });
    const o = new Outbox(agentPaths(agent.stateDir).outbox, agent.agentId);
    try {
      o.append({ type: 'usb.blocked', user: 'tanaka', data: usbData(RC_S380) });
      o.append({ type: 'usb.blocked', user: 'tanaka', data: usbData({ ...STICK, product: HOSTILE }) });
    } finally {
      o.close();
    }
    await agent.start();
    const db = new Database(join(c.dataDir, 'console.db'), { readonly: true });
    try {
      await waitFor('devices in the inventory', () => (db.prepare('SELECT count(*) AS n FROM usb_devices').get() as { n: number }).n >= 2, 30_000);
    } finally {
      db.close();
    }
    ({ browser, page, dialogs } = await adminBrowser(c));
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await agent?.cleanup();
    await c?.cleanup();
  });

  it('the blocked RC-S380 appears; allowing its model publishes v+1 with only its rule enabled (ff)', async () => {
    const before = c.json<SignedPolicy>(['policy', 'get']).policy;
    await page.goto(`${c.url}/devices`);
    const row = page.locator('tr[data-vidpid="054c:06c1"]');
    await expect(row.locator('[data-verdict]').getAttribute('data-verdict')).resolves.toBe('usb.blocked');
    await expect(row.locator('td.model').textContent()).resolves.toContain('RC-S380/S');
    // The hostile product name is shown as text, never run.
    await expect(page.locator('tr[data-vidpid="0781:5581"] td.model').textContent()).resolves.toContain(HOSTILE);
    await expect(page.locator('tr[data-vidpid="0781:5581"] [data-refusal="only-export"]').count()).resolves.toBe(1);
    await page.screenshot({ path: join(SHOTS, '20-devices.png'), fullPage: true });

    await Promise.all([page.waitForURL((u) => u.pathname === '/devices/allow-model'), row.locator('form.allow-model button[type=submit]').click()]);
    const diff = (await page.locator('#policy-diff').textContent())!;
    expect(diff).toMatch(/^- +"enabled": false,$/m);
    expect(diff).toMatch(/^\+ +"enabled": true,$/m);
    expect(diff.split('\n').filter((l) => /^[-+] /.test(l))).toHaveLength(2); // one line changed, nothing else
    await page.screenshot({ path: join(SHOTS, '21-devices-allow-model-diff.png'), fullPage: true });
    expect(c.json<SignedPolicy>(['policy', 'get']).policy.version).toBe(before.version); // not before the confirm

    await page.click('#publish-form button[type=submit]');
    await expect(page.locator('#published').textContent()).resolves.toContain(`v${before.version + 1}`);
    const after = c.json<SignedPolicy>(['policy', 'get']).policy;
    expect(after.version).toBe(before.version + 1);
    const expected = { ...before, usb: { ...before.usb, models: before.usb.models!.map((m) => (m.id === 'sony-rc-s380-s' ? { ...m, enabled: true } : m)) } };
    const strip = ({ version: _v, issuedAt: _i, issuedBy: _b, ...rest }: typeof before) => rest;
    expect(strip(after)).toEqual(strip(expected));
    expect(after.usb.models!.find((m) => m.vendorId === '054c' && m.productId === '06c1')).toMatchObject({ interfaces: ['ff'], enabled: true });

    const changed = c.events(['--type', 'admin.policy_changed']).at(-1)!;
    expect(changed.user).toBe(after.issuedBy);
    expect(changed.data).toMatchObject({ via: 'devices:allow-model:054c:06c1', after: { version: after.version } });
    // The catalogue on the same page now says 有効 for that entry, and the agent takes the new version.
    await page.goto(`${c.url}/devices`);
    await expect(page.locator('tr[data-entry="sony-rc-s380-s"] td.state').textContent()).resolves.toBe('有効');
    await waitFor('agent applies the new policy', () => (agent.status() as { policyVersion?: number }).policyVersion === after.version, 60_000);
    // The CLI reads the same inventory.
    const cli = c.json<{ total: number; devices: { vendorId: string; lastType: string }[] }>(['devices', 'list', '--search', '054c:06c1']);
    expect(cli.total).toBe(1);
    expect(dialogs).toEqual([]);
  }, 120_000);

  it('catalogue 有効にする and "register this stick" go through the same diff → confirm → signed version', async () => {
    const v0 = c.json<SignedPolicy>(['policy', 'get']).policy.version;
    await page.goto(`${c.url}/devices`);
    await Promise.all([page.waitForURL((u) => u.pathname === '/devices/catalogue'), page.locator('tr[data-entry="sony-rc-s380-p"] button[type=submit]').click()]);
    await expect(page.locator('#proposal-rule').textContent()).resolves.toBe('model:sony-rc-s380-p');
    await page.click('#publish-form button[type=submit]');
    await expect(page.locator('#published').textContent()).resolves.toContain(`v${v0 + 1}`);

    await page.goto(`${c.url}/devices`);
    await expect(page.locator('tr[data-entry="sony-rc-s380-p"] td.state').textContent()).resolves.toBe('有効');
    const stick = page.locator('tr[data-vidpid="0781:5581"] form.register');
    await stick.locator('select[name=access]').selectOption('readonly');
    await stick.locator('input[name=label]').fill('総務課 USB-01');
    await Promise.all([page.waitForURL((u) => u.pathname === '/devices/register'), stick.locator('button[type=submit]').click()]);
    await expect(page.locator('#policy-diff').textContent()).resolves.toContain('"serial": "4C530001"');
    await page.screenshot({ path: join(SHOTS, '22-devices-register-diff.png'), fullPage: true });
    await page.click('#publish-form button[type=submit]');
    await expect(page.locator('#published').textContent()).resolves.toContain(`v${v0 + 2}`);
    const p = c.json<SignedPolicy>(['policy', 'get']).policy;
    expect(p.usb.models!.find((m) => m.id === 'sony-rc-s380-p')!.enabled).toBe(true);
    expect(p.usb.registered).toEqual([expect.objectContaining({ vendorId: '0781', productId: '5581', serial: '4C530001', access: 'readonly', label: '総務課 USB-01', descriptorHash: 'a'.repeat(64) })]);
    expect(c.events(['--type', 'admin.policy_changed']).slice(-2).map((e) => (e.data as { via?: string }).via)).toEqual(['devices:catalogue:sony-rc-s380-p', `devices:register:${p.usb.registered[0]!.id}`]);
    expect(dialogs).toEqual([]);
  }, 120_000);
});
