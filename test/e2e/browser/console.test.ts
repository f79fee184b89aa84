/**
 * Browser tier: the web console in real Chromium (Debian's, driven by playwright-core) against a
 * real console process with a real enrolled agent that uploads a hostile USB event through its
 * outbox. The TLS certificate is the console's own CA: the test context ignores HTTPS errors
 * rather than installing that CA into Chromium (acceptable for a loopback test; the console's
 * own fingerprint pinning is tested in the integration tier).
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Outbox } from '../../../agent/report/outbox.js';
import { agentPaths } from '../../../agent/state.js';
import { enrollAgent, startConsole, waitFor, type TestAgent, type TestConsole } from '../../integration/harness.js';
import { field, freshCode, launchChromium, login, requireBrowser, SHOTS } from './browser.js';

const tools = requireBrowser(['dist/console/web/feature.js']);
const HOSTILE = '<img src=x onerror=alert(1)>';
const FORMULA = "=HYPERLINK(\"http://evil.example\",\"x\")";



async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

/** A usb.blocked event's data as the agent's usbEventData writes it (protocol/event-data.ts declares it). */
function usbBlocked(vendorId: string, productId: string, serial: string, manufacturer: string, product: string): Record<string, unknown> {
  return {
    kind: 'usb', mode: 'enforce', port: '1-2', busnum: 1, devnum: 5, vendorId, productId, bcdDevice: '0100', deviceClass: '00', interfaceClasses: ['08'],
    interfaces: [{ number: 0, classes: ['08/06/50'], allow: false, rule: 'class:08' }], manufacturer, product, serial,
    serialHex: Buffer.from(serial).toString('hex'), descriptorHash: 'a'.repeat(64), rule: 'class:08', partial: false, readonly: false, exceptionId: null,
  };
}

describe.skipIf(!tools.ok)('browser: 管理コンソール in Chromium', () => {
  let c: TestConsole;
  let agent: TestAgent;
  let browser: Browser;
  let admin: BrowserContext;
  let page: Page;
  let adminPassword = '';
  let adminSecret = '';
  const auditor = { password: '', secret: '' };
  const requests: string[] = [];
  const dialogs: string[] = [];
  let evil: Server | null = null;

  beforeAll(async () => {
    mkdirSync(SHOTS, { recursive: true });
    c = await startConsole();
    const creds = readFileSync(join(c.dataDir, 'initial-admin.txt'), 'utf8');
    adminPassword = field(creds, 'password');
    adminSecret = field(creds, 'totp-secret');
    // A real agent: enrolled with a one-time token, its outbox gets events as a capability would
    // write them, and the running service uploads them over mutual TLS.
    agent = await enrollAgent(c, { monitor: true, start: false });
    const o = new Outbox(agentPaths(agent.stateDir).outbox, agent.agentId);
    try {
      o.append({ type: 'usb.blocked', user: 'tanaka', data: usbBlocked('0781', '5581', '4C530001', 'SanDisk', HOSTILE) });
      o.append({ type: 'usb.blocked', user: FORMULA, data: usbBlocked('0951', '1666', 'X1', 'Kingston', 'DataTraveler') });
      o.append({ type: 'mfa.failure', user: 'tanaka', data: { reason: 'bad_code' } });
      o.append({ type: 'software.unauthorized_process', user: 'suzuki', data: { path: '/tmp/evil', sha256: 'ab'.repeat(32) } });
    } finally {
      o.close();
    }
    await agent.start();
    const db = new Database(join(c.dataDir, 'console.db'), { readonly: true });
    try {
      await waitFor('events uploaded', () => (db.prepare("SELECT count(*) AS n FROM events WHERE type = 'usb.blocked'").get() as { n: number }).n >= 2, 30_000);
    } finally {
      db.close();
    }
    browser = await launchChromium();
    admin = await browser.newContext({ ignoreHTTPSErrors: true, acceptDownloads: true, locale: 'ja-JP', viewport: { width: 1280, height: 900 } });
    page = await admin.newPage();
    page.on('request', (r) => requests.push(r.url()));
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    evil?.close();
    await agent?.cleanup();
    await c?.cleanup();
  });

  it('logs in with password + TOTP code (oathtool) and shows the dashboard', async () => {
    const first = await page.goto(`${c.url}/`);
    expect(new URL(page.url()).pathname).toBe('/login');
    const h = first!.headers();
    expect(h['content-security-policy']).toBe("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'");
    expect(h['x-frame-options']).toBe('DENY');
    expect(h['referrer-policy']).toBe('same-origin');
    await shot(page, '01-login');
    // Wrong code first: refused without saying which factor was wrong.
    await page.fill('input[name=username]', 'admin');
    await page.fill('input[name=password]', adminPassword);
    await page.fill('input[name=code]', '000000');
    await page.click('form.login button[type=submit]');
    await expect(page.locator('p.error').textContent()).resolves.toContain('ログインできませんでした');
    await login(page, c.url, 'admin', adminPassword, adminSecret);
    await expect(page.locator('h1').textContent()).resolves.toBe('ダッシュボード');
    const blocked = Number(await page.locator('#blocked-today').textContent());
    expect(blocked).toBeGreaterThanOrEqual(2);
    await expect(page.locator('svg.chart').count()).resolves.toBeGreaterThan(0);
    await shot(page, '02-dashboard');
    const cookies = await admin.cookies();
    const session = cookies.find((k) => k.name === '__Host-sekimori_session')!;
    expect(session.secure && session.httpOnly && session.sameSite === 'Strict').toBe(true);
  }, 120_000);

  it('renders a hostile USB product string as text, with no script run', async () => {
    await page.goto(`${c.url}/events`);
    await page.selectOption('select[name=type]', 'usb.blocked');
    await Promise.all([page.waitForURL(/type=usb.blocked/), page.click('#event-filters button[type=submit]')]);
    const cells = await page.locator('table.events td.data').allTextContents();
    expect(cells.some((t) => t.includes(HOSTILE))).toBe(true);
    await expect(page.locator('main img').count()).resolves.toBe(0);
    await shot(page, '03-events');
    await page.locator('table.events tr', { hasText: 'SanDisk' }).locator('a').first().click();
    await expect(page.locator('#event-data').textContent()).resolves.toContain(HOSTILE);
    await expect(page.locator('#chain-status').textContent()).resolves.toContain('正常');
    await expect(page.locator('main img').count()).resolves.toBe(0);
    await shot(page, '04-event-detail');
    expect(dialogs).toEqual([]);
    expect(requests.some((u) => /\/x$/.test(new URL(u).pathname))).toBe(false);
  }, 60_000);

  it('filters and exports CSV that Excel opens (UTF-8 BOM, formulas neutralised)', async () => {
    await page.goto(`${c.url}/events?type=usb.blocked&user=tanaka`);
    await expect(page.locator('table.events tbody tr').count()).resolves.toBe(1);
    await page.goto(`${c.url}/events?type=usb.blocked`);
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#csv-link')]);
    const file = join(SHOTS, '..', 'events.csv');
    await download.saveAs(file);
    const bytes = readFileSync(file);
    expect([...bytes.subarray(0, 3)]).toEqual([0xef, 0xbb, 0xbf]);
    const text = bytes.toString('utf8');
    expect(text).toContain(HOSTILE);
    expect(text.split('\r\n').length).toBe(4); // header + 2 rows + trailing
    expect(text).toContain(`"'=HYPERLINK(""http://evil.example""`);
  }, 60_000);

  it('walks terminals, policy (validate, diff, sign), users & MFA (QR), exceptions, report', async () => {
    await page.goto(`${c.url}/terminals`);
    await expect(page.locator('#terminals tbody tr').count()).resolves.toBe(1);
    await shot(page, '05-terminals');
    await page.click('#terminals tbody a');
    await expect(page.locator('main').textContent()).resolves.toContain(agent.agentId);
    await shot(page, '06-terminal-detail');

    await page.goto(`${c.url}/policy`);
    const v0 = Number((await page.locator('#policy-version').textContent())!.slice(1));
    await page.fill('textarea[name=agent]', '{"heartbeatSeconds": 0, "uploadBatchSize": 500}');
    await page.click('#policy-form button[type=submit]');
    await expect(page.locator('#policy-errors').textContent()).resolves.toContain('policy.agent.heartbeatSeconds');
    await page.fill('textarea[name=agent]', '{"heartbeatSeconds": 20, "uploadBatchSize": 500}');
    await page.click('#policy-form button[type=submit]');
    await expect(page.locator('#policy-diff .add').first().textContent()).resolves.toContain('"heartbeatSeconds": 20');
    await shot(page, '07-policy-diff');
    await page.click('#publish-form button[type=submit]');
    await expect(page.locator('#published').textContent()).resolves.toContain(`v${v0 + 1}`);
    // Roll forward: publish version v0's content again as a new version.
    await page.goto(`${c.url}/policy/v/${v0}`);
    await page.click('#publish-form button[type=submit]');
    await expect(page.locator('#published').textContent()).resolves.toContain(`v${v0 + 2}`);
    await page.goto(`${c.url}/policy`);
    await shot(page, '08-policy');

    await page.goto(`${c.url}/users`);
    await page.fill('form[action="/users/enroll"] input[name=user]', 'tanaka');
    await page.click('form[action="/users/enroll"] button');
    const src = await page.locator('#totp-qr').getAttribute('src');
    expect(src).toMatch(/^data:image\/svg\+xml;base64,/);
    await expect(page.locator('#recovery-codes li').count()).resolves.toBe(10);
    await shot(page, '09-mfa-enrol');
    const staffSecret = (await page.locator('#totp-secret').textContent())!.trim();
    await page.fill('form[action="/users/confirm"] input[name=code]', await freshCode(staffSecret));
    await page.click('form[action="/users/confirm"] button');
    await expect(page.locator('#confirm-result').textContent()).resolves.toContain('登録を完了しました');
    await page.goto(`${c.url}/users`);
    await page.selectOption('form[action="/users/assign"] select[name=terminal]', agent.agentId);
    await page.click('form[action="/users/assign"] button');
    await expect(page.locator('#mfa-users').textContent()).resolves.toContain('tanaka');
    await shot(page, '10-users');

    await page.goto(`${c.url}/exceptions`);
    // A request from a blocked event: pending, and not decidable by the same administrator.
    await page.locator('a[href*="device=0781"]').first().click();
    await page.fill('#grant-form input[name=reason]', '住民票データの受け渡し');
    await page.click('#grant-form button[value=request]');
    await expect(page.locator('#requests tbody tr').count()).resolves.toBe(1);
    await expect(page.locator('#requests form[action="/exceptions/decide"]').count()).resolves.toBe(0);
    // An immediate grant.
    await page.locator('a[href*="device=0781"]').first().click();
    await page.fill('#grant-form input[name=reason]', '住民票データの受け渡し');
    await page.click('#grant-form button[value=grant]');
    await expect(page.locator('#exceptions tbody tr').count()).resolves.toBe(1);
    await shot(page, '11-exceptions');

    await page.goto(`${c.url}/software`);
    await expect(page.locator('#baselines').count()).resolves.toBe(1);
    await shot(page, '11b-software');

    await page.goto(`${c.url}/report`);
    await expect(page.locator('#r-usb .total strong').textContent()).resolves.toBe('2');
    await shot(page, '12-report');
    await page.emulateMedia({ media: 'print' });
    await page.pdf({ path: join(SHOTS, '..', 'self-inspection-report.pdf'), format: 'A4' });
    await page.emulateMedia({ media: 'screen' });

    await page.goto(`${c.url}/lang?l=en&next=/`);
    await expect(page.locator('h1').textContent()).resolves.toBe('Dashboard');
    await shot(page, '13-dashboard-en');
    await page.goto(`${c.url}/lang?l=ja&next=/`);
  }, 180_000);

  it('every request went to the console origin only', () => {
    const foreign = requests.filter((u) => !u.startsWith(c.url + '/') && !u.startsWith('data:'));
    expect(requests.length).toBeGreaterThan(10);
    expect(foreign).toEqual([]);
  });

  it('an auditor sees everything and can change nothing (UI and direct POSTs refused)', async () => {
    await page.goto(`${c.url}/accounts`);
    await page.fill('form[action="/accounts/add"] input[name=name]', 'kansa');
    await page.selectOption('form[action="/accounts/add"] select[name=role]', 'auditor');
    await page.click('form[action="/accounts/add"] button');
    const password = (await page.locator('#new-password').textContent())!.trim();
    const secret = (await page.locator('#new-secret').textContent())!.trim();
    Object.assign(auditor, { password, secret });

    const ctx = await browser.newContext({ ignoreHTTPSErrors: true, locale: 'ja-JP' });
    const p = await ctx.newPage();
    await login(p, c.url, 'kansa', password, secret);
    await p.goto(`${c.url}/policy`);
    await expect(p.locator('#policy-form button').count()).resolves.toBe(0);
    await expect(p.locator('textarea[name=agent]').getAttribute('readonly')).resolves.not.toBeNull();
    await p.goto(`${c.url}/terminals/${agent.agentId}`);
    await expect(p.locator(`form[action$="/revoke"]`).count()).resolves.toBe(0);
    await shot(p, '14-auditor-terminal');
    // The same requests an admin's page would send, with the auditor's valid session and CSRF token.
    const statuses = await p.evaluate(async (agentId) => {
      // Runs in the page (tests are compiled without the DOM library, hence the narrow type).
      const doc = (globalThis as unknown as { document: { querySelector(s: string): { getAttribute(n: string): string | null } | null } }).document;
      const csrf = doc.querySelector('meta[name=csrf-token]')!.getAttribute('content')!;
      const post = (path: string, body: Record<string, string>) =>
        fetch(path, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ _csrf: csrf, ...body }), redirect: 'manual' }).then((r) => r.status);
      return [
        await post(`/terminals/${agentId}/revoke`, {}),
        await post('/policy/publish', { base: '1', body: '{}' }),
        await post('/accounts/add', { name: 'evil', role: 'admin' }),
        await post('/users/enroll', { user: 'x' }),
        await post('/exceptions/grant', { agent: agentId, device: '0781:5581', for: '2h', access: 'allow', reason: 'x' }),
        await post('/software/baselines/approve', { id: 'bl-000000000000' }),
      ];
    }, agent.agentId);
    expect(statuses).toEqual([403, 403, 403, 403, 403, 403]);
    await ctx.close();
    const db = new Database(join(c.dataDir, 'console.db'), { readonly: true });
    try {
      expect((db.prepare('SELECT status FROM agents WHERE id = ?').get(agent.agentId) as { status: string }).status).not.toBe('revoked');
      expect(db.prepare("SELECT 1 FROM console_users WHERE username = 'evil'").get()).toBeUndefined();
      expect((db.prepare("SELECT count(*) AS n FROM events WHERE type = 'admin.forbidden'").get() as { n: number }).n).toBe(6);
    } finally {
      db.close();
    }
  }, 120_000);

  it('a CSRF attempt from another origin fails', async () => {
    const target = `${c.url}/terminals/${agent.agentId}/revoke`;
    evil = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(`<form id="f" method="post" action="${target}"><input name="_csrf" value="guess"><button id="go">win a prize</button></form>`);
    });
    await new Promise<void>((r) => evil!.listen(0, '127.0.0.1', () => r()));
    const port = (evil.address() as { port: number }).port;
    const p = await admin.newPage(); // the admin is logged in in this browser context
    await p.goto(`http://127.0.0.1:${port}/`);
    const [resp] = await Promise.all([p.waitForNavigation(), p.click('#go')]);
    expect(resp?.status()).toBe(403);
    // Even with the session cookie and the real token, a foreign Origin is refused.
    const csrf = await page.locator('meta[name=csrf-token]').getAttribute('content');
    const forged = await admin.request.post(target, { headers: { origin: `http://127.0.0.1:${port}` }, form: { _csrf: csrf! }, maxRedirects: 0 });
    expect(forged.status()).toBe(403);
    await p.close();
    const db = new Database(join(c.dataDir, 'console.db'), { readonly: true });
    try {
      expect((db.prepare('SELECT status FROM agents WHERE id = ?').get(agent.agentId) as { status: string }).status).not.toBe('revoked');
    } finally {
      db.close();
    }
  }, 60_000);

  /** A failed login for `user` sent from another loopback address (Chromium always connects from 127.0.0.1). */
  async function failFrom(from: string, user: string): Promise<number> {
    const ca = readFileSync(join(c.dataDir, 'ca.pem'));
    const get = (method: string, headers: Record<string, string>, body?: string) =>
      new Promise<{ status: number; cookies: string[] }>((resolve, reject) => {
        const req = httpsRequest(`${c.url}/login`, { method, ca, localAddress: from, headers, timeout: 30_000 }, (res) => {
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode ?? 0, cookies: res.headers['set-cookie'] ?? [] }));
        });
        req.on('timeout', () => req.destroy(new Error('timeout')));
        req.on('error', reject);
        req.end(body);
      });
    const token = /__Host-sekimori_login=([^;]+)/.exec((await get('GET', {})).cookies.join('\n'))![1]!;
    const form = new URLSearchParams({ _csrf: token, username: user, password: 'wrong-password', code: '123456' }).toString();
    return (await get('POST', { origin: c.url, cookie: `__Host-sekimori_login=${token}`, 'content-type': 'application/x-www-form-urlencoded' }, form)).status;
  }

  it('locks an account after repeated failures from several addresses, and says no more than "failed"', async () => {
    // The rule (console/web/auth.ts LOGIN_POLICY): lockFailures failures in a streak from at least
    // lockSources addresses. One address alone is throttled, never locks the account for everyone.
    const ctx = await browser.newContext({ ignoreHTTPSErrors: true, locale: 'ja-JP' });
    const p = await ctx.newPage();
    const tryLogin = async (password: string, code: string) => {
      await p.goto(`${c.url}/login`);
      await p.fill('input[name=username]', 'kansa');
      await p.fill('input[name=password]', password);
      await p.fill('input[name=code]', code);
      await p.click('form.login button[type=submit]');
      return (await p.locator('p.error').textContent()) ?? '';
    };
    for (let i = 0; i < 4; i++) expect(await tryLogin('wrong-password', '123456')).toContain('ログインできませんでした');
    await page.goto(`${c.url}/accounts`);
    await expect(page.locator('#accounts').textContent()).resolves.not.toContain('ロック中');
    // Six more from two other addresses: ten failures from three addresses.
    for (const from of ['127.0.0.2', '127.0.0.3', '127.0.0.2', '127.0.0.3', '127.0.0.2', '127.0.0.3']) expect(await failFrom(from, 'kansa')).toBe(401);
    // The right password and code now: refused with the very message of any failure (no "locked").
    const shown = await tryLogin(auditor.password, await freshCode(auditor.secret));
    expect(shown).toContain('ログインできませんでした');
    expect(shown).not.toContain('ロック');
    await shot(p, '15-login-refused');
    await page.goto(`${c.url}/accounts`);
    await expect(page.locator('#accounts').textContent()).resolves.toContain('ロック中');
    // An administrator unlocks it; then the auditor logs in.
    await Promise.all([page.waitForURL(/done=1/), page.locator('#accounts tr', { hasText: 'kansa' }).locator('form[action="/accounts/unlock"] button').click()]);
    await expect(page.locator('#accounts').textContent()).resolves.not.toContain('ロック中');
    await login(p, c.url, 'kansa', auditor.password, auditor.secret);
    await expect(p.locator('h1').textContent()).resolves.toBe('ダッシュボード');
    await ctx.close();
  }, 120_000);

  it('an administrator revokes a terminal through the UI (confirmation dialog)', async () => {
    page.removeAllListeners('dialog');
    page.on('dialog', (d) => void d.accept());
    await page.goto(`${c.url}/terminals/${agent.agentId}`);
    await Promise.all([page.waitForURL(`${c.url}/terminals/${agent.agentId}`), page.click('form[action$="/revoke"] button')]);
    await expect(page.locator('.status-revoked').count()).resolves.toBeGreaterThan(0);
    writeFileSync(join(SHOTS, '..', 'browser-requests.txt'), requests.join('\n') + '\n');
  }, 60_000);
});
