/**
 * HOTP tokens and hardware-TOTP drift in the pure decision (protocol/mfa/decide.ts, otp.ts):
 * look-ahead, the counter moving only forward, replay, hostile counters and codes, 8 digits and
 * SHA256/SHA512 — codes from oathtool (an independent implementation) wherever a code is needed.
 */
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { clampDrift, decide, HOTP_LOOKAHEAD, TOTP_RESYNC_STEPS, type MfaUserState } from '../../protocol/mfa/decide.js';
import { allMatches, hotp, matchRange, MAX_MATCH_RANGE, timeStep, type OtpAlgorithm } from '../../protocol/mfa/otp.js';

const HEX = '3132333435363738393031323334353637383930'; // RFC 4226 Appendix D seed
const KEY = Buffer.from(HEX, 'hex');
const policy = { windowSteps: 1, maxFailures: 5, lockoutSeconds: 300 };
const NOW = 1_800_000_000_000;

function oath(args: string[]): string {
  return execFileSync('oathtool', args, { encoding: 'utf8' }).trim();
}
// oathtool's HOTP mode is SHA1 only; TOTP at time step c is HOTP at counter c (RFC 6238 §4.2), so
// SHA256/SHA512 counters are asked for in its TOTP mode.
const oHotp = (counter: number, digits = 6, alg: OtpAlgorithm = 'SHA1', hex = HEX) =>
  alg === 'SHA1'
    ? oath(['--hotp', `--digits=${digits}`, `--counter=${counter}`, hex])
    : oath([`--totp=${alg}`, `--digits=${digits}`, `--now=@${counter * 30}`, hex]);

function hstate(o: Partial<MfaUserState> = {}): MfaUserState {
  return { status: 'active', key: KEY, params: { algorithm: 'SHA1', digits: 6, period: 30 }, lastStep: -1, failures: 0, lockedUntil: 0, recovery: [], type: 'hotp', ...o };
}

describe('HOTP verification (look-ahead after the last used counter)', () => {
  // [last used counter, counter the token shows, expected reason]
  const table: [number, number, string][] = [
    [-1, 0, 'ok'],
    [-1, 9, 'ok'], // new token pressed 10 times: still inside the look-ahead
    [-1, 10, 'wrong_code'], // 11th press: needs resync
    [5, 6, 'ok'],
    [5, 15, 'ok'],
    [5, 16, 'wrong_code'],
    [5, 5, 'replay'], // the code just used
    [5, 4, 'wrong_code'], // older codes are simply wrong
  ];
  it.each(table)('last=%i, token at %i → %s', (last, c, reason) => {
    const v = decide(hstate({ lastStep: last }), { user: 'suzuki', code: oHotp(c), nowMs: NOW, policy });
    expect(v.reason).toBe(reason);
    if (reason === 'ok') expect(v.next!.lastStep).toBe(c);
    else expect(v.next!.lastStep).toBe(last); // a failure never moves the counter
  });

  it('a code is never accepted twice: the counter moves to the accepted one', () => {
    let st = hstate();
    const c3 = oHotp(3);
    const first = decide(st, { user: 'suzuki', code: c3, nowMs: NOW, policy });
    expect(first.result).toBe('accept');
    st = { ...st, lastStep: first.next!.lastStep };
    expect(decide(st, { user: 'suzuki', code: c3, nowMs: NOW, policy }).reason).toBe('replay');
    // A code skipped over (counter 1) is now behind the counter and refused.
    expect(decide(st, { user: 'suzuki', code: oHotp(1), nowMs: NOW, policy }).result).toBe('reject');
    expect(decide(st, { user: 'suzuki', code: oHotp(4), nowMs: NOW, policy }).result).toBe('accept');
  });

  it('time does not matter for HOTP (a code an hour later still works)', () => {
    expect(decide(hstate(), { user: 'suzuki', code: oHotp(0), nowMs: NOW + 3600_000, policy }).result).toBe('accept');
  });

  it.each([
    [8, 'SHA1', HEX],
    [8, 'SHA256', '3132333435363738393031323334353637383930313233343536373839303132'],
    [6, 'SHA512', '31323334353637383930313233343536373839303132333435363738393031323334353637383930313233343536373839303132333435363738393031323334'],
  ] as const)('%i digits %s: oathtool codes accepted', (digits, alg, hex) => {
    const st = hstate({ key: Buffer.from(hex, 'hex'), params: { algorithm: alg, digits, period: 30 } });
    expect(decide(st, { user: 'suzuki', code: oHotp(2, digits, alg, hex), nowMs: NOW, policy }).result).toBe('accept');
    // A 6-digit code to an 8-digit token is malformed, not compared.
    if (digits === 8) expect(decide(st, { user: 'suzuki', code: oHotp(2, 6, alg, hex), nowMs: NOW, policy }).reason).toBe('malformed');
  });

  it.each([
    ['counter at 2^53 - 1 (nothing beyond is looked at)', Number.MAX_SAFE_INTEGER],
    ['counter at 2^53 - 5', Number.MAX_SAFE_INTEGER - 4],
    ['counter NaN (corrupt state)', Number.NaN],
    ['counter Infinity', Number.POSITIVE_INFINITY],
    ['counter 2^53 (unsafe)', 2 ** 53],
  ])('hostile state, %s: no throw, nothing accepted beyond the safe range', (_n, last) => {
    const v = decide(hstate({ lastStep: last }), { user: 'suzuki', code: '123456', nowMs: NOW, policy });
    expect(v.result).toBe('reject');
  });

  it('at the top of the counter range the last codes still verify and then stop', () => {
    const top = Number.MAX_SAFE_INTEGER;
    const v = decide(hstate({ lastStep: top - 2 }), { user: 'suzuki', code: hotp(KEY, top), nowMs: NOW, policy });
    expect(v.result).toBe('accept');
    expect(v.next!.lastStep).toBe(top);
    expect(decide(hstate({ lastStep: top }), { user: 'suzuki', code: hotp(KEY, top), nowMs: NOW, policy }).reason).toBe('replay');
  });

  it.each(['', ' ', '12345', '1234567', '12345a', '１２３４５６', '123456\n', 'x'.repeat(65), '-123456'])('hostile code %j → malformed', (code) => {
    expect(decide(hstate(), { user: 'suzuki', code, nowMs: NOW, policy }).reason).toBe('malformed');
  });

  it.each([null, undefined, 123456, {}, ['123456']])('non-string code %j → malformed', (code) => {
    expect(decide(hstate(), { user: 'suzuki', code, nowMs: NOW, policy }).reason).toBe('malformed');
  });

  it('HOTP failures count toward the lock like TOTP ones', () => {
    const v = decide(hstate({ failures: 4 }), { user: 'suzuki', code: '000000', nowMs: NOW, policy });
    expect(v.lockedNow).toBe(true);
  });
});

describe('otp.matchRange bounds', () => {
  it.each([
    ['range wider than MAX_MATCH_RANGE', 0, MAX_MATCH_RANGE],
    ['inverted', 10, 5],
    ['NaN', Number.NaN, 5],
    ['all negative', -20, -1],
  ])('%s → null, no work', (_n, from, to) => {
    expect(matchRange(KEY, hotp(KEY, 3), from, to, { algorithm: 'SHA1', digits: 6 }, -1)).toBeNull();
    expect(allMatches(KEY, hotp(KEY, 3), from, to, { algorithm: 'SHA1', digits: 6 })).toEqual([]);
  });
  it('hotp() refuses digits outside 6–8 and unknown algorithms', () => {
    expect(() => hotp(KEY, 0, 9)).toThrow(RangeError);
    expect(() => hotp(KEY, 0, 6, 'MD5' as OtpAlgorithm)).toThrow(RangeError);
    expect(() => hotp(KEY, 2 ** 53)).toThrow(RangeError);
  });
});

describe('hardware TOTP drift', () => {
  const T = timeStep(NOW);
  const oTotpAt = (step: number) => oath(['--totp', '--digits=6', `--now=@${step * 30}`, HEX]);
  const tstate = (o: Partial<MfaUserState> = {}): MfaUserState => ({ ...hstate(), type: 'totp', drift: 0, ...o });

  it('a code at the window edge is accepted and the drift follows it', () => {
    const v = decide(tstate(), { user: 'sato', code: oTotpAt(T + 1), nowMs: NOW, policy });
    expect(v.result).toBe('accept');
    expect(v.next!.drift).toBe(1);
  });

  it('with a learned drift of +5, the window is ±1 around now+5 (now itself is outside)', () => {
    expect(decide(tstate({ drift: 5 }), { user: 'sato', code: oTotpAt(T + 6), nowMs: NOW, policy }).next!.drift).toBe(6);
    expect(decide(tstate({ drift: 5 }), { user: 'sato', code: oTotpAt(T + 4), nowMs: NOW, policy }).next!.drift).toBe(4);
    expect(decide(tstate({ drift: 5 }), { user: 'sato', code: oTotpAt(T), nowMs: NOW, policy }).reason).toBe('wrong_code');
  });

  it('a token behind the clock (drift −3)', () => {
    const v = decide(tstate({ drift: -3 }), { user: 'sato', code: oTotpAt(T - 3), nowMs: NOW, policy });
    expect([v.result, v.next!.drift]).toEqual(['accept', -3]);
  });

  it('app tokens (drift absent) never learn a drift', () => {
    const v = decide(tstate({ drift: undefined }), { user: 'sato', code: oTotpAt(T + 1), nowMs: NOW, policy });
    expect(v.result).toBe('accept');
    expect(v.next!.drift).toBeUndefined();
  });

  it('replay protection holds with drift (a step ≤ lastStep is a replay)', () => {
    const v = decide(tstate({ drift: 2, lastStep: T + 2 }), { user: 'sato', code: oTotpAt(T + 2), nowMs: NOW, policy });
    expect(v.reason).toBe('replay');
  });

  it.each([
    [1e9, TOTP_RESYNC_STEPS],
    [-1e9, -TOTP_RESYNC_STEPS],
    [Number.NaN, 0],
    [2.5, 0],
    [7, 7],
  ])('a stored drift of %d is used as %d', (d, want) => {
    expect(clampDrift(d)).toBe(want);
  });

  it('the look-ahead constant is the one documented', () => {
    expect(HOTP_LOOKAHEAD).toBe(10);
  });
});
