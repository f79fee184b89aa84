/**
 * The users page learns whether the MFA feature is loaded from the feature registry
 * (console/modules.ts, through the opened console), not by probing sqlite_master: a table left
 * by a module no longer loaded must not switch the page on, and a context that cannot answer is "no".
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initConsole, openConsole, type OpenConsole } from '../../console/core/context.js';
import { modules } from '../../console/modules.js';
import { mfaInstalled } from '../../console/web/pages/users.js';

let dir = '';
let ctx: OpenConsole;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sekimori-registry-'));
  await initConsole(join(dir, 'data'), { sans: [], organisation: 'テスト市' });
  ctx = openConsole(join(dir, 'data'));
}, 60_000);

afterAll(() => {
  ctx?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('is the MFA feature loaded?', () => {
  it('the opened console answers from the registry', () => {
    for (const m of modules) expect(ctx.hasModule(m.name)).toBe(true);
    expect(modules.map((m) => m.name)).toContain('mfa');
    expect(mfaInstalled(ctx)).toBe(true);
  });
  it.each([
    ['the registry without mfa, though its tables exist', () => ({ ...ctx, hasModule: (n: string) => n !== 'mfa' })],
    ['a context without a registry', () => ({ ...ctx, hasModule: undefined })],
    ['a registry that names something else', () => ({ ...ctx, hasModule: (n: string) => n === 'mfa-identity' })],
  ])('%s → not loaded', (_n, make) => {
    expect(ctx.db.prepare("SELECT 1 FROM sqlite_master WHERE name = 'mfa_users'").get()).toBeDefined();
    expect(mfaInstalled(make() as unknown as OpenConsole)).toBe(false);
  });
  it.each(['', 'MFA', 'mfa ', 'web\u0000', '__proto__', 'constructor'])('hasModule(%j) is false', (name) => {
    expect(ctx.hasModule(name)).toBe(false);
  });
});
