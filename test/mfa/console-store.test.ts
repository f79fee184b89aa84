/**
 * The console's MFA store on a real console data folder (real SQLite, real sealing): replay and
 * lockout across terminals, reconciliation of offline use, the offline cache contents, hardware
 * token import, secrets and recovery codes at rest.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hotp, timeStep, base32Decode } from '../../protocol/mfa/otp.js';
import { initConsole, openConsole, type OpenConsole } from '../../console/core/context.js';
import { parseReconcile } from '../../console/mfa/api.js';
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
import { REPAIR_FUTURE_LAST_STEP } from '../../console/mfa/schema.js';
import type { MfaReconcileEntry } from '../../protocol/mfa/wire.js';
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
    for (const bad of ["x'; DROP TABLE mfa_users;--", '', 'a'.repeat(65), 'a\tb', ' a', 'a/b', 'a\\b']) expect(() => enrollUser(ctx, bad, 'test')).toThrow(/invalid user name/);
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
    setMfa({ offlineAllowed: true });
    assign(ctx, 'kobayashi', 'A', 'test');
    const r = reconcile(
      ctx,
      'A',
      [
        { user: 'kobayashi', kind: 'step', step: step + 1, at: new Date(NOW).toISOString() },
        { user: 'kobayashi', kind: 'failure', at: new Date(NOW).toISOString() },
        { user: 'nobody', kind: 'failure', at: new Date(NOW).toISOString() },
      ],
      NOW,
    );
    expect(r).toMatchObject({ applied: 2, refused: [{ index: 2, user: 'nobody', reason: 'not_assigned' }] });
    expect(verifyAttempt(ctx, 'kobayashi', hotp(key, step + 1), 'B', NOW + 30_000).verdict.reason).toBe('replay');
    // Replay state only moves forward.
    reconcile(ctx, 'A', [{ user: 'kobayashi', kind: 'step', step: step - 2, at: new Date(NOW).toISOString() }], NOW);
    expect(verifyAttempt(ctx, 'kobayashi', hotp(key, step + 1), 'B', NOW + 30_000).verdict.reason).toBe('replay');
    setMfa({ offlineAllowed: false });
  });
  it('validates reconcile bodies', () => {
    const at = '2026-01-01T00:00:00Z';
    // Malformed entries are refused one by one (the agent can drop them), the well-formed rest is judged.
    const p = parseReconcile({
      entries: [
        { user: 'a b', kind: 'step', step: 1, at },
        { user: 'ab', kind: 'recovery', recoveryId: 2, at },
        { user: 'ab', kind: 'step', step: -1, at },
        { user: 'ab', kind: 'weird', at },
        { user: 'ab', kind: 'step', step: 2 ** 53, at },
        { user: 'ab', kind: 'failure', at: 'yesterday' },
        'x',
        { user: 'ab', kind: 'failure', at },
      ],
    });
    expect(p).toEqual({
      entries: [
        { user: 'ab', kind: 'recovery', recoveryId: 2, at },
        { user: 'ab', kind: 'failure', at },
      ],
      positions: [1, 7],
      malformed: [0, 2, 3, 4, 5, 6],
    });
    expect(() => parseReconcile({})).toThrow();
    expect(() => parseReconcile({ entries: 'x' })).toThrow();
    expect(() => parseReconcile({ entries: new Array(10_001).fill(null) })).toThrow();
  });
});

describe('hostile reconciliation (issue 10, items 2 and 3)', () => {
  const at = new Date(NOW).toISOString();
  // What one terminal sent in the review: a step at 2^53-1, 21 recovery codes, 5 failures.
  const attack = (user: string): MfaReconcileEntry[] => [
    { user, kind: 'step', step: Number.MAX_SAFE_INTEGER, at },
    ...Array.from({ length: 21 }, (_, i): MfaReconcileEntry => ({ user, kind: 'recovery', recoveryId: i, at })),
    ...Array.from({ length: 5 }, (): MfaReconcileEntry => ({ user, kind: 'failure', at })),
  ];
  const state = (user: string) => listUsers(ctx, NOW).find((u) => u.user === user)!;

  it('while policy forbids offline use, nothing a terminal reports is believed, even for its own users', () => {
    const key = enrolActive('h1');
    assign(ctx, 'h1', 'EVIL', 'test');
    const r = reconcile(ctx, 'EVIL', attack('h1'), NOW);
    expect(r.applied).toBe(0);
    expect(r.refused).toHaveLength(27);
    expect(new Set(r.refused.map((x) => x.reason))).toEqual(new Set(['offline_not_allowed']));
    expect(state('h1')).toMatchObject({ locked: false, failures: 0, recoveryLeft: 10 });
    expect(verifyAttempt(ctx, 'h1', hotp(key, step), 'T', NOW).verdict.result).toBe('accept');
  });

  it('with offline allowed, a terminal the user is not assigned to (or a pending user) is not believed', () => {
    setMfa({ offlineAllowed: true });
    try {
      const key = enrolActive('h2');
      assign(ctx, 'h2', 'OTHER', 'test');
      enrollUser(ctx, 'h2pending', 'test');
      assign(ctx, 'h2pending', 'EVIL', 'test');
      const r = reconcile(ctx, 'EVIL', [...attack('h2'), ...attack('h2pending'), ...attack('nobody')], NOW);
      expect(r.applied).toBe(0);
      expect(new Set(r.refused.map((x) => x.reason))).toEqual(new Set(['not_assigned']));
      expect(state('h2')).toMatchObject({ locked: false, failures: 0, recoveryLeft: 10 });
      expect(verifyAttempt(ctx, 'h2', hotp(key, step), 'T', NOW).verdict.result).toBe('accept');
    } finally {
      setMfa({ offlineAllowed: false });
    }
  });

  it('for an assigned user: far-future steps and recovery codes that do not exist are refused, the rest is learnt', () => {
    setMfa({ offlineAllowed: true });
    try {
      const key = enrolActive('h3');
      assign(ctx, 'h3', 'T3', 'test');
      const r = reconcile(
        ctx,
        'T3',
        [
          { user: 'h3', kind: 'step', step: Number.MAX_SAFE_INTEGER, at },
          { user: 'h3', kind: 'step', step: step + 2, at }, // beyond now + window (1)
          { user: 'h3', kind: 'step', step: 3, at }, // absurdly old
          { user: 'h3', kind: 'recovery', recoveryId: 0, at },
          { user: 'h3', kind: 'recovery', recoveryId: 11, at },
          { user: 'h3', kind: 'recovery', recoveryId: 4, at },
          { user: 'h3', kind: 'step', step, at },
        ],
        NOW,
      );
      expect(r.refused.map((x) => x.reason)).toEqual(['step_in_future', 'step_in_future', 'step_too_old', 'unknown_recovery_code', 'unknown_recovery_code']);
      expect(r.applied).toBe(2);
      expect(state('h3').recoveryLeft).toBe(9);
      expect(verifyAttempt(ctx, 'h3', hotp(key, step), 'T', NOW).verdict.reason).toBe('replay'); // learnt
      expect(verifyAttempt(ctx, 'h3', hotp(key, step + 1), 'T', NOW + 30_000).verdict.result).toBe('accept'); // not poisoned
      // The same report again (lost reply) is not a refusal; another terminal reporting that code is.
      expect(reconcile(ctx, 'T3', [{ user: 'h3', kind: 'recovery', recoveryId: 4, at }], NOW)).toMatchObject({ applied: 1, refused: [] });
      assign(ctx, 'h3', 'T4', 'test');
      expect(reconcile(ctx, 'T4', [{ user: 'h3', kind: 'recovery', recoveryId: 4, at }], NOW).refused[0]?.reason).toBe('recovery_code_used');
    } finally {
      setMfa({ offlineAllowed: false });
    }
  });

  it('a reconciled success never clears failures the console saw: interleaving cannot give unlimited guesses', () => {
    setMfa({ offlineAllowed: true });
    try {
      enrolActive('h4');
      assign(ctx, 'h4', 'T5', 'test');
      let lockedAt = -1;
      for (let i = 0; i < 12 && lockedAt < 0; i++) {
        const v = verifyAttempt(ctx, 'h4', '999999', 'T5', NOW).verdict;
        if (v.lockedNow) lockedAt = i;
        reconcile(ctx, 'T5', [{ user: 'h4', kind: 'step', step: step - 5 + i, at }], NOW);
      }
      expect(lockedAt).toBe(4); // the 5th wrong code locks, as without reconciliation
      // Offline failures reported in the same batch before an offline success are cleared by it, no more.
      enrolActive('h5');
      assign(ctx, 'h5', 'T5', 'test');
      verifyAttempt(ctx, 'h5', '999999', 'T5', NOW);
      verifyAttempt(ctx, 'h5', '999999', 'T5', NOW);
      const r = reconcile(
        ctx,
        'T5',
        [
          { user: 'h5', kind: 'failure', at },
          { user: 'h5', kind: 'failure', at },
          { user: 'h5', kind: 'step', step: step + 1, at },
        ],
        NOW,
      );
      expect(r.applied).toBe(3);
      expect(state('h5').failures).toBe(2);
    } finally {
      setMfa({ offlineAllowed: false });
    }
  });

  it('mfa reset clears a poisoned replay state, so reset + confirm repairs the user', () => {
    enrolActive('h6');
    ctx.db.prepare('UPDATE mfa_users SET last_step = ? WHERE user = ?').run(Number.MAX_SAFE_INTEGER, 'h6'); // what the attack left
    const e = enrollUser(ctx, 'h6', 'test', { reset: true });
    const key = base32Decode(e.secret)!;
    expect(confirmUser(ctx, 'h6', hotp(key, step), 'test', NOW)).toBe(true);
    expect(verifyAttempt(ctx, 'h6', hotp(key, step + 1), 'T', NOW + 30_000).verdict.result).toBe('accept');
  });

  it('the upgrade migration brings a far-future replay state back to now and leaves real ones alone', () => {
    enrolActive('h7');
    ctx.db.prepare('UPDATE mfa_users SET last_step = ? WHERE user = ?').run(Number.MAX_SAFE_INTEGER, 'h7');
    const before = (ctx.db.prepare("SELECT last_step FROM mfa_users WHERE user = 'h6'").get() as { last_step: number }).last_step;
    ctx.db.exec(REPAIR_FUTURE_LAST_STEP);
    const nowStep = Math.floor(Date.now() / 30_000);
    const after = (ctx.db.prepare("SELECT last_step FROM mfa_users WHERE user = 'h7'").get() as { last_step: number }).last_step;
    expect(Math.abs(after - nowStep)).toBeLessThanOrEqual(1);
    expect((ctx.db.prepare("SELECT last_step FROM mfa_users WHERE user = 'h6'").get() as { last_step: number }).last_step).toBe(before);
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
    ['user,serial,secret\nbad/user,S1,JBSWY3DPEHPK3PXPJBSWY3DP', /line 2: invalid user/],
    ['user,serial,secret\nu1,S1,NOT*BASE32', /line 2: secret/],
    ['user,serial,secret\nu1,S1,JBSW', /line 2: secret/],
    ['user,serial,secret,algorithm\nu1,S1,JBSWY3DPEHPK3PXPJBSWY3DP,MD5', /line 2: algorithm/],
    ['user,serial,secret,digits\nu1,S1,JBSWY3DPEHPK3PXPJBSWY3DP,7', /line 2: digits/],
  ])('rejects %j', (csv, err) => {
    const { errors } = parseTokenCsv(csv);
    expect(errors.join('\n')).toMatch(err);
  });
});
