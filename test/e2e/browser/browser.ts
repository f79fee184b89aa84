/**
 * What every browser-tier test shares: Debian's Chromium (playwright-core drives it, nothing is
 * downloaded), the tool check that skips loudly, and logging in as a console user with a TOTP code
 * the console has not seen yet (it refuses a replayed code).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type BrowserContextOptions, type Page } from 'playwright-core';
import { ROOT } from '../../integration/harness.js';
import { requireTools } from '../tools.js';

export const CHROMIUM = '/usr/bin/chromium';
export const SHOTS = join(ROOT, 'test-output/screenshots');

/** The browser tier's tools, plus built files (relative to the checkout) and other tools a test needs. */
export function requireBrowser(builtFiles: string[], extraTools: string[] = [], extraMissing: string[] = []) {
  return requireTools('browser', [CHROMIUM, 'oathtool', ...extraTools], 'sudo apt-get install -y chromium oathtool fonts-noto-cjk', {
    missing: [...builtFiles.filter((f) => !existsSync(join(ROOT, f))).map((f) => `${f} (run npm run build)`), ...extraMissing],
  });
}

/** Headless, and without the background traffic this closed network refuses. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}

/** One `name: value` line of a CLI's text output (e.g. the credentials `init` prints). */
export function field(text: string, name: string): string {
  const m = new RegExp(`^${name}: (.+)$`, 'm').exec(text);
  if (!m) throw new Error(`${name} not found`);
  return m[1]!.trim();
}

function totp(secret: string): string {
  return execFileSync('oathtool', ['--totp', '-b', secret], { encoding: 'utf8' }).trim();
}

/** A TOTP code not used before for this secret: waits for the next 30 s step when needed (replay guard). */
const used = new Map<string, string>();
export async function freshCode(secret: string): Promise<string> {
  for (let i = 0; i < 40; i++) {
    const c = totp(secret);
    if (used.get(secret) !== c) {
      used.set(secret, c);
      return c;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
  throw new Error('no fresh TOTP code within 40 s');
}

export async function login(page: Page, url: string, user: string, password: string, secret: string): Promise<void> {
  await page.goto(`${url}/login`);
  await page.fill('input[name=username]', user);
  await page.fill('input[name=password]', password);
  await page.fill('input[name=code]', await freshCode(secret));
  await Promise.all([page.waitForURL((u) => !u.pathname.startsWith('/login')), page.click('form.login button[type=submit]')]);
}

/** A Chromium with one page logged in as the console's initial administrator. */
export interface AdminBrowser {
  browser: Browser;
  context: BrowserContext;
  page: Page;
  /** Every dialog the pages opened (dismissed): a hostile string that ran would show up here. */
  dialogs: string[];
}

/**
 * Launches Chromium (Japanese locale unless `options` say otherwise) and logs in as the
 * administrator whose credentials `init` wrote into the console's data folder. `beforeLogin` sees
 * the page first (e.g. to record every request from the login on).
 */
export async function adminBrowser(c: { url: string; dataDir: string }, options: BrowserContextOptions = {}, beforeLogin?: (page: Page) => void): Promise<AdminBrowser> {
  const browser = await launchChromium();
  const context = await browser.newContext({ ignoreHTTPSErrors: true, locale: 'ja-JP', viewport: { width: 1400, height: 900 }, ...options });
  const page = await context.newPage();
  const dialogs: string[] = [];
  page.on('dialog', (d) => {
    dialogs.push(d.message());
    void d.dismiss();
  });
  beforeLogin?.(page);
  const creds = readFileSync(join(c.dataDir, 'initial-admin.txt'), 'utf8');
  await login(page, c.url, field(creds, 'username'), field(creds, 'password'), field(creds, 'totp-secret'));
  return { browser, context, page, dialogs };
}
