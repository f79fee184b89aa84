/**
 * Browser tier, ポリシー(フォーム編集), in real Chromium against a real console process and a real
 * enrolled agent:
 * - "USBメモリ" (class 08) set to 読み取り専用 with the form → diff → 署名して公開 → the signed
 *   policy's next version differs from the previous in exactly that field (documents compared),
 *   and the agent takes that version;
 * - a field error is shown next to its field and nothing is published;
 * - a stick blocked at the agent (uploaded through its outbox, hostile product name) is
 *   registered from its event (/policy/usb/register?event=) → the next version has the registration
 *   with the raw serial and descriptor hash;
 * - an auditor sees the forms read-only and cannot POST them.
 * Screenshots: test-output/screenshots/4x-*.png (copied to docs/screenshots/).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Outbox } from '../../../agent/report/outbox.js';
import { agentPaths } from '../../../agent/state.js';
import type { PolicyDocument, SignedPolicy } from '../../../protocol/policy.js';
import { enrollAgent, startConsole, waitFor, type TestAgent, type TestConsole } from '../../integration/harness.js';
import { STICK, usbData } from '../../usb/devices-fixtures.js';
import { adminBrowser, login, requireBrowser, SHOTS } from './browser.js';

const tools = requireBrowser(['dist/console/web/pages/policy-forms.js', 'dist/console/web/policy-form.js']);
const HOSTILE = '<img src=x onerror=alert(1)>';

const strip = ({ version: _v, issuedAt: _i, issuedBy: _b, ...rest }: PolicyDocument) => rest;

/** Leaf paths where two JSON documents differ. */
function changedPaths(a: unknown, b: unknown, p = ''): string[] {
  if (JSON.stringify(a) === JSON.stringify(b)) return [];
  if (a && b && typeof a === 'object' && typeof b === 'object' && Array.isArray(a) === Array.isArray(b)) {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    return [...keys].flatMap((k) => changedPaths((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], p ? `${p}.${k}` : k));
  }
  return [p];
}

describe.skipIf(!tools.ok)('browser: ポリシー(フォーム編集) → diff → signed version', () => {
  let c: TestConsole;
  let agent: TestAgent;
  let browser: Browser;
  let page: Page;
  let blockedRid = 0;
  let dialogs: string[] = [];
  const shot = (p: Page, name: string) => p.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
  const policy = () => c.json<SignedPolicy>(['policy', 'get']).policy;

  beforeAll(async () => {
    mkdirSync(SHOTS, { recursive: true });
    c = await startConsole();
    agent = await enrollAgent(c, { monitor: true, start: false });
    // The stick as the agent's USB capability reports a block: written to the outbox, uploaded by the running agent.
    const o = new Outbox(agentPaths(agent.stateDir).outbox, agent.agentId);
    try {
      o.append({ type: 'usb.blocked', user: 'tanaka', data: usbData({ ...STICK, product: HOSTILE }) });
    } finally {
      o.close();
    }
    await agent.start();
    const db = new Database(join(c.dataDir, 'console.db'), { readonly: true });
    try {
      await waitFor(
        'the blocked stick uploaded',
        () => {
          const r = db.prepare("SELECT rid FROM events WHERE type = 'usb.blocked' AND agent_id = ?").get(agent.agentId) as { rid: number } | undefined;
          if (r) blockedRid = r.rid;
          return r !== undefined;
        },
        60_000,
      );
    } finally {
      db.close();
    }
    ({ browser, page, dialogs } = await adminBrowser(c));
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await agent?.cleanup();
    await c?.cleanup();
  });

  it('USBメモリ → 読み取り専用 through the form: diff of one line, v+1 differs in exactly that field, the agent applies it', async () => {
    const before = policy();
    // ポリシー in the header leads to the forms; the JSON view is the 詳細(JSON) tab.
    await page.goto(`${c.url}/`);
    await Promise.all([page.waitForURL((u) => u.pathname === '/policy/forms'), page.click('header nav a:text-is("ポリシー")')]);
    await expect(page.locator('#policy-tabs a[href="/policy"]').textContent()).resolves.toBe('詳細(JSON)');
    const row = page.locator('tr[data-class="08"]');
    await expect(row.locator('label').textContent()).resolves.toContain('USBメモリ');
    await expect(row.locator('select option').allTextContents()).resolves.toEqual(['遮断', '読み取り専用', '許可']);
    await shot(page, '40-policy-forms');
    await row.locator('select').selectOption({ label: '読み取り専用' });
    await Promise.all([page.waitForURL((u) => u.pathname === '/policy/forms/preview'), page.click('#review')]);
    const diff = (await page.locator('#policy-diff').textContent())!;
    const changed = diff.split('\n').filter((l) => /^[-+] /.test(l));
    expect(changed).toHaveLength(2);
    expect(changed[0]).toMatch(/^- +"verdict": "block",$/);
    expect(changed[1]).toMatch(/^\+ +"verdict": "readonly",$/);
    await shot(page, '41-policy-forms-diff');
    expect(policy().version).toBe(before.version); // nothing signed before the confirm

    await page.click('#publish-form button[type=submit]');
    await expect(page.locator('#published').textContent()).resolves.toContain(`v${before.version + 1}`);
    const after = policy();
    expect(after.version).toBe(before.version + 1);
    const i08 = before.usb.classRules.findIndex((r) => r.class === '08' && r.subclass === undefined);
    expect(changedPaths(strip(before), strip(after))).toEqual([`usb.classRules.${i08}.verdict`]);
    expect(after.usb.classRules[i08]!.verdict).toBe('readonly');
    const ev = c.events(['--type', 'admin.policy_changed']).at(-1)!;
    expect(ev.data).toMatchObject({ via: 'policy-forms:edit', sections: ['usb'], after: { version: after.version } });
    await waitFor('the agent applies the new version', () => (agent.status() as { policyVersion?: number }).policyVersion === after.version, 60_000);
  }, 120_000);

  it('an invalid value: the message next to its field, what was typed kept, nothing published', async () => {
    const v = policy().version;
    await page.goto(`${c.url}/policy/forms`);
    await page.fill('input[name="agent.heartbeatSeconds"]', '0');
    await page.fill('textarea[name="software.locations"]', '/opt\nDownloads');
    await page.click('#review');
    await expect(page.locator('#form-errors').isVisible()).resolves.toBe(true);
    await expect(page.locator('[data-field="agent.heartbeatSeconds"] .field-error').textContent()).resolves.toContain('1〜3600 の整数を入力してください');
    await expect(page.locator('[data-field="software.locations"] .field-error').textContent()).resolves.toContain('絶対パス');
    await expect(page.locator('input[name="agent.heartbeatSeconds"]').inputValue()).resolves.toBe('0');
    await page.locator('[data-field="agent.heartbeatSeconds"]').scrollIntoViewIfNeeded();
    await shot(page, '42-policy-forms-errors');
    expect(policy().version).toBe(v);
  }, 60_000);

  it('register the blocked stick from its event: raw identity, hostile name inert, v+1 has the registration only', async () => {
    const before = policy();
    await page.goto(`${c.url}/policy/usb/register?event=${blockedRid}`);
    await expect(page.locator('#register-device').textContent()).resolves.toContain(HOSTILE); // shown as text
    await expect(page.locator('#register-device img').count()).resolves.toBe(0);
    await page.selectOption('#register-form select[name=access]', 'readonly');
    await page.fill('#register-form input[name=label]', '総務課 USB-01');
    await shot(page, '43-policy-register-from-event');
    await Promise.all([page.waitForURL((u) => u.pathname === '/policy/usb/register' && !u.search), page.click('#register-form button[type=submit]')]);
    await expect(page.locator('#policy-diff').textContent()).resolves.toContain('"serial": "4C530001"');
    await shot(page, '44-policy-register-diff');
    await page.click('#publish-form button[type=submit]');
    await expect(page.locator('#published').textContent()).resolves.toContain(`v${before.version + 1}`);
    const after = policy();
    expect(after.version).toBe(before.version + 1);
    expect(after.usb.registered).toEqual([
      expect.objectContaining({ vendorId: '0781', productId: '5581', serial: '4C530001', descriptorHash: 'a'.repeat(64), access: 'readonly', label: '総務課 USB-01' }),
    ]);
    expect(changedPaths(strip(before), strip(after))).toEqual(['usb.registered.0']);
    expect((c.events(['--type', 'admin.policy_changed']).at(-1)!.data as { via?: string }).via).toBe(`events:register:${after.usb.registered[0]!.id}`);
    // The table on the forms page now lists it, its label escaped.
    await page.goto(`${c.url}/policy/forms`);
    await expect(page.locator(`tr[data-registered="${after.usb.registered[0]!.id}"] input[name="usb.registered[0].label"]`).inputValue()).resolves.toBe('総務課 USB-01');
    expect(dialogs).toEqual([]);
  }, 120_000);

  it('an auditor sees the forms read-only and cannot POST them (403)', async () => {
    await page.goto(`${c.url}/accounts`);
    await page.fill('form[action="/accounts/add"] input[name=name]', 'kansa');
    await page.selectOption('form[action="/accounts/add"] select[name=role]', 'auditor');
    await page.click('form[action="/accounts/add"] button');
    const password = (await page.locator('#new-password').textContent())!.trim();
    const secret = (await page.locator('#new-secret').textContent())!.trim();
    const ctx = await browser.newContext({ ignoreHTTPSErrors: true, locale: 'ja-JP', viewport: { width: 1400, height: 900 } });
    const p = await ctx.newPage();
    await login(p, c.url, 'kansa', password, secret);
    await p.goto(`${c.url}/policy/forms`);
    await expect(p.locator('#review').count()).resolves.toBe(0);
    await expect(p.locator('tr[data-class="08"] select').isDisabled()).resolves.toBe(true);
    await expect(p.locator('input[name="agent.heartbeatSeconds"]').getAttribute('readonly')).resolves.not.toBeNull();
    await shot(p, '45-policy-forms-auditor');
    await p.goto(`${c.url}/policy/usb/register?event=${blockedRid}`);
    await expect(p.locator('#register-form').count()).resolves.toBe(0);
    const v = policy().version;
    const statuses = await p.evaluate(async (rid) => {
      const doc = (globalThis as unknown as { document: { querySelector(s: string): { getAttribute(n: string): string | null } | null } }).document;
      const csrf = doc.querySelector('meta[name=csrf-token]')!.getAttribute('content')!;
      const post = (path: string, body: Record<string, string>) =>
        fetch(path, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ _csrf: csrf, ...body }), redirect: 'manual' }).then((r) => r.status);
      return [await post('/policy/forms/preview', { base: '1', 'usb.mode': 'monitor' }), await post('/policy/usb/register', { event: String(rid), access: 'allow', label: 'x' })];
    }, blockedRid);
    expect(statuses).toEqual([403, 403]);
    expect(policy().version).toBe(v);
    await ctx.close();
  }, 120_000);
});
