/**
 * Issue 13: staff names as Windows means them (console/mfa/identity.ts). Table-driven checks of the
 * name grammar and the Windows key, including hostile input, and the store on a real console data
 * folder: one enrolment per Windows identity, Linux terminals still matched exactly (case-
 * sensitive), enrolments made before keys existed get theirs (migration), collisions stay Linux-only.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { base32Decode, hotp, timeStep } from '../../protocol/mfa/otp.js';
import { initConsole, openConsole, type OpenConsole } from '../../console/core/context.js';
import { normaliseUserName, storedUserForWindows, syncUserKeys, userKey } from '../../console/mfa/identity.js';
import { confirmUser, enrollUser, unlockUser, verifyAttempt } from '../../console/mfa/store.js';

describe('normaliseUserName (stored names)', () => {
  const ok: [string, string][] = [
    ['yamada', 'yamada'],
    ['Yamada', 'Yamada'], // case kept: Linux names are case-sensitive
    ['yamada@city.example.lg.jp', 'yamada@city.example.lg.jp'],
    ['山田 太郎', '山田 太郎'],
    ['山田\u3000太郎', '山田\u3000太郎'],
    ['ガ', 'ガ'], // NFD カ + U+3099 composes
    ['o.brien-2_x', 'o.brien-2_x'],
    ['a'.repeat(64), 'a'.repeat(64)],
  ];
  it.each(ok)('%j → %j', (input, out) => expect(normaliseUserName(input)).toBe(out));
  const bad: unknown[] = [
    '',
    ' ',
    ' yamada',
    'yamada ',
    'a'.repeat(65),
    '山'.repeat(65),
    'ya\tmada',
    'ya\u0000mada',
    'ya\nmada',
    'ya\u200bmada', // zero-width space (format)
    'ya\u202emada', // right-to-left override
    'ya\ue000mada', // private use
    'ya\ud800mada', // lone surrogate
    'CITY\\yamada',
    'a/b',
    'a:b',
    'a;b',
    'a"b',
    'a<b>',
    'a|b',
    'a*',
    'a?',
    'a,b',
    'a=b',
    'a+b',
    'a[b]',
    "x'; DROP TABLE mfa_users;--",
    '.',
    '..',
    null,
    undefined,
    42,
    ['yamada'],
    { user: 'yamada' },
  ];
  it.each(bad.map((b) => [b]))('refuses %j', (input) => expect(normaliseUserName(input)).toBeNull());
});

describe('userKey (the identity Windows means)', () => {
  const same = ['yamada', 'Yamada', 'YAMADA', 'CITY\\yamada', 'city\\Yamada', '.\\yamada', 'yamada@city.example.lg.jp', 'YAMADA@CITY.EXAMPLE.LG.JP', 'ｙａｍａｄａ', 'CITY＼ｙａｍａｄａ', ' yamada '];
  it.each(same.map((s) => [s]))('%j → yamada', (s) => expect(userKey(s)).toBe('yamada'));
  it('Japanese and spaced names: width and the ideographic space fold, kana type does not', () => {
    expect(userKey('山田\u3000太郎')).toBe('山田 太郎');
    expect(userKey('CITY\\山田 太郎')).toBe('山田 太郎');
    expect(userKey('ﾔﾏﾀﾞ')).toBe('ヤマダ');
    expect(userKey('やまだ')).not.toBe(userKey('ヤマダ'));
  });
  const bad: unknown[] = ['', 'CITY\\', '@city.example', 'ya\tmada', 'CITY\u0000\\yamada', 'ya\u200bmada', 'a'.repeat(65), 'x'.repeat(2000), null, 7];
  it.each(bad.map((b) => [b]))('no key for %j', (input) => expect(userKey(input)).toBeNull());
});

describe('store: one enrolment per Windows identity', () => {
  let dir: string;
  let ctx: OpenConsole;
  const NOW = Date.now();
  const step = timeStep(NOW);
  beforeAll(async () => {
    dir = join(mkdtempSync(join(tmpdir(), 'sekimori-cp-identity-')), 'data');
    await initConsole(dir, { sans: [], organisation: '関守市' });
    ctx = openConsole(dir);
  });
  afterAll(() => {
    ctx?.close();
    rmSync(join(dir, '..'), { recursive: true, force: true });
  });
  const enrolActive = (user: string): Buffer => {
    const key = base32Decode(enrollUser(ctx, user, 'test').secret)!;
    expect(confirmUser(ctx, user, hotp(key, step - 1), 'test', NOW)).toBe(true);
    return key;
  };

  it('Windows spellings reach the enrolment; Linux (exact name) does not', () => {
    const key = enrolActive('yamada');
    for (const w of ['Yamada', 'CITY\\yamada', 'yamada@city.example.lg.jp', 'ＹＡＭＡＤＡ']) expect(storedUserForWindows(ctx, w)).toBe('yamada');
    expect(storedUserForWindows(ctx, 'tanaka')).toBeNull();
    // The agent's path (Linux PAM) looks the name up exactly: "Yamada" is another Linux account.
    expect(verifyAttempt(ctx, 'Yamada', hotp(key, step), 'agent-1', NOW).verdict.reason).toBe('not_enrolled');
    expect(verifyAttempt(ctx, 'yamada', hotp(key, step), 'agent-1', NOW).verdict.result).toBe('accept');
  });

  it('a second name with the same Windows identity is refused at enrolment; administrators reach it by any spelling', () => {
    expect(() => enrollUser(ctx, 'Yamada', 'test')).toThrow(/same staff identity as yamada/);
    expect(() => enrollUser(ctx, 'yamada@city.example.lg.jp', 'test')).toThrow(/same staff identity as yamada/);
    expect(() => unlockUser(ctx, 'YAMADA', 'test')).not.toThrow();
    expect(() => unlockUser(ctx, 'nobody', 'test')).toThrow(/not enrolled/);
  });

  it('Japanese, spaced names enrol and verify (decide() gets a stand-in for its ASCII check only)', () => {
    const key = enrolActive('山田 太郎');
    expect(storedUserForWindows(ctx, 'CITY\\山田\u3000太郎')).toBe('山田 太郎');
    expect(verifyAttempt(ctx, '山田 太郎', hotp(key, step), 'win:W', NOW).verdict).toMatchObject({ result: 'accept', reason: 'ok' });
    expect(verifyAttempt(ctx, '山田 太郎', '000000', 'win:W', NOW).verdict).toMatchObject({ result: 'reject' });
  });

  it('names enrolled before keys existed get them; a collision leaves the newer one Linux-only', () => {
    const ins = ctx.db.prepare(
      `INSERT INTO mfa_users (user, status, kind, serial, secret, algorithm, digits, period, last_step, failures, locked_until, created_at, updated_at)
       VALUES (?, 'active', 'app', NULL, ?, 'SHA1', 6, 30, -1, 0, 0, ?, ?)`,
    );
    const sealed = ctx.seal('JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP');
    ins.run('Legacy.User', sealed, '2020-01-01T00:00:00Z', '2020-01-01T00:00:00Z');
    ins.run('legacy.user', sealed, '2021-01-01T00:00:00Z', '2021-01-01T00:00:00Z');
    expect(syncUserKeys(ctx)).toEqual(['legacy.user']);
    expect(storedUserForWindows(ctx, 'LEGACY.USER')).toBe('Legacy.User');
    expect(syncUserKeys(ctx)).toEqual(['legacy.user']); // stays keyless, reported again, nothing else changes
    // Inserted without a key (e.g. by an import): found on first lookup.
    ins.run('suzuki', sealed, '2022-01-01T00:00:00Z', '2022-01-01T00:00:00Z');
    expect(storedUserForWindows(ctx, 'CITY\\Suzuki')).toBe('suzuki');
  });
});
