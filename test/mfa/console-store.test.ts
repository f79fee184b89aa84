/**
 * The console's MFA store on a real console data folder (real SQLite, real sealing): replay and
 * lockout across terminals, reconciliation of offline use, the offline cache contents, hardware
 * token import, secrets and recovery codes at rest.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hotp, timeStep, base32Decode } from '../../agent/mfa/otp.js';
import { initConsole, openConsole, type OpenConsole } from '../../console/core/context.js';
import { parseReconcile } from '../../console/mfa/module.js';
import {
  assign,
  cacheFor,
  confirmUser,
  enrollUser,
  importTokens,
  listUsers,
  parseTokenCsv,
  reconcile,
  verifyAttempt,
} from '../../console/mfa/store.js';
import { defaultPolicyBody } from '../../protocol/policy.js';

let dir: string;
let ctx: OpenConsole;
const NOW = Date.UTC(2026, 10, 21, 9, 0, 0);
const step = timeStep(NOW);

function setMfa(mfa: Record<string, unknown>): void {
  const body = defaultPolicyBody();
  ctx.publishPolicy({ ...body, mfa: { ...body.mfa, ...mfa } }, 'test');
}

beforeAll(async () => {
  dir = join(mkdtempSync(join(tmpdir(), 'sekimori-mfa-store-')), 'data');
  await initConsole(dir, { sans: [], organisation: '関守市' });
  ctx = openConsole(dir);
});
afterAll(() => {
  ctx?.close();
  rmSync(join(dir, '..'), { recursive: true, force: true });
});

function enrolActive(user: string): Buffer {
  const e = enrollUser(ctx, user, 'test');
  const key = base32Decode(e.secret)!;
  expect(confirmUser(ctx, user, hotp(key, step - 1), 'test', NOW)).toBe(true);
  return key;
}

describe('enrolment', () => {
  it('gives secret, otpauth URI with the municipality as issuer, and recovery codes; stores neither in clear', () => {
    const e = enrollUser(ctx, 'yamada', 'test');
    expect(e.secret).toMatch(/^[A-Z2-7]{32}$/);
    expect(e.uri).toBe(`otpauth://totp/${encodeURIComponent('関守市')}:yamada?secret=${e.secret}&issuer=${encodeURIComponent('関守市')}&algorithm=SHA1&digits=6&period=30`);
    expect(e.recoveryCodes).toHaveLength(10);
    ctx.db.pragma('wal_checkpoint(TRUNCATE)');
    const raw = readFileSync(join(dir, 'console.db')).toString('latin1');
    expect(raw).not.toContain(e.secret);
    for (const c of e.recoveryCodes) expect(raw).not.toContain(c.replace(/-/g, ''));
    expect(raw).not.toContain(e.recoveryCodes[0]);
  });
  it('is pending until confirmed, refuses a second enroll, refuses hostile names', () => {
    const key = base32Decode(enrollUser(ctx, 'kimura', 'test').secret)!;
    expect(verifyAttempt(ctx, 'kimura', hotp(key, step), 'T1', NOW).verdict.reason).toBe('not_confirmed');
    expect(() => enrollUser(ctx, 'kimura', 'test')).toThrow(/already enrolled/);
    for (const bad of ["x'; DROP TABLE mfa_users;--", '', 'a'.repeat(65), 'a b']) expect(() => enrollUser(ctx, bad, 'test')).toThrow(/invalid user name/);
    expect(confirmUser(ctx, 'kimura', '000000', 'test', NOW)).toBe(false);
    expect(confirmUser(ctx, 'kimura', hotp(key, step), 'test', NOW)).toBe(true);
    // The confirming code was consumed.
    expect(verifyAttempt(ctx, 'kimura', hotp(key, step), 'T1', NOW).verdict.reason).toBe('replay');
  });
});

describe('across terminals', () => {
  it('a step accepted on terminal A is a replay on terminal B', () => {
    const key = enrolActive('ito');
    expect(verifyAttempt(ctx, 'ito', hotp(key, step), 'A', NOW).verdict.result).toBe('accept');
    const b = verifyAttempt(ctx, 'ito', hotp(key, step), 'B', NOW + 1000);
    expect(b.verdict).toMatchObject({ result: 'reject', reason: 'replay' });
  });
  it('failures on different terminals add up to one lock', () => {
    const key = enrolActive('kato');
    for (const t of ['A', 'B', 'C', 'D']) expect(verifyAttempt(ctx, 'kato', '999999', t, NOW).verdict.lockedNow).toBe(false);
    expect(verifyAttempt(ctx, 'kato', '999999', 'E', NOW).verdict).toMatchObject({ lockedNow: true, event: 'mfa.locked' });
    expect(verifyAttempt(ctx, 'kato', hotp(key, step), 'A', NOW + 1000).verdict.reason).toBe('locked');
    expect(listUsers(ctx, NOW + 1000).find((u) => u.user === 'kato')?.locked).toBe(true);
  });
});

describe('offline cache and reconciliation', () => {
  it('is empty unless policy allows offline; then holds only the terminal’s assigned users', () => {
    enrolActive('watanabe');
    enrolActive('nakamura');
    assign(ctx, 'watanabe', 'TERM-1', 'test');
    expect(cacheFor(ctx, 'TERM-1')).toEqual({ offlineAllowed: false, users: [] });
    setMfa({ offlineAllowed: true });
    const c = cacheFor(ctx, 'TERM-1');
    expect(c.users.map((u) => u.user)).toEqual(['watanabe']);
    expect(c.users[0]!.recovery[0]).toMatchObject({ id: 1, used: false });
    expect(JSON.stringify(c.users[0]!.recovery)).not.toMatch(/[0-9A-Z]{4}-[0-9A-Z]{4}/);
    expect(cacheFor(ctx, 'TERM-2').users).toEqual([]);
    setMfa({ offlineAllowed: false });
  });
  it('learns steps used offline (a step used offline on A is refused online anywhere) and offline failures', () => {
    const key = enrolActive('kobayashi');
    const n = reconcile(ctx, 'A', [
      { user: 'kobayashi', kind: 'step', step: step + 1, at: new Date(NOW).toISOString() },
      { user: 'kobayashi', kind: 'failure', at: new Date(NOW).toISOString() },
      { user: 'nobody', kind: 'failure', at: new Date(NOW).toISOString() },
    ]);
    expect(n).toBe(2);
    expect(verifyAttempt(ctx, 'kobayashi', hotp(key, step + 1), 'B', NOW + 30_000).verdict.reason).toBe('replay');
    // Replay state only moves forward.
    reconcile(ctx, 'A', [{ user: 'kobayashi', kind: 'step', step: 5, at: new Date(NOW).toISOString() }]);
    expect(verifyAttempt(ctx, 'kobayashi', hotp(key, step + 1), 'B', NOW + 30_000).verdict.reason).toBe('replay');
  });
  it('validates reconcile bodies', () => {
    expect(() => parseReconcile({ entries: [{ user: 'a b', kind: 'step', step: 1, at: '2026-01-01T00:00:00Z' }] })).toThrow();
    expect(() => parseReconcile({ entries: [{ user: 'ab', kind: 'step', step: -1, at: '2026-01-01T00:00:00Z' }] })).toThrow();
    expect(() => parseReconcile({ entries: [{ user: 'ab', kind: 'weird', at: '2026-01-01T00:00:00Z' }] })).toThrow();
    expect(() => parseReconcile({})).toThrow();
    expect(parseReconcile({ entries: [{ user: 'ab', kind: 'recovery', recoveryId: 2, at: '2026-01-01T00:00:00Z' }] })).toHaveLength(1);
  });
});

describe('hardware tokens (CSV import)', () => {
  it('imports base32 and hex seeds with their algorithm and digits, all or nothing', () => {
    const seed256 = Buffer.from('12345678901234567890123456789012');
    const csv = [
      'user,serial,seed_hex,algorithm,digits,period',
      `hw1,FT0001,${Buffer.from('12345678901234567890').toString('hex')},SHA1,6,30`,
      `hw2,FT0002,${seed256.toString('hex')},SHA256,8,30`,
    ].join('\r\n');
    const { rows, errors } = parseTokenCsv(csv);
    expect(errors).toEqual([]);
    expect(importTokens(ctx, rows, 'test', false)).toBe(2);
    // Active at once; the RFC 6238 SHA256 vector at T=59 verifies for an 8-digit token.
    expect(verifyAttempt(ctx, 'hw2', '46119246', 'A', 59_000).verdict).toMatchObject({ result: 'accept', step: 1 });
    expect(verifyAttempt(ctx, 'hw1', '94287082'.slice(2), 'A', 59_000).verdict.result).toBe('accept');
    expect(() => importTokens(ctx, rows, 'test', false)).toThrow(/already enrolled/);
  });
  it.each([
    ['user,serial\nx,y', /header/],
    ['user,serial,secret\nbad user,S1,JBSWY3DPEHPK3PXPJBSWY3DP', /line 2: invalid user/],
    ['user,serial,secret\nu1,S1,NOT*BASE32', /line 2: secret/],
    ['user,serial,secret\nu1,S1,JBSW', /line 2: secret/],
    ['user,serial,secret,algorithm\nu1,S1,JBSWY3DPEHPK3PXPJBSWY3DP,MD5', /line 2: algorithm/],
    ['user,serial,secret,digits\nu1,S1,JBSWY3DPEHPK3PXPJBSWY3DP,7', /line 2: digits/],
  ])('rejects %j', (csv, err) => {
    const { errors } = parseTokenCsv(csv);
    expect(errors.join('\n')).toMatch(err);
  });
});
